"""What the web app does with a loaded model, without HTTP: score, generate, fill, describe.

One :class:`ModelService` per loaded checkpoint. Compiled functions and their shared state are not
thread-safe, so every call into the model goes through a :class:`GuardedModel`: it holds the service's
lock for the duration of one compiled call (one ``evaluate``, one decoding step...), and before each call
checks the request's deadline and whether it was cancelled (the client went away, or pressed stop).
Requests therefore interleave step by step but each sees exactly what it would see alone: a generation
owns its random generator and states, and a compiled call is never entered twice at once.

All numbers come from :mod:`rnnlm.inference`: per-token scores and perplexity from
:func:`~rnnlm.inference.token_scores` (the totals of :func:`~rnnlm.inference.perplexity`), samples from
:class:`~rnnlm.inference.GenerationStream` (what :func:`~rnnlm.inference.generate` runs), beams from
:func:`~rnnlm.inference.beam_search`, blanks from :func:`~rnnlm.inference.fill`, with the same defaults
as the ``rnnlm generate | perplexity | fill`` commands.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from pathlib import Path

import numpy as np

from rnnlm.errors import RnnlmError
from rnnlm.serve.params import ApiError, Limits


class TimeLimitExceeded(Exception):
    """The request ran past its time limit (raised before the next model call)."""


class Cancelled(Exception):
    """The request was cancelled (raised before the next model call)."""


class Budget:
    """A request's deadline (monotonic seconds; None: none) and cancellation flag."""

    def __init__(self, seconds: float | None = None, cancel: threading.Event | None = None):
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.seconds = seconds
        self.cancel = cancel or threading.Event()

    def check(self) -> None:
        if self.cancel.is_set():
            raise Cancelled()
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TimeLimitExceeded()


class GuardedModel:
    """A :class:`~rnnlm.models.lm.LanguageModel` as one request sees it (see the module docstring).

    Attributes (``config``, ``static``, ``initial_state``...) are the model's; the compiled entry points
    (``evaluate``, ``distribution``, ``graph``, ``step_function``) take the lock per call and check the
    request's :class:`Budget` first.
    """

    def __init__(self, model, lock: threading.Lock, budget: Budget):
        self._model = model
        self._lock = lock
        self._budget = budget

    def __getattr__(self, name):
        return getattr(self._model, name)

    def _call(self, fn, *args, **kwargs):
        self._budget.check()
        with self._lock:
            return fn(*args, **kwargs)

    def evaluate(self, *args, **kwargs):
        return self._call(self._model.evaluate, *args, **kwargs)

    def distribution(self, *args, **kwargs):
        return self._call(self._model.distribution, *args, **kwargs)

    def graph(self, kind="dist", shape=(8, 1)):
        fn = self._call(self._model.graph, kind, shape)
        return lambda *args: self._call(fn, *args)

    def step_function(self, batch_size=None):
        fn = self._call(self._model.step_function, batch_size)
        return lambda *args: self._call(fn, *args)


def _finite(x) -> float | None:
    """A float for JSON (NaN and infinities are not JSON): None when not finite."""
    x = float(x)
    return x if math.isfinite(x) else None


