"""``rnnlm.train(...)``: everything ``rnnlm train`` does, as a library call.

Prepare (or load) the corpus, split it, build or resume the model, check memory and disk before any
training time is spent, save ``corpus.npz`` beside the checkpoints, run the :class:`Trainer`, score the
test split. The command line only parses flags into these arguments and prints the result.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnlm.errors import ConfigError
from rnnlm.training.config import TrainConfig


@dataclass
class TrainResult:
    """What :func:`train` returns.

    ``model``: the trained :class:`~rnnlm.models.lm.LanguageModel` with its best-validated parameters
    (``checkpoint.npz`` holds the last ones, for resuming); ``state``: the trainer's state (``history``,
    ``best_valid``, why it ``stopped``, steps, words, elapsed seconds); ``corpus`` and its ``splits``;
    ``trainer``; ``test``: the test split's score (``loss``, ``perplexity``, ``tokens``) or None.
    """

    model: object
    state: dict
    corpus: object
    splits: dict
    trainer: object
    test: dict | None = None
    out: Path | None = None

    def summary(self) -> dict:
        """The numbers ``rnnlm train --json`` prints."""
        from rnnlm.inference.scoring import perplexity_of

        st = self.state
        res = {
            "stopped": st["stopped"],
            "steps": st["global_step"],
            "epochs": st["epoch"],
            "words": st["words"],
            "elapsed_s": round(st["elapsed"], 2),
            "best_valid_loss": st["best_valid"],
            "out": str(self.out) if self.out else None,
        }
        if st["best_valid"] is not None:
            res["best_valid_perplexity"] = perplexity_of(st["best_valid"], 1)
        if self.test is not None:
            res["test"] = self.test
        if st.get("baselines"):
            res["baselines"] = st["baselines"]
        if st.get("interpolation"):
            res["interpolation"] = st["interpolation"]
        return res


def check_output_dir(out) -> Path:
    """Create ``out`` and prove it is writable before any training time is spent."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    probe = out / f".write-test-{os.getpid()}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"x" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise ConfigError(f"--out {out}: not writable ({e.strerror or e})") from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    return out


def _gb(n_bytes) -> str:
    return f"{n_bytes / 1e9:.3g} GB" if n_bytes >= 1e8 else f"{n_bytes / 1e6:.3g} MB"


def check_resources(out, config, optimizer: str, batch_size: int, max_length: int) -> None:
    """Refuse, before any training time is spent, a model that cannot fit in memory or whose
    checkpoints cannot fit on the output disk (estimates; the errors say what to change).

    Memory: parameters, gradients and optimizer slots (4 bytes each), plus the per-step activations,
    dominated by the (L·B, C) output logits (forward, softmax and gradient). Disk: checkpoint.npz
    and best.npz, and the temporary copy an atomic write needs.
    """
    from rnnlm.models.lm import param_shapes

    n = sum(math.prod(s) for s in param_shapes(config).values())
    slots = {"sgd": 0, "rmsprop": 1, "adam": 2}.get(optimizer, 2)
    H = config.hidden_dim * len(config.directions)
    memory = 4 * n * (2 + slots) + 4 * 3 * max_length * batch_size * (
        config.vocab_size + 4 * H * config.layers
    )
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        physical = None
    if physical and memory > physical:
        raise ConfigError(
            f"this model ({n:,} parameters) with --batch-size {batch_size} and --max-length "
            f"{max_length} needs about {_gb(memory)} of memory; this machine has {_gb(physical)} "
            f"(use a smaller --hidden, --vocab-size, --batch-size or --max-length)"
        )
    checkpoint = 4 * n * (1 + slots)
    free = shutil.disk_usage(out).free
    for name in ("checkpoint.npz", "best.npz"):  # a resumed run overwrites these
        if (Path(out) / name).is_file():
            free += (Path(out) / name).stat().st_size
    if 3 * checkpoint > free:
        raise ConfigError(
            f"--out {out}: checkpoints need about {_gb(3 * checkpoint)} but only {_gb(free)} is free"
        )


