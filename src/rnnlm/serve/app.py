"""The web app: a Starlette ASGI application around one :class:`~rnnlm.serve.service.ModelService`.

Routes: ``GET /`` (the page), ``GET /static/app.js`` and ``/static/style.css`` (its script and style,
files of this package: nothing on the file system is named by a client), ``GET /api/model``,
``POST /api/score``, ``POST /api/generate``, ``POST /api/generate/stream`` (server-sent events) and
``POST /api/fill``. Every error is JSON ``{"error": message}`` with its status, never a traceback.

Safety: request bodies must be JSON (``Content-Type: application/json``, else 415: a page on another
site cannot post to the API without a CORS preflight, which is never granted) and at most
``Limits.max_body_bytes`` (413); texts at most ``Limits.max_text_chars`` (413); fields are checked
(422). Model work runs in worker threads; each request has a time limit; at most
``Limits.max_generations`` generations run at once and another waits ``Limits.queue_wait_s`` for a slot,
then gets 503. Every response carries a strict Content-Security-Policy (scripts and styles only from
this server, nothing inline), ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` and
framing denied. ``allowed_hosts`` (the CLI sets it when bound to a loopback address) rejects requests
for other host names, which defeats DNS rebinding.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from importlib import resources

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from rnnlm.serve.params import ApiError, fill_params, generate_params, score_params
from rnnlm.serve.service import Budget, ModelService, call

log = logging.getLogger("rnnlm.serve")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
#: The page's files: URL path -> (package file, media type).
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}


def _json_default(o):
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps(obj) -> str:
    """Strict JSON (NaN and infinities are not JSON: the service turns them into null first)."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, default=_json_default)