class ModelService:
    """A loaded model behind the web app. ``loaded``: what :func:`rnnlm.training.checkpoint.load_model`
    returned; ``path``: the checkpoint file (for the model card: its name, and ``corpus.npz`` /
    ``log.jsonl`` beside it)."""

    def __init__(self, loaded, path, limits: Limits | None = None):
        from rnnlm import inference

        self.model, self.vocab, self.meta = loaded
        self.meta = self.meta or {}
        self.path = Path(path)
        self.limits = limits or Limits()
        self.lock = threading.Lock()
        self.bidirectional = bool(self.model.config.bidirectional)
        self.special = inference.special_ids(self.model, self.vocab)
        self.level = self.special.level
        self.corpus_meta = self.meta.get("corpus") or None
        settings = (self.corpus_meta or {}).get("settings") or {}
        #: How pasted text is read: as the training corpus reads a plain-text file (``--format text``), or
        #: one sentence per line for a ``lines`` corpus.
        self.text_format = "lines" if settings.get("format") == "lines" else "text"
        self._card = None

    # -- helpers ---------------------------------------------------------------------------------
    def guarded(self, budget: Budget | None = None) -> GuardedModel:
        return GuardedModel(self.model, self.lock, budget or Budget(self.limits.time_limit_s))

    def _token_text(self, i: int) -> str:
        return str(int(i)) if self.vocab is None else self.vocab.index_to_word[int(i)]

    @property
    def capabilities(self) -> dict:
        return {
            "score": not self.bidirectional,
            "generate": not self.bidirectional,
            "fill": self.bidirectional and self.vocab is not None and self.level == "word",
        }

    def _need(self, what: str) -> None:
        if not self.capabilities[what]:
            if what == "fill":
                raise ApiError(
                    422,
                    "fill-in-the-blank needs a bidirectional word-level model with a vocabulary "
                    "(rnnlm train --task fill); this model reads left to right: use score or "
                    "generate",
                )
            raise ApiError(
                422,
                f"this is a bidirectional fill-in-the-blank model: it cannot {what} left to right; use fill",
            )

    # -- score -----------------------------------------------------------------------------------
    def _encode_ids(self, text: str):
        """Models without a vocabulary (the tutorial's file): each line is a sentence of token ids."""
        C = self.model.config.vocab_size
        sentences, tokens = [], []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                ids = [int(t) for t in line.split()]
            except ValueError:
                raise ApiError(
                    422,
                    f"text: line {number}: this model has no vocabulary; give token ids "
                    "separated by spaces, one sentence per line",
                ) from None
            bad = [i for i in ids if not 0 <= i < C]
            if bad:
                raise ApiError(422, f"text: line {number}: token id {bad[0]} is out of range [0, {C})")
            s = np.array([self.special.start, *ids, self.special.end], np.int32)
            sentences.append(s)
            tokens.append([str(i) for i in s])
        return sentences, tokens, [np.zeros(len(s), bool) for s in sentences], None

    def score(self, params: dict, budget: Budget | None = None) -> dict:
        """Per-token scores and the perplexity of ``params['text']`` (see :func:`score_params`)."""
        from rnnlm import inference

        self._need("score")
        text, top = params["text"], params["top"]
        if self.vocab is None:
            sentences, tokens, oov, encoded = self._encode_ids(text)
        else:
            encoded, tokens, oov = inference.encode_with_tokens(
                self.vocab, self.corpus_meta, text, format=self.text_format
            )
            sentences = encoded.sentences
        if not sum(max(len(s) - 1, 0) for s in sentences):
            raise ApiError(422, "text: nothing to score (no token is predicted)")
        try:
            ts = inference.token_scores(
                self.guarded(budget), encoded if encoded is not None else sentences, level=self.level, top=top
            )
        except TimeLimitExceeded:
            raise ApiError(
                503,
                f"scoring took longer than the {self.limits.time_limit_s:g} s limit; score a shorter text",
            ) from None
        where = {(int(s), int(p)): j for j, (s, p) in enumerate(zip(ts.sentence, ts.position, strict=True))}
        bits = ts.surprisal_bits
        start, end = self.special.start, self.special.end
        out_tokens = []
        for i, (sent, toks, flags) in enumerate(zip(sentences, tokens, oov, strict=True)):
            for p, (tid, tok, is_oov) in enumerate(zip(sent, toks, flags, strict=True)):
                if self.level == "word" and p == 0:
                    continue  # SENTENCE_START is given, not predicted
                row = {
                    "text": tok,
                    "id": int(tid),
                    "sentence": i,
                    "oov": bool(is_oov),
                    "special": self.level == "word" and int(tid) in (start, end),
                }
                j = where.get((i, p))
                if j is None:
                    row.update(
                        predicted=False, logprob=None, prob=None, surprisal_bits=None, rank=None, top=[]
                    )
                else:
                    row.update(
                        predicted=True,
                        logprob=_finite(ts.logprob[j]),
                        prob=float(np.exp(ts.logprob[j])),
                        surprisal_bits=_finite(bits[j]),
                        rank=int(ts.rank[j]),
                        top=[
                            {"token": self._token_text(t), "id": int(t), "prob": float(np.exp(lp))}
                            for t, lp in zip(ts.top_ids[j], ts.top_logprob[j], strict=True)
                        ],
                    )
                out_tokens.append(row)
        summary = {k: (_finite(v) if isinstance(v, float) else v) for k, v in ts.result().to_json().items()}
        return {
            **summary,
            "format": self.text_format if self.vocab is not None else "ids",
            "vocab_size": int(self.model.config.vocab_size),
            "unknown_token": None if self.vocab is None else self.vocab.unknown_token,
            "tokens": out_tokens,
        }

    # -- generate --------------------------------------------------------------------------------
    def _prime(self, text: str):
        from rnnlm import inference

        if not text:
            return None, 0
        if self.vocab is None:  # token ids, parsed by rnnlm.inference (as rnnlm generate does)
            try:
                [int(t) for t in text.split()]
            except ValueError:
                raise ApiError(
                    422, "prime: this model has no vocabulary; give token ids separated by spaces"
                ) from None
            return text, 0
        c = self.corpus_meta or {}
        return inference.encode_prime(text, self.vocab, c.get("settings"), c.get("splitter"))

    def generate(self, params: dict, budget: Budget | None = None, on_start=None, on_event=None) -> dict:
        """Samples, a greedy sentence or beams, as ``rnnlm generate --json`` gives them.

        ``on_start(info)`` is called once the prime is fed (beam search: once the search is done) with
        the seed, the number of rows and the prime's part of the text; ``on_event(event)`` with each
        :class:`~rnnlm.inference.TokenEvent` as it is drawn (beam search: the finished beams' tokens).
        Past the time limit or when cancelled, sampling stops and what was drawn is returned with
        ``stopped`` set; a beam search past the limit is a 503.
        """
        from rnnlm import inference

        self._need("generate")
        budget = budget or Budget(self.limits.time_limit_s)
        model = self.guarded(budget)
        word = self.level == "word"
        mode = params["mode"]
        min_length = params["min_length"] if params["min_length"] is not None else (1 if word else 0)
        max_length = params["max_length"]
        if max_length is None:
            max_length = (
                inference.decoding.DEFAULT_MAX_WORDS if word else inference.decoding.DEFAULT_MAX_CHARS
            )
        seed = params["seed"] if params["seed"] is not None else secrets.randbelow(2**32)
        prime, prime_oov = self._prime(params["prime"])
        common = dict(
            min_length=min_length,
            max_length=max_length,
            prime=prime,
            allow_unk=params["allow_unk"],
            ids=self.special,
        )
        info = {
            "mode": mode,
            "level": self.level,
            "seed": seed if mode == "sample" else None,
            "temperature": params["temperature"] if mode == "sample" else None,
            "top_k": params["top_k"] if mode == "sample" else None,
            "beam_size": params["beam_size"] if mode == "beam" else None,
            "length_penalty": params["length_penalty"] if mode == "beam" else None,
            "min_length": min_length,
            "max_length": max_length,
            "prime": params["prime"],
            "prime_oov": int(prime_oov),
        }
        stopped = None
        if mode == "beam":
            num = params["num"] or params["beam_size"]
            try:
                beams = inference.beam_search(
                    model,
                    self.vocab,
                    params["beam_size"],
                    length_penalty=params["length_penalty"],
                    n_best=num,
                    **common,
                )
            except TimeLimitExceeded:
                raise ApiError(
                    503,
                    f"beam search did not finish within the {self.limits.time_limit_s:g} s "
                    "limit; try a smaller beam or max_length",
                ) from None
            prefix = beams[0].prefix if beams else []
            info.update(num=len(beams), prefix=self._render(prefix))
            if on_start is not None:
                on_start(info)
            for row, h in enumerate(beams):
                if on_event is not None:
                    for t in h.tokens:
                        on_event(inference.TokenEvent(row, int(t), float("nan"), False, self._tok(t)))
            samples = [h.to_json() for h in beams]
        else:
            num = 1 if mode == "greedy" else (params["num"] or 1)
            stream = inference.GenerationStream(
                model,
                self.vocab,
                num,
                seed=seed,
                temperature=params["temperature"],
                top_k=params["top_k"],
                mode=mode,
                **common,
            )
            info.update(num=num, prefix=self._render(stream.prefix))
            if on_start is not None:
                on_start(info)
            try:
                for event in stream:
                    if on_event is not None:
                        on_event(event)
            except TimeLimitExceeded:
                stopped = "time_limit"
            except Cancelled:
                stopped = "cancelled"
            samples = [g.to_json() for g in stream.generations()]
        for s in samples:
            s["logprob"] = _finite(s["logprob"])
            if "score" in s:
                s["score"] = _finite(s["score"])
        return {**info, "samples": samples, "stopped": stopped}

    def _tok(self, i) -> str | None:
        return None if self.vocab is None else self.vocab.index_to_word[int(i)]

    def _render(self, ids) -> dict:
        ids = [int(i) for i in ids]
        tokens = None if self.vocab is None else self.vocab.decode(ids)
        return {"ids": ids, "tokens": tokens}

    # -- fill ------------------------------------------------------------------------------------
    def fill(self, params: dict, budget: Budget | None = None) -> dict:
        from rnnlm import inference

        self._need("fill")
        c = self.corpus_meta or {}
        try:
            got = inference.fill(
                self.guarded(budget),
                self.vocab,
                params["text"],
                top_k=params["top_k"],
                settings=c.get("settings"),
                splitter=c.get("splitter"),
                allow_unk=params["allow_unk"],
            )
        except TimeLimitExceeded:
            raise ApiError(503, f"fill took longer than the {self.limits.time_limit_s:g} s limit") from None
        return {"text": params["text"], "candidates": [{"word": w, "prob": p} for w, p in got]}

    # -- model card ------------------------------------------------------------------------------
    def card(self) -> dict:
        if self._card is None:
            self._card = model_card(self)
        return self._card


