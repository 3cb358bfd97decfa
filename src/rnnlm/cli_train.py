"""``rnnlm train`` and ``rnnlm demo``."""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
from pathlib import Path

from .argtypes import nonneg_float as _nonneg_float, nonneg_int as _nonneg_int, positive_float as _positive_float, positive_int as _positive_int
from .errors import ConfigError, EngineError, RnnlmError










def _length(text):
    v = _positive_int(text)
    if v < 2:
        raise argparse.ArgumentTypeError(f"expected a length of at least 2, got {v}")
    return v


def _truncate(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v == 0 or v < -1:
        raise argparse.ArgumentTypeError(f"expected -1 (full BPTT) or a positive number of steps, got {v}")
    return v


def add_model_arguments(p):
    g = p.add_argument_group("model")
    g.add_argument("--model", choices=("rnn", "gru", "lstm"), default="gru", help="recurrent cell (default: gru)")
    g.add_argument("--task", choices=("lm", "fill"), default="lm",
                   help="lm: left-to-right language model; fill: bidirectional fill-in-the-blank model")
    g.add_argument("--hidden", type=_positive_int, default=128, metavar="H", help="hidden units per layer (default: 128)")
    g.add_argument("--layers", type=_positive_int, default=1, metavar="N", help="stacked layers (default: 1)")
    g.add_argument("--embedding", type=_nonneg_int, default=64, metavar="D",
                   help="word embedding size; 0 = the tutorial's one-hot input (default: 64)")
    g.add_argument("--activation", choices=("tanh", "relu"), default="tanh", help="rnn cell nonlinearity")
    g.add_argument("--gate", choices=("sigmoid", "hard_sigmoid"), default="sigmoid",
                   help="gru/lstm gate nonlinearity (the tutorial's part 4 uses hard_sigmoid)")
    g.add_argument("--dropout", type=_nonneg_float, default=0.0, help="dropout between layers and before the output")
    g.add_argument("--tie-embeddings", action="store_true",
                   help="share the input embedding with the output layer (projection when D != H)")
    g.add_argument("--bptt-truncate", type=_truncate, default=-1, metavar="K",
                   help="scan's truncate_gradient within a sequence (-1: full BPTT)")


def add_train_parser(subparsers):
    from .cli import add_corpus_arguments

    p = subparsers.add_parser(
        "train", help="train a model on a corpus (path or known name)",
        description="Train an RNN language model. Writes checkpoint.npz (latest, resumable), best.npz "
        "(best validation perplexity), log.jsonl, loss.png and corpus.npz to --out. Perplexity is "
        "exp(mean negative log-likelihood over every predicted token, including the end-of-sentence "
        "token, excluding the start token). Ctrl-C saves a resumable checkpoint.")
    p.add_argument("corpus", help="corpus file, or a known name (reddit, tinyshakespeare)")
    add_corpus_arguments(p)
    add_model_arguments(p)
    g = p.add_argument_group("training")
    g.add_argument("--optimizer", choices=("sgd", "rmsprop", "adam"), default="adam", help="(default: adam)")
    g.add_argument("--lr", type=_positive_float, default=None, help="learning rate (default: sgd 0.005, rmsprop/adam 0.001... see docs)")
    g.add_argument("--clip", type=_nonneg_float, default=5.0, help="global gradient-norm clip, 0 = off (default: 5)")
    g.add_argument("--epochs", type=_nonneg_int, default=10, help="epochs (default: 10)")
    g.add_argument("--time-budget", default=None, metavar="DUR", help="stop after this long, e.g. 90s, 10m, 1h")
    g.add_argument("--max-steps", type=_positive_int, default=None, help="stop after this many steps")
    g.add_argument("--batch-size", type=_positive_int, default=32, help="sequences per batch (default: 32)")
    g.add_argument("--bptt", type=_positive_int, default=32,
                   help="chunk length for stream batching (char level; truncated BPTT, state carried)")
    g.add_argument("--max-length", type=_length, default=64, help="longest sentence sequence (default: 64)")
    g.add_argument("--batching", choices=("auto", "sentences", "stream"), default="auto",
                   help="auto: sentences at word level, stream at char level")
    g.add_argument("--valid-fraction", type=_nonneg_float, default=0.05)
    g.add_argument("--test-fraction", type=_nonneg_float, default=0.05)
    g.add_argument("--valid-every", type=_nonneg_int, default=0, metavar="N", help="also validate every N steps")
    g.add_argument("--save-every", type=_nonneg_int, default=0, metavar="N", help="also checkpoint every N steps")
    g.add_argument("--anneal", type=float, default=0.5,
                   help="multiply the learning rate by this when validation does not improve (1 = off)")
    g.add_argument("--patience", type=_nonneg_int, default=0, help="early stop after N evaluations without improvement")
    g.add_argument("--on-nan", choices=("recover", "stop"), default="recover",
                   help="NaN/Inf loss: restore the last good state and halve the lr, or stop")
    g.add_argument("--seed", type=int, default=0)
    r = p.add_argument_group("runtime")
    r.add_argument("--engine", choices=("pytensor", "aesara"), default=None, help="graph engine (default: installed)")
    r.add_argument("--linker", choices=("c", "jax", "numba"), default=None,
                   help="compile backend (default: jax with PyTensor, c with Aesara)")
    r.add_argument("--device", choices=("cpu", "gpu", "auto"), default="cpu", help="(jax linker) where to run")
    r.add_argument("--out", default="runs/latest", help="output folder (default: runs/latest)")
    r.add_argument("--resume", nargs="?", const="", default=None, metavar="CKPT",
                   help="continue from CKPT (default: OUT/checkpoint.npz)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def setup_engine(engine_name=None, device="cpu", linker=None):
    """Select the engine (before it is imported) and device; returns (engine, linker)."""
    if engine_name:
        loaded = "rnnlm.engine" in sys.modules
        if loaded and sys.modules["rnnlm.engine"].name != engine_name:
            raise EngineError(f"engine {sys.modules['rnnlm.engine'].name} is already loaded in this process")
        os.environ["RNNLM_ENGINE"] = engine_name
    from . import engine

    linker = linker or engine.default_linker()
    engine.mode_for(linker)  # validates the linker for this engine
    if device != "cpu" and linker != "jax":
        raise EngineError(f"--device {device} needs the jax linker (got --linker {linker})")
    if linker == "jax":
        engine.select_device(device)
    return engine, linker


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
    from .model import param_shapes

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


def _load_corpus(args):
    from . import datasets
    from .cli import corpus_options
    from .corpus import prepare

    source = datasets.resolve(args.corpus, kind="corpus") if hasattr(datasets, "resolve") else args.corpus
    return prepare(source, progress=not args.no_progress, **corpus_options(args))


def run_training(args, corpus=None, quiet=False):
    """Shared by ``train`` and ``demo``: returns (trainer, state, corpus)."""
    from .checkpoint import load_model
    from .corpus import Corpus
    from .model import LanguageModel, ModelConfig
    from .train import TrainConfig, Trainer, parse_duration

    engine, linker = setup_engine(args.engine, args.device, args.linker)
    out = check_output_dir(args.out)
    budget = parse_duration(args.time_budget) if args.time_budget else None
    resume = None
    if args.resume is not None:
        resume = Path(args.resume) if args.resume else out / "checkpoint.npz"
        if not resume.is_file():
            raise ConfigError(f"--resume: no checkpoint at {resume}")
        corpus_file = resume.parent / "corpus.npz"
        if corpus is None and corpus_file.is_file():
            corpus = Corpus.load(corpus_file)
    if corpus is None:
        corpus = _load_corpus(args)
    if len(corpus) < 3:
        raise ConfigError(f"corpus has only {len(corpus)} sentences; need at least 3")
    splits = corpus.split(valid=args.valid_fraction, test=args.test_fraction, seed=args.seed)
    tcfg = TrainConfig(optimizer=args.optimizer, lr=args.lr, clip=args.clip, epochs=args.epochs,
                       time_budget=budget, max_steps=args.max_steps, batch_size=args.batch_size,
                       max_length=args.max_length, bptt=args.bptt, batching=args.batching,
                       valid_every=args.valid_every, save_every=args.save_every, anneal=args.anneal,
                       patience=args.patience, on_nan=args.on_nan, seed=args.seed)
    if resume is not None:
        model, vocab, meta = load_model(resume, linker=linker)
        if vocab is not None and vocab != corpus.vocab:
            raise ConfigError(f"--resume: {resume} was trained with a different vocabulary than this corpus")
        check_resources(out, model.config, args.optimizer, args.batch_size, args.max_length)
    else:
        mcfg = ModelConfig(vocab_size=len(corpus.vocab), hidden_dim=args.hidden, cell=args.model,
                           layers=args.layers, embedding_dim=args.embedding, activation=args.activation,
                           gate=args.gate, dropout=args.dropout, bidirectional=args.task == "fill",
                           tie_embeddings=args.tie_embeddings, bptt_truncate=args.bptt_truncate)
        check_resources(out, mcfg, args.optimizer, args.batch_size, args.max_length)
        model = LanguageModel(mcfg, seed=args.seed, linker=linker)
    trainer = Trainer(model, splits["train"], splits["valid"], tcfg, out_dir=out, corpus=corpus,
                      progress=not args.no_progress)
    if resume is not None:
        trainer.resume(resume)
    if not (out / "corpus.npz").exists() or resume is None:  # once every setting was accepted
        corpus.save(out / "corpus.npz")
    if not quiet:
        print(f"rnnlm: {model.config.cell} x{model.config.layers}, H={model.config.hidden_dim}, "
              f"{model.n_parameters():,} parameters, vocabulary {len(corpus.vocab):,}; engine "
              f"{engine.name} {engine.version}, linker {linker}; {len(splits['train'])} training "
              f"sequences; writing to {out}", file=sys.stderr)
    state = trainer.fit()
    return trainer, state, corpus, splits


def _summary(trainer, state, splits):
    res = {"stopped": state["stopped"], "steps": state["global_step"], "epochs": state["epoch"],
           "words": state["words"], "elapsed_s": round(state["elapsed"], 2),
           "best_valid_loss": state["best_valid"], "out": str(trainer.out)}
    if state["best_valid"] is not None:
        import math

        res["best_valid_perplexity"] = math.exp(min(state["best_valid"], 700))
    if len(splits.get("test", [])) and state["stopped"] != "interrupted":
        try:
            res["test"] = trainer.evaluate(splits["test"])
        except KeyboardInterrupt:  # Ctrl-C after training: the checkpoint is saved, skip the test score
            res["stopped"] = "interrupted"
    return res


def cmd_train(args) -> int:
    from .cli import _print_json

    trainer, state, corpus, splits = run_training(args)
    res = _summary(trainer, state, splits)
    if args.json:
        _print_json(res)
    else:
        print(f"stopped: {res['stopped']} after {res['steps']} steps ({res['elapsed_s']} s)")
        if "best_valid_perplexity" in res:
            print(f"best validation perplexity: {res['best_valid_perplexity']:.2f}")
        if "test" in res:
            print(f"test perplexity: {res['test']['perplexity']:.2f} over {res['test']['tokens']} tokens")
        print(f"checkpoints: {trainer.out / 'checkpoint.npz'}, {trainer.out / 'best.npz'}")
    return 0


def add_demo_parser(subparsers):
    p = subparsers.add_parser(
        "demo", help="train a small model on the default corpus for ~2 minutes and print sentences",
        description="Find or download the default corpus (the tutorial's reddit comments), prepare it as "
        "the tutorial does, train a small GRU language model for about two minutes with a progress bar, "
        "then print generated sentences.")
    p.add_argument("--corpus", default="reddit", help="corpus file or known name (default: reddit)")
    p.add_argument("--vocab-size", type=int, default=2000, metavar="N", help="vocabulary size (default: 2000)")
    p.add_argument("--time-budget", default="2m", help="training time (default: 2m)")
    p.add_argument("--num", type=int, default=5, help="sentences to print (default: 5)")
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--seed", type=int, default=0)
    return p


def cmd_demo(args) -> int:
    from .cli import build_parser, print_corpus_stats

    argv = ["train", args.corpus, "--vocab-size", str(args.vocab_size), "--model", "gru",
            "--hidden", "128", "--embedding", "64", "--optimizer", "adam", "--lr", "0.005",
            "--epochs", "1000", "--time-budget", str(args.time_budget), "--batch-size", "32",
            "--out", args.out, "--seed", str(args.seed)]
    targs = build_parser().parse_args(argv)
    from . import datasets

    print(f"rnnlm demo: corpus {args.corpus!r}", file=sys.stderr)
    if args.corpus in getattr(datasets, "KNOWN", {}):
        datasets.find_or_download(args.corpus)
    corpus = _load_corpus(targs)
    print_corpus_stats(corpus.stats)
    trainer, state, corpus, splits = run_training(targs, corpus=corpus)
    res = _summary(trainer, state, splits)
    print(f"\ntrained {res['steps']} steps in {res['elapsed_s']} s; best validation perplexity "
          f"{res.get('best_valid_perplexity', float('nan')):.1f}\n")
    from .checkpoint import load_model
    from .sample import generate_sentence

    best = trainer.out / "best.npz"
    model, vocab, _ = load_model(best if best.exists() else trainer.out / "checkpoint.npz",
                                 linker=trainer.model.linker)
    import numpy as np

    rng = np.random.default_rng(args.seed)
    print("Generated sentences:")
    for _ in range(args.num):
        print("  " + generate_sentence(model, vocab, rng=rng, min_length=5, max_length=30).text)
    return 0
