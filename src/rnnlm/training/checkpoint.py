"""Checkpoints: one ``.npz`` holding arrays and a JSON document, no pickle, written atomically.

Arrays: ``param/<name>`` (float32 model parameters), ``opt/<name>`` (optimizer state) and
``meta`` (UTF-8 JSON as uint8): format and version, model config, vocabulary, corpus settings
(so new text is tokenized exactly as the training corpus was), optimizer settings, training
state (step, epoch, RNG state, learning-rate schedule, best validation loss), and the engine and
linker that wrote it.  Loading validates everything and never unpickles.

Untrusted files: ``np.load(allow_pickle=False)`` refuses object arrays (a pickle could run code)
and the refusal names the array.  Arrays must be real floating point: float16/float32/float64 are
accepted and cast to float32 (NumPy's float64 default, half-precision exports), a value that
overflows float32 is refused (it would load as Inf); integer, boolean, complex and string arrays
are refused with their name and dtype.  The JSON metadata is type-checked (model settings,
vocabulary, corpus settings, training state) before anything is built from it.

:func:`load_model` also accepts the tutorial's published ``trained-model-theano.npz``
(U (H, C), V (C, H), W (H, H), no vocabulary), loaded as an rnn-cell model without output bias.
"""

from __future__ import annotations

import json
import struct
import time
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rnnlm.errors import CheckpointError, ConfigError
from rnnlm.fileio import atomic_savez

FORMAT = "rnnlm-checkpoint"
VERSION = 1