def call(fn, *args, **kwargs):
    """Run a service method, turning a library error into a 422 (its one-line message), and a request
    stopped before its first result (time limit, cancelled) into a 503."""
    try:
        return fn(*args, **kwargs)
    except RnnlmError as e:
        raise ApiError(422, " ".join(str(e).split())) from None
    except TimeLimitExceeded:
        raise ApiError(
            503, "the request took longer than the server's time limit (rnnlm serve --time-limit)"
        ) from None
    except Cancelled:
        raise ApiError(503, "the request was cancelled") from None


# --------------------------------------------------------------------------------------------------
# the model card
# --------------------------------------------------------------------------------------------------

#: Side files read for the card are skipped when larger than this.
SIDE_FILE_LIMIT = 16 * 1024 * 1024


def _scalars(d) -> dict:
    """The plain JSON values of a dict (no nested structures), for display."""
    if not isinstance(d, dict):
        return {}
    return {
        str(k): v
        for k, v in d.items()
        if isinstance(v, (str, int, bool, type(None))) or (isinstance(v, float) and math.isfinite(v))
    }


def _corpus_file_stats(folder: Path) -> dict | None:
    """The statistics saved in ``corpus.npz`` beside a checkpoint (only its ``meta`` entry is read)."""
    p = folder / "corpus.npz"
    try:
        if not p.is_file():
            return None
        with np.load(p, allow_pickle=False) as z:
            if "meta" not in z.files:
                return None
            raw = z["meta"]
        if raw.dtype != np.uint8 or raw.ndim != 1 or raw.size > SIDE_FILE_LIMIT:
            return None
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except Exception:  # a damaged side file only means a shorter card  # noqa: BLE001
        return None
    return _scalars(meta.get("stats")) if isinstance(meta, dict) else None