def training_vocabulary(corpus, train, min_count: int = 2):
    """``corpus`` with the tokens that occur fewer than ``min_count`` times in its training split ``train``
    folded into the unknown token, or ``corpus`` itself when there are none.

    A word only seen in held-out text cannot be learned: a softmax pushes its probability down at every
    step and the model pays dearly each time it appears (on the reddit sample, 16% of the validation
    tokens), while an n-gram gives it its smoothing mass. So the vocabulary comes from the training text,
    and -- so that the unknown token itself is seen in training -- words seen once there are read as it
    too: its probability then estimates that of a new word (Good-Turing: the share of words seen once).
    The model and its baselines share the result. The reserved tokens (SENTENCE_START, SENTENCE_END, the
    unknown token) are always kept; ``min_count=1`` keeps every training word.
    """
    from rnnlm.data import Corpus, Vocabulary

    vocab = corpus.vocab
    counts = np.bincount(np.asarray(train.stream(), np.int64), minlength=len(vocab))
    keep = counts >= max(int(min_count), 1)
    for i in (vocab.start_index, vocab.end_index, vocab.unk_index):
        if i is not None:
            keep[i] = True
    if keep.all():
        return corpus
    kept = np.flatnonzero(keep)
    kept = kept[kept != vocab.unk_index]
    old_counts = vocab.counts or [0] * len(vocab)
    folded = int(sum(old_counts[i] for i in np.flatnonzero(~keep)))
    words = [vocab.index_to_word[i] for i in kept]
    new_counts = [old_counts[i] for i in kept] + [old_counts[vocab.unk_index] + folded]
    new_vocab = Vocabulary(words + [vocab.unknown_token], vocab.unknown_token, new_counts)
    table = np.full(len(vocab), len(words), np.int32)  # every dropped id -> the unknown token
    table[kept] = np.arange(len(words), dtype=np.int32)
    ids = table[np.asarray(corpus.stream())]
    offsets = np.concatenate([[0], np.cumsum([len(q) for q in corpus.sentences])])
    meta = corpus.metadata()
    out = Corpus.from_arrays(
        new_vocab, ids, offsets, corpus.level, settings=meta["settings"], splitter=meta["splitter"]
    )
    unknown = int((ids == len(words)).sum())
    out.stats = {
        **corpus.stats,
        "vocab_size": len(new_vocab),
        "rare_in_training": int((~keep).sum()),
        "min_count": int(min_count),
        "unknown_tokens": unknown,
        "unknown_rate": unknown / max(len(ids), 1),
    }
    return out


def split_for_training(corpus, valid: float, test: float, seed: int, min_count: int = 2):
    """``(corpus, splits)``: the train/valid/test split, with the :func:`training_vocabulary` of its training
    split (the corpus re-encoded when words were folded; the split is the same sentences either way). A
    corpus that already has that vocabulary (a resumed run's corpus.npz) is returned as it is."""
    splits = corpus.split(valid=valid, test=test, seed=seed)
    restricted = training_vocabulary(corpus, splits["train"], min_count)
    if restricted is corpus:
        return corpus, splits
    return restricted, restricted.split(valid=valid, test=test, seed=seed)


def _model_config(model, train, task: str, size: str):
    """``(ModelConfig, names of the settings --size auto chose)``."""
    from rnnlm.models.lm import ModelConfig
    from rnnlm.training.sizing import complete

    vocab_size = len(train.vocab)
    if isinstance(model, ModelConfig):
        if model.vocab_size != vocab_size:
            raise ConfigError(
                f"the model has vocab_size {model.vocab_size} but the corpus's vocabulary has "
                f"{vocab_size} tokens"
            )
        return model, []
    if size not in ("auto", "default"):
        raise ConfigError(f"size must be auto or default, got {size!r}")
    settings, chosen = complete(model, train.level, train.n_tokens, vocab_size, task, auto=size == "auto")
    settings.setdefault("bidirectional", task == "fill")
    return ModelConfig(vocab_size=vocab_size, **settings), chosen


