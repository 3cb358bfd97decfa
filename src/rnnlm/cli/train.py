"""``rnnlm train``: train a model on a corpus (the work is :func:`rnnlm.training.api.train`)."""

from __future__ import annotations

import argparse
import sys

from rnnlm.cli.common import (
    add_corpus_arguments,
    add_runtime_arguments,
    corpus_options,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
    print_json,
    setup_engine,
)
from rnnlm.training.schedules import SCHEDULES


def _length(text):
    v = positive_int(text)
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
    g = p.add_argument_group("model (unset values are chosen by --size auto; see `rnnlm train --help`)")
    g.add_argument(
        "--size",
        choices=("auto", "default"),
        default="auto",
        help="auto: cell, layers, hidden, embedding, dropout and tying chosen from the corpus by a "
        "measured rule (printed at the start; docs/quality.md); default: the library's fixed "
        "defaults (GRU, 1 layer, H=128). Any flag below overrides (default: auto)",
    )
    g.add_argument("--model", choices=("rnn", "gru", "lstm"), default=None, help="recurrent cell")
    g.add_argument(
        "--task",
        choices=("lm", "fill"),
        default="lm",
        help="lm: left-to-right language model; fill: bidirectional fill-in-the-blank model",
    )
    g.add_argument("--hidden", type=positive_int, default=None, metavar="H", help="hidden units per layer")
    g.add_argument("--layers", type=positive_int, default=None, metavar="N", help="stacked layers")
    g.add_argument(
        "--embedding",
        type=nonneg_int,
        default=None,
        metavar="D",
        help="word embedding size; 0 = the tutorial's one-hot input",
    )
    g.add_argument("--activation", choices=("tanh", "relu"), default="tanh", help="rnn cell nonlinearity")
    g.add_argument(
        "--gate",
        choices=("sigmoid", "hard_sigmoid"),
        default="sigmoid",
        help="gru/lstm gate nonlinearity (the tutorial's part 4 uses hard_sigmoid)",
    )
    g.add_argument(
        "--dropout",
        type=nonneg_float,
        default=None,
        help="locked dropout between layers and before the output (one mask per sequence)",
    )
    g.add_argument("--embed-dropout", type=nonneg_float, default=None, help="locked dropout on the embedding")
    g.add_argument(
        "--tie-embeddings",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="share the input embedding with the output layer (projection when D != H)",
    )
    g.add_argument(
        "--bptt-truncate",
        type=_truncate,
        default=-1,
        metavar="K",
        help="scan's truncate_gradient within a sequence (-1: full BPTT)",
    )