def _log_history(folder: Path) -> list:
    p = folder / "log.jsonl"
    try:
        if not p.is_file() or p.stat().st_size > SIDE_FILE_LIMIT:
            return []
        lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def _curve(history, key) -> list:
    pts = []
    for h in history:
        if not isinstance(h, dict):
            continue
        step, v = h.get("step"), h.get(key)
        if (
            isinstance(step, (int, float))
            and not isinstance(step, bool)
            and isinstance(v, (int, float))
            and not isinstance(v, bool)
            and math.isfinite(v)
            and math.isfinite(step)
        ):
            pts.append([step, float(v)])
    return pts


def _baselines(value) -> list | None:
    """Baseline figures from ``train_state['baselines']`` as rows ``{"name": ..., <numbers>...}``.

    Accepts a list of objects, an object of name -> number, or an object of name -> object.
    """
    if value is None:
        return None
    rows = []
    if isinstance(value, dict):
        for name, v in value.items():
            if isinstance(v, dict):
                rows.append({"name": str(name), **_scalars(v)})
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                rows.append({"name": str(name), "perplexity": float(v)})
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, dict):
                row = _scalars(v)
                row.setdefault("name", str(row.get("kind") or row.get("model") or f"baseline {i + 1}"))
                rows.append(row)
    return rows or None