def train(
    corpus,
    out=None,
    *,
    model=None,
    config: TrainConfig | None = None,
    task: str = "lm",
    size: str = "auto",
    min_count: int = 2,
    resume=None,
    valid_fraction: float = 0.05,
    test_fraction: float = 0.05,
    prepare_options=None,
    linker: str | None = None,
    progress: bool = True,
    on_start=None,
    callback=None,
) -> TrainResult:
    """Train a language model as ``rnnlm train`` does; returns a :class:`TrainResult`.

    Args:
        corpus: a :class:`~rnnlm.data.corpus.Corpus`, a corpus file, or a known name (``reddit``,
            ``tinyshakespeare``), prepared with ``prepare_options`` (the keyword arguments of
            :func:`rnnlm.data.prepare`).
        out: the run folder (``checkpoint.npz``, ``best.npz``, ``log.jsonl``, ``loss.png``,
            ``corpus.npz``); None keeps nothing on disk.
        model: a :class:`~rnnlm.models.lm.ModelConfig`, or a dict of its fields without
            ``vocab_size`` (taken from the corpus); fields left out are chosen by ``size``.
        size: ``auto`` (the measured rule of :mod:`rnnlm.training.sizing`, from the corpus) or
            ``default`` (ModelConfig's defaults).
        min_count: words seen fewer times in the training split are read as the unknown token (see
            :func:`training_vocabulary`).
        config: the :class:`TrainConfig` (default: its defaults).
        task: ``lm`` (left to right) or ``fill`` (the bidirectional fill-in-the-blank model).
        resume: None, True (``out/checkpoint.npz``) or a checkpoint path: continue that run exactly
            (its corpus.npz is reused when ``corpus`` is not a prepared Corpus).
        valid_fraction, test_fraction: the split (by ``config.seed``).
        linker: ``jax``, ``c``, ``numba`` (default: the engine's default).
        on_start: called as ``on_start(trainer, corpus, splits, chosen)`` before the first step, with the
            names of the settings ``size`` chose (the CLI prints its start line there).
        callback: called after every training step with the trainer.
    """
    from rnnlm import engine
    from rnnlm.data import Corpus, prepare
    from rnnlm.models.lm import LanguageModel
    from rnnlm.training.baselines import baselines
    from rnnlm.training.checkpoint import load_model, read_checkpoint
    from rnnlm.training.trainer import Trainer

    if task not in ("lm", "fill"):
        raise ConfigError(f"task must be lm or fill, got {task!r}")
    config = config or TrainConfig()
    linker = linker or engine.default_linker()
    out = check_output_dir(out) if out is not None else None
    ck = None
    if resume:
        if resume is True and out is None:
            raise ConfigError("resume=True needs an output folder")
        path = out / "checkpoint.npz" if resume is True else Path(resume)
        if not path.is_file():
            raise ConfigError(f"--resume: no checkpoint at {path}")
        ck = read_checkpoint(path)
        if ck["tutorial"]:
            raise ConfigError(f"{path}: the tutorial's model file has no training state to resume")
        if not isinstance(corpus, Corpus) and (path.parent / "corpus.npz").is_file():
            corpus = Corpus.load(path.parent / "corpus.npz")
    if not isinstance(corpus, Corpus):
        corpus = prepare(corpus, progress=progress, **(prepare_options or {}))
    if len(corpus) < 3:
        raise ConfigError(f"corpus has only {len(corpus)} sentences; need at least 3")
    corpus, splits = split_for_training(corpus, valid_fraction, test_fraction, config.seed, min_count)
    config = config.resolved(corpus.level)
    if config.lr is None and ck is not None:  # a resumed run continues at the rate it was started with
        saved = ((ck["meta"].get("train_state") or {}).get("train_config") or {}).get("lr")
        config = dataclasses.replace(
            config, lr=saved if isinstance(saved, (int, float)) and saved > 0 else None
        )
    if size == "auto" and config.lr is None:
        from rnnlm.training.sizing import auto_learning_rate

        config = dataclasses.replace(config, lr=auto_learning_rate(corpus.level, config.optimizer))
    chosen = []
    if ck is not None:
        lm, vocab, _ = load_model(ck, linker=linker)
        if vocab is not None and vocab != corpus.vocab:
            raise ConfigError(
                f"--resume: {ck['path']} was trained with a different vocabulary than this corpus"
            )
    else:
        mcfg, chosen = _model_config(model, splits["train"], task, size)
        lm = None
    mcfg = lm.config if lm is not None else mcfg
    if out is not None:
        check_resources(out, mcfg, config.optimizer, config.batch_size, config.max_length)
    if lm is None:
        lm = LanguageModel(mcfg, seed=config.seed, linker=linker)
    trainer = Trainer(
        lm, splits["train"], splits["valid"], config, out_dir=out, corpus=corpus, progress=progress
    )
    if ck is not None:
        trainer.resume(ck)
    if out is not None and (ck is None or not (out / "corpus.npz").exists()):
        corpus.save(out / "corpus.npz")  # once every setting was accepted
    models, report = baselines(splits["train"], {"valid": splits["valid"], "test": splits.get("test")})
    trainer.state["baselines"] = report
    trainer.log({"event": "baselines", **report})
    if out is not None:
        models["kn"].save(out / "ngram.npz")  # for `rnnlm perplexity --interpolate`
    if on_start is not None:
        on_start(trainer, corpus, splits, chosen)
    state = trainer.fit(callback=callback)
    test = None
    if state["stopped"] != "interrupted":
        try:
            test = _final_scores(trainer, models["kn"], splits, out)
        except KeyboardInterrupt:  # Ctrl-C after training: the checkpoint is saved; skip the final scores
            state["stopped"] = "interrupted"
    return TrainResult(lm, state, corpus, splits, trainer, test, out)


def _final_scores(trainer, ngram, splits, out) -> dict | None:
    """Put the best-validated parameters into the model, score the test split with them, and mix the model
    with the n-gram (λ tuned on validation; stored in best.npz). Returns the test score (or None)."""
    from rnnlm.training.baselines import interpolation
    from rnnlm.training.checkpoint import read_checkpoint, update_train_state

    model, state = trainer.model, trainer.state
    best = out / "best.npz" if out is not None else None
    if best is not None and best.is_file():
        model.set_params(read_checkpoint(best)["params"])
    elif trainer.best_params is not None:  # no run folder: the copy the trainer kept
        model.set_params(trainer.best_params)
    test = trainer.evaluate(splits["test"]) if len(splits.get("test") or []) else None
    if not model.config.bidirectional and splits.get("valid") is not None and len(splits["valid"]):
        state["interpolation"] = mixture = interpolation(trainer, model, ngram, splits)
        trainer.log({"event": "interpolation", **mixture})
        if best is not None and best.is_file():
            update_train_state(best, interpolation={**mixture, "ngram": "ngram.npz"})
    return test
