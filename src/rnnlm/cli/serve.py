"""``rnnlm serve``: a local web page (and JSON API) to see what a model thinks."""

from __future__ import annotations

import errno
import ipaddress
import socket

from rnnlm.cli.common import add_runtime_arguments, int_at_least, note, positive_float, positive_int, warn
from rnnlm.errors import ConfigError

LOOPBACK_NAMES = ("localhost",)


def add_parser(subparsers):
    p = subparsers.add_parser(
        "serve",
        help="a local web page to score text token by token, generate, fill blanks and read the model card",
        description="Serve a web page for one checkpoint (word or char level, a fill model, or the "
        "tutorial's trained-model-theano.npz): Score colours every token by its surprisal and shows its "
        "probability, rank and the model's top alternatives; Generate streams samples, greedy or beam "
        "output; Fill ranks words for a blank (bidirectional models); the model card shows sizes, "
        "corpus, training history and baselines. The page is one client of a JSON API (/api/score, "
        "/api/generate, /api/generate/stream, /api/fill, /api/model; see the README). Binds 127.0.0.1 "
        "unless --host says otherwise.",
    )
    p.add_argument(
        "checkpoint", metavar="CKPT", help="checkpoint .npz, run folder, or trained-model-theano.npz"
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; anything else "
        "exposes the model to the network)",
    )
    p.add_argument(
        "--port", type=int_at_least(0), default=8000, help="port (default: 8000; 0: any free port)"
    )
    g = p.add_argument_group("limits")
    g.add_argument(
        "--max-text",
        type=positive_int,
        default=20_000,
        metavar="N",
        help="longest text to score, prime or fill, in characters (default: 20000)",
    )
    g.add_argument(
        "--time-limit",
        type=positive_float,
        default=30.0,
        metavar="S",
        help="model time per request in seconds; generation stops there (default: 30)",
    )
    g.add_argument(
        "--max-generations",
        type=positive_int,
        default=2,
        metavar="N",
        help="generations running at once; others wait briefly, then get 503 (default: 2)",
    )
    add_runtime_arguments(p)
    p.set_defaults(run=run)
    return p


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; a :class:`ConfigError` (one line) when that is impossible."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ConfigError(f"--host {host}: cannot resolve it ({e.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        why = "address already in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
        raise ConfigError(f"cannot listen on {host}:{port}: {why}") from None
    sock.setblocking(False)
    return sock


def run(args) -> int:
    try:
        import uvicorn

        from rnnlm.serve import Limits, ModelService, create_app
    except ImportError as e:
        raise ConfigError(
            f"rnnlm serve needs the serve extra ({e.name} is missing): pip install 'rnnlm[serve]'"
        ) from None
    from rnnlm.cli.common import setup_engine
    from rnnlm.training.checkpoint import load_model, resolve

    sock = bind(args.host, args.port)  # before loading: a taken port fails fast
    try:
        _, linker = setup_engine(None, args.device, args.linker)
        path = resolve(args.checkpoint)
        loaded = load_model(path, linker=linker)
        limits = Limits(
            max_text_chars=args.max_text,
            time_limit_s=args.time_limit,
            max_generations=args.max_generations,
            max_body_bytes=max(64 * 1024, 4 * args.max_text + 4096),
        )
        service = ModelService(loaded, path, limits)
        local = is_loopback(args.host)
        allowed = ["127.0.0.1", "localhost", "::1"] if local else None
        if local and args.host not in allowed:
            allowed.append(args.host)
        app = create_app(service, allowed_hosts=allowed)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        if not local:
            warn(
                f"listening on {args.host}, not a loopback address: anyone who can reach this machine can "
                "use the model (there is no authentication)"
            )
        note(
            f"serving {path.name} ({service.level} level, {loaded.model.config.cell}, "
            f"{loaded.model.n_parameters():,} parameters) at http://{shown}:{port}/ (Ctrl-C to stop)"
        )
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=3
        )
        try:
            uvicorn.Server(config).run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn shuts down on Ctrl-C, then re-raises it: the usual way to stop
            pass
        note("stopped")
    finally:
        sock.close()
    return 0
