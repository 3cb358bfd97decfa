"""Checkpoints: one ``.npz`` holding arrays and a JSON document, no pickle, written atomically.

Arrays: ``param/<name>`` (float32 model parameters), ``opt/<name>`` (optimizer state) and
``meta`` (UTF-8 JSON as uint8): format and version, model config, vocabulary, corpus settings
(so new text is tokenized exactly as the training corpus was), optimizer settings, training
state (step, epoch, RNG state, learning-rate schedule, best validation loss), and the engine and
linker that wrote it.  Loading validates everything and never unpickles.

:func:`load_model` also accepts the tutorial's published ``trained-model-theano.npz``
(U (H, C), V (C, H), W (H, H), no vocabulary), loaded as an rnn-cell model without output bias.
"""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import numpy as np

from .errors import CheckpointError, ConfigError

FORMAT = "rnnlm-checkpoint"
VERSION = 1


def _meta_array(meta: dict) -> np.ndarray:
    return np.frombuffer(json.dumps(meta, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)


def save_checkpoint(path, model, vocab=None, corpus=None, train_state=None, states=None,
                    corpus_settings=None) -> Path:
    """Write ``model`` (+ optimizer state, vocabulary, corpus settings, training state).

    ``corpus`` is a :class:`rnnlm.corpus.Corpus` (only its vocabulary/settings/splitter are
    stored) or a dict of corpus metadata.  Refuses to write non-finite parameters: a NaN
    checkpoint would poison every later resume.
    """
    from . import engine
    from .fileio import atomic_savez

    corpus = corpus if corpus is not None else corpus_settings
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
    corpus_meta = None
    if corpus is not None:
        corpus_meta = corpus if isinstance(corpus, dict) else corpus._meta()
        corpus_meta = dict(corpus_meta)
        corpus_meta.pop("stats", None)
    if vocab is None and corpus is not None and not isinstance(corpus, dict):
        vocab = corpus.vocab
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.config.to_dict(),
        "vocab": vocab.to_json() if vocab is not None else None,
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
    return atomic_savez(path, **arrays)


def read_checkpoint(path) -> dict:
    """Read and validate a checkpoint file: ``{'meta', 'params', 'opt', 'tutorial'}``."""
    p = Path(path)
    if p.is_dir():
        raise CheckpointError(f"{p}: is a directory, not a checkpoint")
    if not p.exists():
        raise CheckpointError(f"{p}: no such file")
    try:
        with np.load(p, allow_pickle=False) as z:
            files = set(z.files)
            data = {k: z[k] for k in files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise CheckpointError(f"{p}: not a readable .npz checkpoint (truncated or corrupt: {e})") from None
    if "meta" not in data:
        if {"U", "V", "W"} <= set(data):
            return {"meta": {"format": "tutorial"}, "params": {k: data[k] for k in "UVW"},
                    "opt": {}, "tutorial": True}
        raise CheckpointError(f"{p}: not an rnnlm checkpoint (no meta) nor a tutorial U/V/W model")
    try:
        meta = json.loads(data["meta"].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{p}: unreadable checkpoint metadata ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{p}: not an rnnlm checkpoint")
    if int(meta.get("version", 0)) > VERSION:
        raise CheckpointError(f"{p}: checkpoint version {meta['version']} is newer than this rnnlm")
    params = {k[6:]: v for k, v in data.items() if k.startswith("param/")}
    opt = {k[4:]: v for k, v in data.items() if k.startswith("opt/")}
    states = [data[f"state/{i}"] for i in range(sum(k.startswith("state/") for k in data))]
    return {"meta": meta, "params": params, "opt": opt, "states": states, "tutorial": False}


def _tutorial_model(params, path, linker):
    from .model import LanguageModel, ModelConfig

    U, V, W = (np.asarray(params[k]) for k in "UVW")
    if U.ndim != 2 or V.ndim != 2 or W.ndim != 2:
        raise CheckpointError(f"{path}: U, V, W must be matrices")
    H, C = U.shape
    if V.shape != (C, H) or W.shape != (H, H):
        raise CheckpointError(f"{path}: inconsistent shapes U {U.shape}, V {V.shape}, W {W.shape}")
    cfg = ModelConfig(vocab_size=C, hidden_dim=H, cell="rnn", output_bias=False)
    p = {"U0": U[None], "W0": W[None], "b0": np.zeros((1, H), np.float32), "V": V}
    return LanguageModel(cfg, params=p, linker=linker)


def load_model(path, linker=None):
    """Load a model for inference or further training.

    Returns ``(model, vocab, meta)``; ``vocab`` is a :class:`~rnnlm.corpus.Vocabulary` or None
    (the tutorial's file has none).  ``linker`` defaults to the engine's default.
    """
    from . import engine
    from .corpus import Vocabulary
    from .model import LanguageModel, ModelConfig

    ck = read_checkpoint(path)
    linker = linker or engine.default_linker()
    if ck["tutorial"]:
        return _tutorial_model(ck["params"], path, linker), None, ck["meta"]
    meta = ck["meta"]
    try:
        config = ModelConfig.from_dict(meta["model"])
    except (KeyError, TypeError, ConfigError) as e:
        raise CheckpointError(f"{path}: bad model config ({e})") from None
    vocab = None
    if meta.get("vocab") is not None:
        try:
            vocab = Vocabulary.from_json(meta["vocab"])
        except (ConfigError, KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: bad vocabulary ({e})") from None
        if len(vocab) != config.vocab_size:
            raise CheckpointError(f"{path}: vocabulary has {len(vocab)} words but the model expects "
                                  f"{config.vocab_size}")
    try:
        model = LanguageModel(config, params=ck["params"], linker=linker)
    except ConfigError as e:
        raise CheckpointError(f"{path}: {e}") from None
    model.checkpoint_opt_state = ck["opt"]
    model.checkpoint_states = ck["states"]
    return model, vocab, meta


def corpus_encoder(meta: dict, vocab):
    """An empty :class:`~rnnlm.corpus.Corpus` that tokenizes new text like the training corpus."""
    from .corpus import Corpus

    c = meta.get("corpus") or {}
    return Corpus(vocab, [], c.get("level", "word"), {}, c.get("settings"), c.get("splitter"))
