"""Request checking for the JSON API: limits, typed fields, one clear message per mistake.

Every request body is a JSON object whose fields are listed by the endpoint; an unknown field, a value of
the wrong type or out of range is an :class:`ApiError` with status 422 and a message naming the field.
A text longer than the server's limit is a 413. Nothing here touches the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with an HTTP ``status``."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; the server's safety limits (see ``rnnlm serve --help``).

    ``max_body_bytes``: request body; ``max_text_chars``: text to score, prime, fill sentence;
    ``max_length``: tokens per generated sample (words, or characters at char level); ``max_num``:
    samples per request; ``max_beam``: beam width; ``max_top``: alternatives per token and fill
    candidates; ``time_limit_s``: model time per request (generation stops there, scoring gives up);
    ``max_generations``: generations running at once; ``queue_wait_s``: how long a further one waits
    for a free slot before it is answered 503.
    """

    max_body_bytes: int = 64 * 1024
    max_text_chars: int = 20_000
    max_length: int = 500
    max_num: int = 8
    max_beam: int = 16
    max_top: int = 20
    time_limit_s: float = 30.0
    max_generations: int = 2
    queue_wait_s: float = 10.0

    def to_json(self) -> dict:
        return dict(self.__dict__)


MODES = ("sample", "greedy", "beam")


class Fields:
    """Typed access to a request's JSON object; :meth:`done` rejects fields nobody asked for."""

    def __init__(self, body, limits: Limits):
        if not isinstance(body, dict):
            raise ApiError(422, "the request body must be a JSON object")
        self.body = body
        self.limits = limits
        self.seen: set[str] = set()

    def _get(self, name, default):
        self.seen.add(name)
        value = self.body.get(name, default)
        return default if value is None else value

    def text(self, name: str, required: bool = True, default: str = "") -> str:
        if required and name not in self.body:
            raise ApiError(422, f"{name}: required")
        value = self._get(name, default)
        if not isinstance(value, str):
            raise ApiError(422, f"{name}: expected a string, got {_kind(value)}")
        if len(value) > self.limits.max_text_chars:
            raise ApiError(413, f"{name}: {len(value)} characters; the limit is {self.limits.max_text_chars}")
        if "\x00" in value:
            raise ApiError(422, f"{name}: contains a NUL character")
        return value

    def integer(self, name: str, default, lo: int, hi: int | None = None):
        value = self._get(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
                value = int(value)
            else:
                raise ApiError(422, f"{name}: expected an integer, got {_kind(value)}")
        if value < lo or (hi is not None and value > hi):
            bound = f"from {lo} to {hi}" if hi is not None else f">= {lo}"
            raise ApiError(422, f"{name}: must be an integer {bound}, got {value}")
        return value

    def number(self, name: str, default: float, lo: float, hi: float, lo_open: bool = False) -> float:
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ApiError(422, f"{name}: expected a number, got {_kind(value)}")
        value = float(value)
        ok = math.isfinite(value) and (value > lo if lo_open else value >= lo) and value <= hi
        if not ok:
            left = f"> {lo:g}" if lo_open else f">= {lo:g}"
            raise ApiError(422, f"{name}: must be a number {left} and <= {hi:g}, got {value:g}")
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self._get(name, default)
        if not isinstance(value, bool):
            raise ApiError(422, f"{name}: expected true or false, got {_kind(value)}")
        return value

    def choice(self, name: str, default: str, choices) -> str:
        value = self._get(name, default)
        if value not in choices:
            raise ApiError(422, f"{name}: must be one of {', '.join(choices)}, got {_short(value)}")
        return value

    def done(self) -> None:
        extra = sorted(set(self.body) - self.seen)
        if extra:
            raise ApiError(
                422,
                f"unknown field{'s' if len(extra) > 1 else ''}: {', '.join(map(_short, extra))} "
                f"(expected: {', '.join(sorted(self.seen))})",
            )


def _kind(value) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def score_params(body, limits: Limits) -> dict:
    f = Fields(body, limits)
    out = {"text": f.text("text"), "top": f.integer("top", 5, 0, limits.max_top)}
    f.done()
    if not out["text"].strip():
        raise ApiError(422, "text: empty; paste some text to score")
    return out


def generate_params(body, limits: Limits) -> dict:
    f = Fields(body, limits)
    out = {
        "prime": f.text("prime", required=False),
        "mode": f.choice("mode", "sample", MODES),
        "num": f.integer("num", None, 1, limits.max_num),
        "temperature": f.number("temperature", 1.0, 0.0, 100.0, lo_open=True),
        "top_k": f.integer("top_k", 0, 0),
        "min_length": f.integer("min_length", None, 0, limits.max_length),
        "max_length": f.integer("max_length", None, 1, limits.max_length),
        "beam_size": f.integer("beam_size", 5, 1, limits.max_beam),
        "length_penalty": f.number("length_penalty", 0.0, 0.0, 10.0),
        "seed": f.integer("seed", None, 0, 2**63 - 1),
        "allow_unk": f.boolean("allow_unk"),
    }
    f.done()
    return out


def fill_params(body, limits: Limits) -> dict:
    f = Fields(body, limits)
    out = {
        "text": f.text("text"),
        "top_k": f.integer("top_k", 5, 1, limits.max_top),
        "allow_unk": f.boolean("allow_unk"),
    }
    f.done()
    return out