def _meta_array(meta: dict) -> np.ndarray:
    return np.frombuffer(json.dumps(meta, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)


def save_checkpoint(path, model, corpus=None, train_state=None, states=None) -> Path:
    """Write ``model`` (+ optimizer state, vocabulary, corpus settings, training state).

    ``corpus`` is a :class:`rnnlm.data.corpus.Corpus` (only its vocabulary/settings/splitter are
    stored) or a dict of its :meth:`~rnnlm.data.corpus.Corpus.metadata`.  ``states``: the carried
    hidden state of stream training.  Refuses to write non-finite parameters: a NaN checkpoint would
    poison every later resume.
    """
    from rnnlm import engine

    params = model.get_params()
    for k, v in params.items():
        if not np.all(np.isfinite(v)):
            raise CheckpointError(f"refusing to save a checkpoint: parameter {k} contains NaN or Inf")
    arrays = {f"param/{k}": np.asarray(v, np.float32) for k, v in params.items()}
    opt_meta = None
    if model.optimizer is not None:
        opt = model.optimizer
        arrays.update({f"opt/{k}": np.asarray(v) for k, v in opt.get_state().items()})
        opt_meta = {"name": opt.name, "clip": opt.clip}
    corpus_meta, vocab = None, None
    if corpus is not None:
        corpus_meta = dict(corpus if isinstance(corpus, dict) else corpus.metadata())
        corpus_meta.pop("stats", None)
        vocab = corpus_meta.pop("vocab", None)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.config.to_dict(),
        "vocab": vocab,
        "corpus": corpus_meta,
        "optimizer": opt_meta,
        "train_state": train_state or {},
        "engine": engine.describe(),
        "linker": model.linker,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    for i, s in enumerate(states or ()):  # carried hidden state of stream training
        arrays[f"state/{i}"] = np.asarray(s, np.float32)
    arrays["meta"] = _meta_array(meta)
    try:
        return atomic_savez(path, **arrays)
    except OSError as e:  # full disk, vanished folder...: the previous file at path is intact
        raise CheckpointError(f"{path}: cannot write checkpoint ({e.strerror or e})") from None


def update_train_state(path, **entries) -> Path:
    """Add ``entries`` to the training state of the checkpoint at ``path`` (rewritten atomically; the arrays
    are copied as they are)."""
    ck = read_checkpoint(path)
    if ck["tutorial"]:
        raise CheckpointError(f"{path}: the tutorial's model file has no training state")
    with np.load(ck["path"], allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = dict(ck["meta"])
    meta["train_state"] = {**(meta.get("train_state") or {}), **entries}
    arrays["meta"] = _meta_array(meta)
    try:
        return atomic_savez(ck["path"], **arrays)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot write checkpoint ({e.strerror or e})") from None


def resolve(path) -> Path:
    """The checkpoint file ``path`` names: the file itself, or in a run folder its ``best.npz`` (the best
    validation score), else its ``checkpoint.npz`` (the latest)."""
    p = Path(path)
    if p.is_dir():
        for name in ("best.npz", "checkpoint.npz"):
            if (p / name).is_file():
                return p / name
        raise CheckpointError(f"{p}: a folder without best.npz or checkpoint.npz (not a run folder)")
    return p


def read_checkpoint(path) -> dict:
    """Read and validate a checkpoint file (or a run folder, see :func:`resolve`):
    ``{'meta', 'params', 'opt', 'states', 'tutorial', 'path'}``."""
    p = resolve(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such file")
    data = {}
    key = None
    try:
        with np.load(p, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise CheckpointError(f"{p}: a single .npy array, not an .npz checkpoint")
            for key in z.files:
                data[key] = z[key]
    except CheckpointError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e) and key is None:  # np.load read neither a zip nor an .npy header
            raise CheckpointError(f"{p}: not an .npz file (a checkpoint is an .npz archive)") from None
        if "allow_pickle" in str(e):
            raise CheckpointError(
                f"{p}: array {key!r} holds pickled Python objects; refused (loading it could run code)"
            ) from None
        raise CheckpointError(f"{p}: not a readable .npz checkpoint (truncated or corrupt: {e})") from None
    except (
        OSError,
        EOFError,
        zipfile.BadZipFile,
        zlib.error,
        KeyError,
        NotImplementedError,
        RuntimeError,
        struct.error,
        OverflowError,
        MemoryError,
    ) as e:  # a damaged zip can raise any of these
        raise CheckpointError(f"{p}: not a readable .npz checkpoint (truncated or corrupt: {e})") from None
    if "meta" not in data:
        if {"U", "V", "W"} <= set(data):
            params = {k: data[k] for k in "UVW"}
            _check_float_arrays(p, params)
            return {
                "meta": {"format": "tutorial"},
                "params": params,
                "opt": {},
                "states": [],
                "tutorial": True,
                "path": p,
            }
        raise CheckpointError(f"{p}: not an rnnlm checkpoint (no meta) nor a tutorial U/V/W model")
    try:
        if data["meta"].dtype != np.uint8 or data["meta"].ndim != 1:
            raise ValueError(f"meta is {data['meta'].dtype} {data['meta'].shape}, not uint8 bytes")
        meta = json.loads(data["meta"].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{p}: unreadable checkpoint metadata ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{p}: not an rnnlm checkpoint")
    _check_meta(p, meta)
    params = {k[6:]: v for k, v in data.items() if k.startswith("param/")}
    opt = {k[4:]: v for k, v in data.items() if k.startswith("opt/")}
    n_states = sum(k.startswith("state/") for k in data)
    if any(f"state/{i}" not in data for i in range(n_states)):
        raise CheckpointError(f"{p}: carried states are not numbered 0..{n_states - 1}")
    states = [data[f"state/{i}"] for i in range(n_states)]
    _check_float_arrays(
        p,
        {
            **{f"param/{k}": v for k, v in params.items()},
            **{f"opt/{k}": v for k, v in opt.items()},
            **{f"state/{i}": v for i, v in enumerate(states)},
        },
    )
    return {"meta": meta, "params": params, "opt": opt, "states": states, "tutorial": False, "path": p}


def _check_float_arrays(path, arrays: dict) -> None:
    """Real floating arrays only (see the module docstring); float32 overflow is refused."""
    for name, a in arrays.items():
        if a.dtype.kind != "f":
            raise CheckpointError(
                f"{path}: array {name} has dtype {a.dtype}; expected floating point (float16/32/64)"
            )
        if a.dtype.itemsize > 4 and a.size and np.all(np.isfinite(a)):
            with np.errstate(over="ignore"):
                if not np.all(np.isfinite(a.astype(np.float32))):
                    raise CheckpointError(f"{path}: array {name} has values beyond the float32 range")


# Types of ModelConfig's fields as a JSON document gives them.
_MODEL_FIELD_TYPES = {
    "vocab_size": int,
    "hidden_dim": int,
    "layers": int,
    "embedding_dim": int,
    "bptt_truncate": int,
    "cell": str,
    "activation": str,
    "gate": str,
    "bidirectional": bool,
    "tie_embeddings": bool,
    "output_bias": bool,
    "dropout": float,
}
_TRAIN_STATE_TYPES = {
    "epoch": int,
    "step_in_epoch": int,
    "global_step": int,
    "bad_evals": int,
    "words": int,
    "elapsed": float,
    "best_valid": float,
    "history": list,
}


def _is(value, kind) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _check_meta(p, meta: dict) -> None:
    """Type-check the JSON metadata before anything is built from it (clear errors, no tracebacks)."""
    from rnnlm.data import validate_settings

    version = meta.get("version", 0)
    if not _is(version, int):
        raise CheckpointError(f"{p}: bad checkpoint version {version!r}")
    if version > VERSION:
        raise CheckpointError(f"{p}: checkpoint version {version} is newer than this rnnlm")
    model = meta.get("model")
    if not isinstance(model, dict):
        raise CheckpointError(f"{p}: no model settings in the checkpoint")
    for k, v in model.items():
        kind = _MODEL_FIELD_TYPES.get(k)
        if kind is not None and not _is(v, kind):
            raise CheckpointError(
                f"{p}: model setting {k}={v!r} is not a{'n' if kind is int else ''} {kind.__name__}"
            )
    for k in ("vocab", "corpus", "optimizer"):
        if meta.get(k) is not None and not isinstance(meta[k], dict):
            raise CheckpointError(f"{p}: bad {k!r} entry in the checkpoint metadata")
    corpus = meta.get("corpus") or {}
    if corpus.get("settings") is not None:
        try:
            validate_settings(corpus["settings"])
        except ConfigError as e:
            raise CheckpointError(f"{p}: bad corpus settings ({e})") from None
    for k in ("splitter", "stats"):
        if corpus.get(k) is not None and not isinstance(corpus[k], dict):
            raise CheckpointError(f"{p}: bad corpus {k} in the checkpoint metadata")
    opt = meta.get("optimizer") or {}
    if opt and opt.get("name") not in ("sgd", "rmsprop", "adam"):
        raise CheckpointError(f"{p}: unknown optimizer {opt.get('name')!r}")
    st = meta.get("train_state")
    if st is not None:
        if not isinstance(st, dict):
            raise CheckpointError(f"{p}: bad training state in the checkpoint metadata")
        for k, kind in _TRAIN_STATE_TYPES.items():
            v = st.get(k)
            if v is not None and (not _is(v, kind) or (kind is int and v < 0)):
                raise CheckpointError(f"{p}: bad training state {k}={v!r}")


def _tutorial_model(params, path, linker):
    from rnnlm.models.lm import LanguageModel, ModelConfig
    from rnnlm.models.reference import tutorial_to_general

    try:
        p = tutorial_to_general(params["U"], params["V"], params["W"])
        H, C = p["U0"].shape[1:]
        cfg = ModelConfig(vocab_size=C, hidden_dim=H, cell="rnn", output_bias=False)
        return LanguageModel(cfg, params=p, linker=linker)
    except ConfigError as e:  # bad shapes, NaN values, a vocabulary below 3...
        raise CheckpointError(f"{path}: {e}") from None


class LoadedModel(NamedTuple):
    """What :func:`load_model` returns; unpacks as ``model, vocab, meta``.

    ``model``: the :class:`~rnnlm.models.lm.LanguageModel`; ``vocab``: its
    :class:`~rnnlm.data.vocab.Vocabulary` (None for the tutorial's file); ``meta``: the checkpoint's
    JSON metadata (model and training settings, corpus settings, training state).
    """

    model: object
    vocab: object
    meta: dict

    def encoder(self, format: str | None = None):
        """An empty corpus that tokenizes new text exactly as the training corpus was."""
        from rnnlm.data import Corpus

        if self.vocab is None:
            raise CheckpointError("this model has no vocabulary (the tutorial's file): it cannot read text")
        return Corpus.encoder(self.vocab, self.meta.get("corpus"), format=format)


def load_model(path, linker=None) -> LoadedModel:
    """Load a model for inference or further training: a :class:`LoadedModel` ``(model, vocab, meta)``.

    ``path``: an rnnlm checkpoint, the tutorial's ``trained-model-theano.npz``, or a run folder (its
    ``best.npz``, else ``checkpoint.npz``; see :func:`resolve`), or what :func:`read_checkpoint` returned.
    ``linker`` defaults to the engine's default.  The optimizer state and carried hidden state are not
    loaded here (:meth:`rnnlm.training.trainer.Trainer.resume` restores them).
    """
    from rnnlm import engine
    from rnnlm.data import Vocabulary
    from rnnlm.models.lm import LanguageModel, ModelConfig

    ck = path if isinstance(path, dict) else read_checkpoint(path)
    path = ck["path"]
    linker = linker or engine.default_linker()
    if ck["tutorial"]:
        return LoadedModel(_tutorial_model(ck["params"], path, linker), None, ck["meta"])
    meta = ck["meta"]
    try:
        config = ModelConfig.from_dict(meta["model"])
    except (KeyError, TypeError, ConfigError) as e:
        raise CheckpointError(f"{path}: bad model config ({e})") from None
    vocab = None
    if meta.get("vocab") is not None:
        try:
            vocab = Vocabulary.from_json(meta["vocab"])
        except (ConfigError, KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: bad vocabulary ({e})") from None
        if len(vocab) != config.vocab_size:
            raise CheckpointError(
                f"{path}: vocabulary has {len(vocab)} words but the model expects {config.vocab_size}"
            )
    try:
        model = LanguageModel(config, params=ck["params"], linker=linker)
    except ConfigError as e:
        raise CheckpointError(f"{path}: {e}") from None
    return LoadedModel(model, vocab, meta)