class SecurityHeaders:
    """Pure ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(service: ModelService, allowed_hosts=None):
    """The ASGI app serving ``service``. ``allowed_hosts``: host names accepted in the Host header
    (None: any)."""
    limits = service.limits
    executor = ThreadPoolExecutor(max_workers=limits.max_generations + 4, thread_name_prefix="rnnlm-serve")
    files = {
        path: (resources.files("rnnlm.serve").joinpath("static", name).read_bytes(), media)
        for path, (name, media) in STATIC.items()
    }
    state = {"slots": None}
    running: set = set()  # budgets of the generations in progress (cancelled at shutdown)

    def error(status: int, message: str, headers=None) -> Response:
        return JSON(
            {"error": message}, status_code=status, headers={"cache-control": "no-store", **(headers or {})}
        )

    def ok(content) -> Response:
        return JSON(content, headers={"cache-control": "no-store"})

    async def read_json(request: Request):
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise ApiError(415, "send the request body as JSON with Content-Type: application/json")
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                n = int(declared)
            except ValueError:
                raise ApiError(422, "bad Content-Length header") from None
            if n > limits.max_body_bytes:
                raise ApiError(413, f"request body is {n} bytes; the limit is {limits.max_body_bytes}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limits.max_body_bytes:
                raise ApiError(413, f"request body is over the limit of {limits.max_body_bytes} bytes")
        try:
            return json.loads(body.decode("utf-8"), parse_constant=_no_constant)
        except UnicodeDecodeError:
            raise ApiError(422, "request body is not UTF-8") from None
        except json.JSONDecodeError as e:
            raise ApiError(
                422, f"request body is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})"
            ) from None
        except (ValueError, RecursionError) as e:
            raise ApiError(422, f"request body is not valid JSON ({e})") from None

    async def in_thread(fn, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, partial(call, fn, *args, **kwargs))

    def slots() -> asyncio.Semaphore:
        if state["slots"] is None:
            state["slots"] = asyncio.Semaphore(limits.max_generations)
        return state["slots"]

    async def acquire_slot() -> None:
        try:
            await asyncio.wait_for(slots().acquire(), timeout=limits.queue_wait_s)
        except TimeoutError:
            raise ApiError(
                503,
                f"the server is busy: {limits.max_generations} generation(s) are running; try "
                "again in a moment",
                headers={"retry-after": "2"},
            ) from None

    # -- endpoints -------------------------------------------------------------------------------
    async def static(request: Request) -> Response:
        body, media = files[request.url.path]
        cache = "no-cache" if request.url.path == "/" else "max-age=60"
        return Response(body, media_type=media, headers={"cache-control": cache})

    async def model(request: Request) -> Response:
        return ok(service.card())

    async def score(request: Request) -> Response:
        params = score_params(await read_json(request), limits)
        return ok(await in_thread(service.score, params))

    async def fill(request: Request) -> Response:
        params = fill_params(await read_json(request), limits)
        return ok(await in_thread(service.fill, params))

    async def run_generation(fn) -> tuple[Budget, asyncio.Future]:
        """Wait for a generation slot, then run ``fn(budget)`` in a worker thread; the slot is freed when
        the thread is done (not when the client leaves: a cancelled generation still holds it until it
        has stopped)."""
        await acquire_slot()
        budget = Budget(limits.time_limit_s)
        running.add(budget)
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(executor, partial(fn, budget))

        def finished(_):
            running.discard(budget)
            slots().release()

        fut.add_done_callback(finished)
        return budget, fut

    async def generate(request: Request) -> Response:
        params = generate_params(await read_json(request), limits)
        budget, fut = await run_generation(partial(call, service.generate, params))
        try:
            return ok(await asyncio.shield(fut))
        except asyncio.CancelledError:
            budget.cancel.set()  # the client went away: stop at the next token
            raise

    async def generate_stream(request: Request) -> Response:
        params = generate_params(await read_json(request), limits)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        def put(kind, payload):
            loop.call_soon_threadsafe(queue.put_nowait, (kind, payload))

        def work(budget):
            try:
                on_event = lambda ev: put("token", _event_json(ev))  # noqa: E731
                put(
                    "done",
                    call(service.generate, params, budget, on_start=partial(put, "start"), on_event=on_event),
                )
            except ApiError as e:
                put("error", {"error": e.message, "status": e.status})
            except Exception:  # reported as one line; the traceback goes to the server's log only
                log.exception("generation failed")
                put("error", {"error": "internal error", "status": 500})

        budget, _ = await run_generation(work)
        try:
            first = await queue.get()
        except asyncio.CancelledError:
            budget.cancel.set()
            raise
        if first[0] == "error":
            return error(first[1]["status"], first[1]["error"])

        async def events():
            try:
                yield _sse(*first)
                while True:
                    kind, payload = await queue.get()
                    yield _sse(kind, payload)
                    if kind in ("done", "error"):
                        return
            finally:
                budget.cancel.set()  # a no-op when finished; otherwise the client left: stop generating

        return EventStream(
            events(),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    # -- errors ----------------------------------------------------------------------------------
    async def api_error(request, exc: ApiError):
        return error(exc.status, exc.message, exc.headers)

    async def http_error(request, exc: HTTPException):
        messages = {404: "not found", 405: "method not allowed"}
        return error(exc.status_code, messages.get(exc.status_code, str(exc.detail)), exc.headers)

    async def server_error(request, exc: Exception):
        return error(500, "internal error (see the server's log)")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        budget_cancel_all()
        executor.shutdown(wait=False, cancel_futures=True)

    def budget_cancel_all():
        for budget in list(running):
            budget.cancel.set()

    routes = [
        *(Route(path, static, methods=["GET", "HEAD"]) for path in STATIC),
        Route("/api/model", model, methods=["GET"]),
        Route("/api/score", score, methods=["POST"]),
        Route("/api/generate", generate, methods=["POST"]),
        Route("/api/generate/stream", generate_stream, methods=["POST"]),
        Route("/api/fill", fill, methods=["POST"]),
    ]
    middleware = [Middleware(SecurityHeaders)]
    if allowed_hosts:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={ApiError: api_error, HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.state.service = service
    return app


def _no_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _event_json(ev) -> dict:
    d = ev.to_json()
    d["logprob"] = d["logprob"] if math.isfinite(d["logprob"]) else None
    return d


def _sse(kind: str, payload) -> str:
    return f"event: {kind}\ndata: {dumps(payload)}\n\n"


class EventStream(StreamingResponse):
    """A streaming response that always closes its source: when the client goes away mid-stream, the
    generator's ``finally`` runs at once (and so the generation is cancelled)."""

    async def stream_response(self, send) -> None:
        try:
            await super().stream_response(send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


class JSON(JSONResponse):
    """Strict JSON responses (see :func:`dumps`)."""

    def render(self, content) -> bytes:
        return dumps(content).encode("utf-8")
