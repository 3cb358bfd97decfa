"""``rnnlm.train(...)``: everything ``rnnlm train`` does, as a library call.

Prepare (or load) the corpus, split it, build or resume the model, check memory and disk before any
training time is spent, save ``corpus.npz`` beside the checkpoints, run the :class:`Trainer`, score the
test split. The command line only parses flags into these arguments and prints the result.

Past one device and past RAM: ``config.devices`` trains data-parallel (:mod:`rnnlm.devices`), and
``distributed`` (or JAX's environment variables) joins a multi-process run in which only process 0
writes; a prepared memory-mapped corpus (``NAME.json``, :mod:`rnnlm.data.mapped`) is trained on from its
map, its splits are selections of it, and the run keeps it as ``corpus.json`` (not ``corpus.npz``).
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

#: The n-gram baselines are fitted on at most this many training tokens (the first sentences of the
#: training split): Kneser-Ney counting holds several int64 arrays per token.
BASELINE_FIT_TOKENS = 1_000_000


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


def training_vocabulary(corpus, train, min_count: int = 2, path=None):
    """``corpus`` with the tokens that occur fewer than ``min_count`` times in its training split ``train``
    folded into the unknown token, or ``corpus`` itself when there are none.

    A word only seen in held-out text cannot be learned: a softmax pushes its probability down at every
    step and the model pays dearly each time it appears (on the reddit sample, 16% of the validation
    tokens), while an n-gram gives it its smoothing mass. So the vocabulary comes from the training text,
    and -- so that the unknown token itself is seen in training -- words seen once there are read as it
    too: its probability then estimates that of a new word (Good-Turing: the share of words seen once).
    The model and its baselines share the result. The reserved tokens (SENTENCE_START, SENTENCE_END, the
    unknown token) are always kept; ``min_count=1`` keeps every training word. A memory-mapped corpus is
    re-encoded a slice at a time, into the mapped corpus file ``path`` when given (else into memory).
    """
    from rnnlm.data import Corpus, Vocabulary, mapped

    vocab = corpus.vocab
    counts = train.token_counts()
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
    every = corpus.token_counts()
    unknown = int(every[~keep].sum() + every[vocab.unk_index])
    stats = {
        **corpus.stats,
        "vocab_size": len(new_vocab),
        "rare_in_training": int((~keep).sum()),
        "min_count": int(min_count),
        "unknown_tokens": unknown,
        "unknown_rate": unknown / max(corpus.n_tokens, 1),
    }
    meta = corpus.metadata()
    segments = corpus.segments()
    if corpus.mapped and path is not None:
        new_meta = {**meta, "vocab": new_vocab.to_json(), "stats": stats}
        out = Corpus.load(mapped.write(path, new_meta, *segments, len(new_vocab), table=table))
    else:
        offsets = np.concatenate([[0], np.cumsum(segments.lengths)])
        ids = table[mapped.iter_concat(*segments)] if corpus.mapped else table[np.asarray(corpus.stream())]
        out = Corpus.from_arrays(
            new_vocab, ids, offsets, corpus.level, settings=meta["settings"], splitter=meta["splitter"]
        )
    out.stats = stats
    return out


def split_for_training(corpus, valid: float, test: float, seed: int, min_count: int = 2, path=None):
    """``(corpus, splits)``: the train/valid/test split, with the :func:`training_vocabulary` of its training
    split (the corpus re-encoded when words were folded -- a mapped corpus into ``path`` when given; the
    split is the same sentences either way). A corpus that already has that vocabulary (a resumed run's
    corpus.npz) is returned as it is."""
    splits = corpus.split(valid=valid, test=test, seed=seed)
    restricted = training_vocabulary(corpus, splits["train"], min_count, path)
    if restricted is corpus:
        return corpus, splits
    return restricted, restricted.split(valid=valid, test=test, seed=seed)


def _model_config(model, train, task: str, size: str, budget_s: float | None = None):
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
    settings, chosen = complete(
        model, train.level, train.n_tokens, vocab_size, task, auto=size == "auto", budget_s=budget_s
    )
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
    distributed: dict | None = None,
) -> TrainResult:
    """Train a language model as ``rnnlm train`` does; returns a :class:`TrainResult`.

    Args:
        corpus: a :class:`~rnnlm.data.corpus.Corpus`, a prepared corpus file (``.npz``, or a mapped
            ``NAME.json``: trained on from its memory map), a corpus file, or a known name (``reddit``,
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
        distributed: ``{"coordinator": "HOST:PORT", "num_processes": P, "process_id": I, "timeout": s}``:
            join a multi-process run (:func:`rnnlm.devices.initialize`; JAX's environment variables
            otherwise); only process 0 writes to ``out``. ``config.devices`` spans every process's devices.
    """
    from rnnlm import devices, engine
    from rnnlm.data import Corpus, mapped, prepare
    from rnnlm.engine_ops import check_precision
    from rnnlm.models.lm import LanguageModel
    from rnnlm.training.baselines import baselines
    from rnnlm.training.checkpoint import load_model, read_checkpoint
    from rnnlm.training.trainer import Trainer

    if task not in ("lm", "fill"):
        raise ConfigError(f"task must be lm or fill, got {task!r}")
    config = config or TrainConfig()
    joined = devices.initialize(**(distributed or {}))  # before JAX starts its backends
    writer = joined is None or joined["process_id"] == 0
    linker = linker or engine.default_linker()
    check_precision(config.precision, linker)  # refused before the corpus is read
    if joined is not None and config.devices is None:  # several processes: every device of every one
        config = dataclasses.replace(config, devices="all")
    if config.devices is not None:  # bad device settings are refused before anything is written
        level = corpus.level if isinstance(corpus, Corpus) else (prepare_options or {}).get("level", "word")
        devices.placement(config.devices, config.resolved(level or "word").batch_size, linker)
    if out is not None:
        out = check_output_dir(out) if writer else Path(out)  # the others only read it (a resume)
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
        for name in ("corpus.npz", "corpus.json"):
            if not isinstance(corpus, Corpus) and (path.parent / name).is_file():
                corpus = Corpus.load(path.parent / name)
    if isinstance(corpus, (str, os.PathLike)) and mapped.is_prepared(corpus):
        corpus = Corpus.load(corpus)  # a prepared corpus: a mapped one stays on disk
    if not isinstance(corpus, Corpus):
        corpus = prepare(corpus, progress=progress and writer, **(prepare_options or {}))
    if len(corpus) < 3:
        raise ConfigError(f"corpus has only {len(corpus)} sentences; need at least 3")
    kept = out / "corpus.json" if corpus.mapped and out is not None and writer else None
    source = corpus
    corpus, splits = split_for_training(corpus, valid_fraction, test_fraction, config.seed, min_count, kept)
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
        mcfg, chosen = _model_config(model, splits["train"], task, size, config.time_budget)
        lm = None
    mcfg = lm.config if lm is not None else mcfg
    if out is not None and writer:
        check_resources(out, mcfg, config.optimizer, config.batch_size, config.max_length)
    if lm is None:
        lm = LanguageModel(mcfg, seed=config.seed, linker=linker, precision=config.precision)
    elif config.precision != lm.precision:  # a resumed model trains at the precision asked for now
        lm = LanguageModel(lm.config, params=lm.get_params(), linker=linker, precision=config.precision)
    trainer = Trainer(
        lm, splits["train"], splits["valid"], config, out_dir=out, corpus=corpus, progress=progress
    )
    if ck is not None:
        trainer.resume(ck)
    run_corpus = out / ("corpus.json" if corpus.mapped else "corpus.npz") if out is not None else None
    if writer and run_corpus is not None and (ck is None or not run_corpus.exists()):
        if not (kept is not None and corpus is not source):  # (a re-encoded mapped corpus is there already)
            corpus.save(run_corpus)  # once every setting was accepted
    fit_on = _baseline_sample(splits["train"])
    models, report = baselines(fit_on, {"valid": splits["valid"], "test": splits.get("test")})
    if fit_on is not splits["train"]:
        report["fit_tokens"] = fit_on.n_tokens
    trainer.state["baselines"] = report
    trainer.log({"event": "baselines", **report})
    if out is not None and writer:
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


def _baseline_sample(train):
    """``train``, or its first sentences when it holds more than :data:`BASELINE_FIT_TOKENS` tokens."""
    if train.n_tokens <= BASELINE_FIT_TOKENS:
        return train
    lengths = train.segments().lengths
    k = max(1, int(np.searchsorted(np.cumsum(lengths), BASELINE_FIT_TOKENS, side="right")))
    return train.subset(np.arange(k))


def _final_scores(trainer, ngram, splits, out) -> dict | None:
    """Put the best-validated parameters into the model, score the test split with them, and mix the model
    with the n-gram (λ tuned on validation; stored in best.npz). Returns the test score (or None)."""
    from rnnlm.training.baselines import interpolation
    from rnnlm.training.checkpoint import read_checkpoint, update_train_state

    model, state = trainer.model, trainer.state
    best = out / "best.npz" if out is not None else None
    params = trainer.best_params  # this run's best (every process has it), else an earlier run's file
    if params is None and best is not None and best.is_file():
        params = read_checkpoint(best)["params"]
    if params is not None:
        model.set_params(params)
    test = trainer.evaluate(splits["test"]) if len(splits.get("test") or []) else None
    if not model.config.bidirectional and splits.get("valid") is not None and len(splits["valid"]):
        state["interpolation"] = mixture = interpolation(trainer, model, ngram, splits)
        trainer.log({"event": "interpolation", **mixture})
        if trainer.writer and best is not None and best.is_file():
            update_train_state(best, interpolation={**mixture, "ngram": "ngram.npz"})
    return test