def model_card(service: ModelService) -> dict:
    """Everything known about the loaded model, for ``/api/model``."""
    from rnnlm.inference.scoring import perplexity_of
    from rnnlm.models.lm import param_shapes

    model, vocab, meta = service.model, service.vocab, service.meta
    cfg = model.config
    tutorial = meta.get("format") == "tutorial"
    folder = service.path.parent
    st = meta.get("train_state") or {}
    history = st.get("history") if isinstance(st.get("history"), list) else []
    history_source = "checkpoint" if history else None
    if not history and not tutorial:
        history = _log_history(folder)
        history_source = "log.jsonl" if history else None
    valid = _curve(history, "valid_loss")
    best = st.get("best_valid")
    if not isinstance(best, (int, float)) or isinstance(best, bool) or not math.isfinite(best):
        best = min((v for _, v in valid), default=None)
    training = {
        k: st.get(k)
        for k in ("global_step", "epoch", "words", "elapsed", "stopped", "batching")
        if st.get(k) is not None
    }
    training = _scalars(training)
    if best is not None:
        training["best_valid_loss"] = float(best)
        training["best_valid_perplexity"] = _finite(perplexity_of(best, 1))
    vocab_card = None
    if vocab is not None:
        counts = vocab.counts
        ranked = []
        if counts is not None:
            order = np.argsort(-np.asarray(counts), kind="stable")
            ranked = [[vocab.index_to_word[i], int(counts[i])] for i in order[:12]]
        least = vocab.least_frequent
        vocab_card = {
            "size": len(vocab),
            "unknown_token": vocab.unknown_token,
            "start_token": None if vocab.start_index is None else vocab.index_to_word[vocab.start_index],
            "end_token": None if vocab.end_index is None else vocab.index_to_word[vocab.end_index],
            "training_tokens": None if counts is None else int(sum(counts)),
            "most_frequent": ranked,
            "least_frequent": list(least) if least else None,
        }
    corpus = None
    if service.corpus_meta is not None or not tutorial:
        c = service.corpus_meta or {}
        splitter = c.get("splitter")
        corpus = {
            "level": c.get("level") or service.level,
            "settings": _scalars(c.get("settings")),
            "sentence_splitter": (splitter.get("kind") if isinstance(splitter, dict) else None),
            "stats": _corpus_file_stats(folder),
            "text_format": service.text_format,
        }
    return {
        "name": service.path.name,
        "kind": "tutorial" if tutorial else "rnnlm checkpoint",
        "task": "fill" if cfg.bidirectional else "lm",
        "level": service.level,
        "capabilities": service.capabilities,
        "config": cfg.to_dict(),
        "parameters": int(model.n_parameters()),
        "parameter_shapes": {k: list(v) for k, v in param_shapes(cfg).items()},
        "special_ids": service.special._asdict(),
        "vocabulary": vocab_card,
        "corpus": corpus,
        "training": training or None,
        "train_config": _scalars(st.get("train_config")) or None,
        "baselines": _baselines(st.get("baselines")),
        "history": {"source": history_source, "train": _curve(history, "train_loss"), "valid": valid},
        "engine": _scalars(meta.get("engine"))
        if isinstance(meta.get("engine"), dict)
        else meta.get("engine"),
        "saved_with_linker": meta.get("linker"),
        "linker": model.linker,
        "saved_at": meta.get("saved_at"),
        "limits": service.limits.to_json(),
    }