def add_parser(subparsers):
    p = subparsers.add_parser(
        "train",
        help="train a model on a corpus (path or known name)",
        description="Train an RNN language model. Writes checkpoint.npz (latest, resumable), best.npz "
        "(best validation perplexity), log.jsonl, loss.png and corpus.npz to --out. Perplexity is "
        "exp(mean negative log-likelihood over every predicted token, including the end-of-sentence "
        "token, excluding the start token). Ctrl-C saves a resumable checkpoint.",
    )
    p.add_argument("corpus", help="corpus file, or a known name (reddit, tinyshakespeare)")
    add_corpus_arguments(p)
    add_model_arguments(p)
    g = p.add_argument_group("training")
    g.add_argument("--optimizer", choices=("sgd", "rmsprop", "adam"), default="adam", help="(default: adam)")
    g.add_argument(
        "--lr",
        type=positive_float,
        default=None,
        help="peak learning rate (default: adam 0.002, rmsprop 0.001, sgd 1.0)",
    )
    g.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default="auto",
        help="learning-rate schedule: auto = newbob for sgd, warm-up + cosine decay over the budget "
        "(or the epochs) for adam/rmsprop; plateau = multiply by --anneal when validation does "
        "not improve; constant",
    )
    g.add_argument(
        "--warmup",
        type=nonneg_float,
        default=0.02,
        metavar="FRACTION",
        help="warm-up share of the run for cosine/linear (default: 0.02)",
    )
    g.add_argument(
        "--lr-floor",
        type=nonneg_float,
        default=None,
        metavar="FRACTION",
        help="final rate of cosine/linear, and the rate below which newbob/plateau stop, as a "
        "fraction of the peak (default: 0.05 / 1/1024)",
    )
    g.add_argument(
        "--weight-decay",
        type=nonneg_float,
        default=0.0,
        help="decoupled weight decay (AdamW style; default: 0)",
    )
    g.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="matrix products of training: bf16 = bfloat16 operands, float32 accumulation and weights "
        "(jax linker; scoring stays fp32; default: fp32)",
    )
    g.add_argument(
        "--clip", type=nonneg_float, default=5.0, help="global gradient-norm clip, 0 = off (default: 5)"
    )
    g.add_argument(
        "--epochs", type=nonneg_int, default=None, help="epochs (default: no cap with --time-budget, else 10)"
    )
    g.add_argument(
        "--time-budget",
        default=None,
        metavar="DUR",
        help="training time, e.g. 90s, 10m, 1h: training ends when it is spent, when validation "
        "stops improving, or when the learning rate reaches its floor",
    )
    g.add_argument("--max-steps", type=positive_int, default=None, help="stop after this many steps")
    g.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="sequences per batch (default: 64 at char level, 32 at word level)",
    )
    g.add_argument(
        "--bptt",
        type=positive_int,
        default=None,
        help="chunk length for stream batching (char level; truncated BPTT, state carried; default 64)",
    )
    g.add_argument("--max-length", type=_length, default=64, help="longest sentence sequence (default: 64)")
    g.add_argument(
        "--batching",
        choices=("auto", "sentences", "stream"),
        default="auto",
        help="auto: sentences at word level and for the fill task, stream at char level",
    )
    g.add_argument(
        "--min-count",
        type=positive_int,
        default=2,
        help="words seen fewer times in the training split are read as the unknown token, so that it "
        "is learned and words never seen get its probability (default: 2; 1 keeps every word)",
    )
    g.add_argument("--valid-fraction", type=nonneg_float, default=0.05)
    g.add_argument("--test-fraction", type=nonneg_float, default=0.05)
    g.add_argument(
        "--valid-every", type=nonneg_int, default=0, metavar="N", help="also validate every N steps"
    )
    g.add_argument(
        "--valid-interval",
        default=None,
        metavar="DUR",
        help="also validate every DUR of training (default: a twentieth of the budget, 10 s to 5 min)",
    )
    g.add_argument(
        "--save-every", type=nonneg_int, default=0, metavar="N", help="also checkpoint every N steps"
    )
    g.add_argument(
        "--anneal",
        type=float,
        default=0.5,
        help="plateau schedule: multiply the learning rate by this when validation does not improve",
    )
    g.add_argument(
        "--patience",
        type=nonneg_int,
        default=None,
        help="stop after N evaluations without a new best (default: 6 with cosine/linear, else off; 0 = off)",
    )
    g.add_argument(
        "--on-nan",
        choices=("recover", "stop"),
        default="recover",
        help="NaN/Inf loss: restore the last good state and halve the lr, or stop",
    )
    g.add_argument("--seed", type=int, default=0)
    r = add_runtime_arguments(p, engine=True)
    r.add_argument("--out", default="runs/latest", help="output folder (default: runs/latest)")
    r.add_argument(
        "--resume",
        nargs="?",
        const="",
        default=None,
        metavar="CKPT",
        help="continue from CKPT (default: OUT/checkpoint.npz)",
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--json", action="store_true", help="print the result as JSON")
    add_device_arguments(p)
    p.set_defaults(run=run)
    return p


def add_device_arguments(p):
    d = p.add_argument_group(
        "devices and processes (jax linker; README: \"Several devices, several processes\")"
    )
    d.add_argument(
        "--devices",
        default=None,
        metavar="N|all",
        help="train data-parallel over N devices (or all): every batch split along its batch axis, so "
        "--batch-size must divide by N; parameters replicated (default: one device)",
    )
    d.add_argument(
        "--coordinator",
        default=None,
        metavar="HOST:PORT",
        help="join a multi-process run whose process 0 listens at HOST:PORT (default: "
        "JAX_COORDINATOR_ADDRESS); --devices then counts every process's devices",
    )
    d.add_argument(
        "--num-processes", type=int, default=None, metavar="P", help="processes in all (JAX_NUM_PROCESSES)"
    )
    d.add_argument(
        "--process-id",
        type=int,
        default=None,
        metavar="I",
        help="this process, 0..P-1; process 0 alone writes checkpoints and logs (JAX_PROCESS_ID)",
    )
    d.add_argument(
        "--coordinator-timeout",
        default="120s",
        metavar="DUR",
        help="how long to wait for the coordinator and the other processes (default: 120s)",
    )


def distributed_options(args) -> dict:
    """The ``distributed`` argument of :func:`rnnlm.training.api.train` from the flags (JAX's environment
    variables fill in what they leave out)."""
    from rnnlm.training.config import parse_duration

    return {
        "coordinator": getattr(args, "coordinator", None),
        "num_processes": getattr(args, "num_processes", None),
        "process_id": getattr(args, "process_id", None),
        "timeout": parse_duration(getattr(args, "coordinator_timeout", None) or "120s"),
    }


def train_config(args):
    """The :class:`~rnnlm.training.config.TrainConfig` of ``rnnlm train``'s flags."""
    from rnnlm.training.config import TrainConfig, parse_duration

    return TrainConfig(
        optimizer=args.optimizer,
        lr=args.lr,
        clip=args.clip,
        epochs=args.epochs,
        time_budget=parse_duration(args.time_budget) if args.time_budget else None,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        max_length=args.max_length,
        bptt=args.bptt,
        batching=args.batching,
        valid_every=args.valid_every,
        valid_every_s=parse_duration(args.valid_interval) if args.valid_interval else None,
        save_every=args.save_every,
        schedule=args.schedule,
        warmup=args.warmup,
        lr_floor=args.lr_floor,
        anneal=args.anneal,
        patience=args.patience,
        weight_decay=args.weight_decay,
        precision=args.precision,
        on_nan=args.on_nan,
        seed=args.seed,
        devices=getattr(args, "devices", None),
    )


def model_settings(args) -> dict:
    """The model flags the user gave, as :class:`~rnnlm.models.lm.ModelConfig` fields (the vocabulary size
    comes from the corpus; what is left out is chosen by ``--size``)."""
    given = {
        "hidden_dim": args.hidden,
        "cell": args.model,
        "layers": args.layers,
        "embedding_dim": args.embedding,
        "dropout": args.dropout,
        "embed_dropout": args.embed_dropout,
        "tie_embeddings": args.tie_embeddings,
    }
    out = {k: v for k, v in given.items() if v is not None}
    out.update(activation=args.activation, gate=args.gate, bptt_truncate=args.bptt_truncate)
    return out


def run_training(args, corpus=None, quiet=False):
    """``rnnlm train``'s work through :func:`rnnlm.training.api.train`; returns its TrainResult.
    ``corpus``: an already prepared corpus (the demo's), else ``args.corpus`` is prepared."""
    from rnnlm import devices
    from rnnlm.training.api import train
    from rnnlm.training.baselines import describe

    distributed = distributed_options(args)
    devices.initialize(**distributed)  # before the engine chooses a device: JAX's backends start after it
    engine, linker = setup_engine(args.engine, args.device, args.linker)

    def started(trainer, corpus, splits, chosen):
        if quiet or not trainer.writer:  # process 0 speaks for a multi-process run
            return
        m = trainer.model
        c = m.config
        pl = trainer.placement
        where = f" on {pl.count} {pl.platform} devices ({pl.process_count} processes)" if pl else ""
        print(
            f"rnnlm: {c.cell} x{c.layers}, H={c.hidden_dim}, {m.n_parameters():,} "
            f"parameters, vocabulary {len(corpus.vocab):,}; engine {engine.name} {engine.version}, linker "
            f"{linker}{where}; {len(splits['train'])} training sequences; writing to {trainer.out}",
            file=sys.stderr,
        )
        if chosen:
            picked = ", ".join(f"{k}={getattr(c, k)}" for k in chosen)
            if args.lr is None:
                picked += f", lr={trainer.schedule.peak:g}"
            budget = trainer.cfg.time_budget
            within = f" and a {budget:g} s budget" if budget else ""
            print(
                f"rnnlm: --size auto picked {picked} (for {splits['train'].n_tokens:,} training tokens at "
                f"{corpus.level} level{within}; any flag overrides)",
                file=sys.stderr,
            )
        rare = corpus.stats.get("rare_in_training")
        if rare:
            print(
                f"rnnlm: {rare:,} words seen fewer than {corpus.stats['min_count']} times in the training "
                f"split are read as {corpus.vocab.unknown_token} (--min-count)",
                file=sys.stderr,
            )
        print(
            f"rnnlm: baselines on the validation split: {describe(trainer.state['baselines'])}",
            file=sys.stderr,
        )

    source = corpus if corpus is not None else args.corpus
    resume = None if args.resume is None else (args.resume or True)
    return train(
        source,
        args.out,
        model=model_settings(args),
        config=train_config(args),
        task=args.task,
        size=args.size,
        min_count=args.min_count,
        resume=resume,
        valid_fraction=args.valid_fraction,
        test_fraction=args.test_fraction,
        prepare_options=corpus_options(args),
        linker=linker,
        progress=not args.no_progress,
        on_start=started,
        distributed=distributed,
    )


#: Why training stopped, as the last lines say it.
STOP_REASONS = {
    "time_budget": "time budget spent",
    "epochs": "all epochs done",
    "early_stopping": "validation stopped improving (patience)",
    "converged": "validation stopped improving (newbob)",
    "lr_floor": "learning rate reached its floor",
    "max_steps": "--max-steps reached",
    "interrupted": "interrupted (checkpoint saved)",
}


def final_lines(res: dict) -> list:
    """The lines a run ends with (``TrainResult.summary()``): why it stopped, then the validation and test
    perplexities beside the baselines and the RNN + n-gram mixture."""
    from rnnlm.training.baselines import describe

    lines = [
        f"stopped: {STOP_REASONS.get(res['stopped'], res['stopped'])} after {res['steps']} steps, "
        f"{res['epochs']} epochs ({res['elapsed_s']:.0f} s of training)"
    ]
    base, mixture = res.get("baselines"), res.get("interpolation")
    if "best_valid_perplexity" in res:
        also = describe(base, "valid", mixture)
        ppl = res["best_valid_perplexity"]
        lines.append(f"validation perplexity {ppl:.2f}" + (f" ({also})" if also else ""))
    if "test" in res:
        also = describe(base, "test", mixture)
        lines.append(
            f"test perplexity {res['test']['perplexity']:.2f} over {res['test']['tokens']} tokens"
            + (f" ({also})" if also else "")
        )
    return lines


def run(args) -> int:
    result = run_training(args)
    if not result.trainer.writer:
        return 0  # process 0 reports
    res = result.summary()
    if args.json:
        print_json(res)
        return 0
    for line in final_lines(res):
        print(line)
    print(f"checkpoints: {result.out / 'checkpoint.npz'}, {result.out / 'best.npz'}")
    return 0
