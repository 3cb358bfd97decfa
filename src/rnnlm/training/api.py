"""``rnnlm.train(...)``: everything ``rnnlm train`` does, as a library call.

Prepare (or load) the corpus, split it, build or resume the model, check memory and disk before any
training time is spent, save ``corpus.npz`` beside the checkpoints, run the :class:`Trainer`, score the
test split. The command line only parses flags into these arguments and prints the result.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from rnnlm.errors import ConfigError
from rnnlm.training.config import TrainConfig


@dataclass
class TrainResult:
    """What :func:`train` returns.

    ``model``: the trained :class:`~rnnlm.models.lm.LanguageModel` (its last parameters; ``best.npz``
    holds the best-validated ones); ``state``: the trainer's state (``history``, ``best_valid``, why it
    ``stopped``, steps, words, elapsed seconds); ``corpus`` and its ``splits``; ``trainer``; ``test``:
    the test split's score (``loss``, ``perplexity``, ``tokens``) or None.
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
        res = {"stopped": st["stopped"], "steps": st["global_step"], "epochs": st["epoch"], "words": st["words"],
               "elapsed_s": round(st["elapsed"], 2), "best_valid_loss": st["best_valid"],
               "out": str(self.out) if self.out else None}
        if st["best_valid"] is not None:
            res["best_valid_perplexity"] = perplexity_of(st["best_valid"], 1)
        if self.test is not None:
            res["test"] = self.test
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
    memory = 4 * n * (2 + slots) + 4 * 3 * max_length * batch_size * (config.vocab_size + 4 * H * config.layers)
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        physical = None
    if physical and memory > physical:
        raise ConfigError(f"this model ({n:,} parameters) with --batch-size {batch_size} and --max-length "
                          f"{max_length} needs about {_gb(memory)} of memory; this machine has {_gb(physical)} "
                          f"(use a smaller --hidden, --vocab-size, --batch-size or --max-length)")
    checkpoint = 4 * n * (1 + slots)
    free = shutil.disk_usage(out).free
    for name in ("checkpoint.npz", "best.npz"):  # a resumed run overwrites these
        if (Path(out) / name).is_file():
            free += (Path(out) / name).stat().st_size
    if 3 * checkpoint > free:
        raise ConfigError(f"--out {out}: checkpoints need about {_gb(3 * checkpoint)} but only {_gb(free)} "
                          f"is free")


def _model_config(model, vocab_size: int, task: str):
    from rnnlm.models.lm import ModelConfig

    if isinstance(model, ModelConfig):
        if model.vocab_size != vocab_size:
            raise ConfigError(f"the model has vocab_size {model.vocab_size} but the corpus's vocabulary has "
                              f"{vocab_size} tokens")
        return model
    settings = dict(model or {})
    settings.setdefault("bidirectional", task == "fill")
    return ModelConfig(vocab_size=vocab_size, **settings)


def train(corpus, out=None, *, model=None, config: TrainConfig | None = None, task: str = "lm",
          resume=None, valid_fraction: float = 0.05, test_fraction: float = 0.05, prepare_options=None,
          linker: str | None = None, progress: bool = True, on_start=None, callback=None) -> TrainResult:
    """Train a language model as ``rnnlm train`` does; returns a :class:`TrainResult`.

    Args:
        corpus: a :class:`~rnnlm.data.corpus.Corpus`, a corpus file, or a known name (``reddit``,
            ``tinyshakespeare``), prepared with ``prepare_options`` (the keyword arguments of
            :func:`rnnlm.data.prepare`).
        out: the run folder (``checkpoint.npz``, ``best.npz``, ``log.jsonl``, ``loss.png``,
            ``corpus.npz``); None keeps nothing on disk.
        model: a :class:`~rnnlm.models.lm.ModelConfig`, or a dict of its fields without
            ``vocab_size`` (taken from the corpus).
        config: the :class:`TrainConfig` (default: its defaults).
        task: ``lm`` (left to right) or ``fill`` (the bidirectional fill-in-the-blank model).
        resume: None, True (``out/checkpoint.npz``) or a checkpoint path: continue that run exactly
            (its corpus.npz is reused when ``corpus`` is not a prepared Corpus).
        valid_fraction, test_fraction: the split (by ``config.seed``).
        linker: ``jax``, ``c``, ``numba`` (default: the engine's default).
        on_start: called as ``on_start(trainer, corpus, splits)`` before the first step (the CLI
            prints its start line there).
        callback: called after every training step with the trainer.
    """
    from rnnlm import engine
    from rnnlm.data import Corpus, prepare
    from rnnlm.models.lm import LanguageModel
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
    splits = corpus.split(valid=valid_fraction, test=test_fraction, seed=config.seed)
    if ck is not None:
        lm, vocab, _ = load_model(ck, linker=linker)
        if vocab is not None and vocab != corpus.vocab:
            raise ConfigError(f"--resume: {ck['path']} was trained with a different vocabulary than this corpus")
    else:
        mcfg = _model_config(model, len(corpus.vocab), task)
        lm = None
    mcfg = lm.config if lm is not None else mcfg
    if out is not None:
        check_resources(out, mcfg, config.optimizer, config.batch_size, config.max_length)
    if lm is None:
        lm = LanguageModel(mcfg, seed=config.seed, linker=linker)
    trainer = Trainer(lm, splits["train"], splits["valid"], config, out_dir=out, corpus=corpus,
                      progress=progress)
    if ck is not None:
        trainer.resume(ck)
    if out is not None and (ck is None or not (out / "corpus.npz").exists()):
        corpus.save(out / "corpus.npz")  # once every setting was accepted
    if on_start is not None:
        on_start(trainer, corpus, splits)
    state = trainer.fit(callback=callback)
    test = None
    if len(splits.get("test", [])) and state["stopped"] != "interrupted":
        try:
            test = trainer.evaluate(splits["test"])
        except KeyboardInterrupt:  # Ctrl-C after training: the checkpoint is saved; skip the test score
            state["stopped"] = "interrupted"
    return TrainResult(lm, state, corpus, splits, trainer, test, out)
