"""``rnnlm experiment part4`` and ``rnnlm experiment fill-vs-lm`` (see :mod:`rnnlm.experiments`)."""

from __future__ import annotations

from rnnlm.cli.common import (
    add_runtime_arguments,
    add_subcommands,
    nonneg_float,
    nonneg_int,
    positive_int,
    print_json,
    setup_engine,
)


def _runtime_arguments(p):
    r = add_runtime_arguments(p, engine=True)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--json", action="store_true", help="print the result as JSON")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "experiment",
        help="reproduce the tutorial's experiments (part 4 GRU, bidirectional fill vs LM)",
        description="Run one of the tutorial's experiments and report its numbers. Time budgets count "
        "training steps only (compilation and evaluation excluded).",
    )
    sub = add_subcommands(p, "experiment", ("part4", "fill-vs-lm"))

    a = sub.add_parser(
        "part4",
        help="part 4: two-layer GRU, RMSProp, vocabulary 2000, on reddit comments",
        description="Train part 4's model (GRU, embedding 48, hidden 128, two layers, hard_sigmoid gates, "
        "RMSProp decay 0.9 lr 0.001, vocabulary 2000, full BPTT, sentences containing 'http' dropped, one "
        "sentence per step) for a time budget; print the loss curve, the time of one training step and "
        "generated sentences.",
    )
    a.add_argument("--corpus", default="reddit", help="corpus file or known name (default: reddit)")
    a.add_argument(
        "--time-budget", default="2m", metavar="DUR", help="training time, e.g. 90s, 2m (default: 2m)"
    )
    a.add_argument("--max-steps", type=positive_int, default=None, help="also stop after this many steps")
    a.add_argument("--vocab-size", type=positive_int, default=2000, help="(default: 2000)")
    a.add_argument("--hidden", type=positive_int, default=128, help="(default: 128)")
    a.add_argument("--embedding", type=positive_int, default=48, help="(default: 48)")
    a.add_argument("--layers", type=positive_int, default=2, help="(default: 2)")
    a.add_argument(
        "--gate",
        choices=("sigmoid", "hard_sigmoid"),
        default="hard_sigmoid",
        help="gate nonlinearity (default: hard_sigmoid, the tutorial's code)",
    )
    a.add_argument("--lr", type=float, default=0.001, help="RMSProp learning rate (default: 0.001)")
    a.add_argument(
        "--batch-size",
        type=positive_int,
        default=1,
        help="sentences per step (default: 1, the tutorial's per-sentence step)",
    )
    a.add_argument(
        "--max-length",
        type=positive_int,
        default=64,
        help="longer sentences are cut into pieces of this many steps (default: 64)",
    )
    a.add_argument("--num", type=nonneg_int, default=5, help="sentences to generate (default: 5)")
    a.add_argument(
        "--max-words", type=positive_int, default=30, help="longest generated sentence (default: 30)"
    )
    _runtime_arguments(a)
    a.set_defaults(run=_runner(_run_part4))

    f = sub.add_parser(
        "fill-vs-lm",
        help="bidirectional fill-in-the-blank model vs a left-to-right LM of the same size",
        description="Train a bidirectional fill-in-the-blank model and a left-to-right language model of "
        "the same size (cell, hidden and embedding sizes, layers) for the same training time, taking steps "
        "in turn, then report the top-1 masked-word accuracy of each on held-out sentences (the LM guesses "
        "w_t as argmax p(w | w_<t); guesses exclude START/END/unknown; unknown words are not scored).",
    )
    f.add_argument(
        "--corpus", default="tinyshakespeare", help="corpus file or known name (default: tinyshakespeare)"
    )
    f.add_argument("--time-budget", default="1m", metavar="DUR", help="training time per model (default: 1m)")
    f.add_argument(
        "--max-steps", type=positive_int, default=None, help="also stop each model after this many steps"
    )
    f.add_argument(
        "--model", choices=("rnn", "gru", "lstm"), default="gru", help="recurrent cell (default: gru)"
    )
    f.add_argument("--hidden", type=positive_int, default=128, help="(default: 128)")
    f.add_argument(
        "--lm-hidden",
        type=positive_int,
        default=None,
        metavar="H",
        help="the LM's hidden size (default: --hidden; larger matches the parameter count)",
    )
    f.add_argument("--embedding", type=nonneg_int, default=64, help="(default: 64; 0 = one-hot input)")
    f.add_argument("--layers", type=positive_int, default=1, help="(default: 1)")
    f.add_argument("--vocab-size", type=positive_int, default=4000, help="(default: 4000)")
    f.add_argument("--optimizer", choices=("sgd", "rmsprop", "adam"), default="adam", help="(default: adam)")
    f.add_argument("--lr", type=float, default=0.002, help="(default: 0.002)")
    f.add_argument("--clip", type=nonneg_float, default=5.0, help="global gradient-norm clip (default: 5)")
    f.add_argument("--batch-size", type=positive_int, default=32, help="(default: 32)")
    f.add_argument(
        "--max-length",
        type=positive_int,
        default=32,
        help="longest training sequence and longest scored test sentence, in tokens (default: 32)",
    )
    f.add_argument("--test-fraction", type=nonneg_float, default=0.1, help="held-out share (default: 0.1)")
    f.add_argument("--max-test-sentences", type=positive_int, default=2000, help="(default: 2000)")
    _runtime_arguments(f)
    f.set_defaults(run=_runner(_run_fill_vs_lm))
    return p


def _setup(args):
    _, linker = setup_engine(args.engine, args.device, args.linker)
    return linker


def _run_part4(args):
    from rnnlm.experiments import reproduce_part4
    from rnnlm.training.config import parse_duration

    linker = _setup(args)
    res = reproduce_part4(
        parse_duration(args.time_budget),
        args.corpus,
        max_steps=args.max_steps,
        vocab_size=args.vocab_size,
        hidden=args.hidden,
        embedding=args.embedding,
        layers=args.layers,
        gate=args.gate,
        lr=args.lr,
        batch_size=args.batch_size,
        max_length=args.max_length,
        n_sentences=args.num,
        max_words=args.max_words,
        seed=args.seed,
        linker=linker,
        progress=not args.no_progress,
    )
    if args.json:
        return res
    t, c = res["timing"], res["config"]
    print(
        f"part 4: GRU x{c['layers']}, embedding {c['embedding_dim']}, hidden {c['hidden_dim']}, "
        f"{c['parameters']:,} parameters; vocabulary {res['corpus']['vocab_size']}, "
        f"{res['corpus']['sentences']} sentences ({res['corpus']['dropped_sentences']} with 'http' "
        "dropped)"
    )
    print(
        f"{t['steps']} steps ({t['epochs']} epochs) in {t['train_s']} s of training "
        f"(+{t['compile_s']} s compiling); "
        f"one step: {t['ms_per_step']} ms median (batch {c['batch_size']}), {t['tokens_per_s']} tokens/s; "
        f"{res['runtime']['engine']} {res['runtime']['linker']} on {res['runtime']['device']}"
    )
    print(
        "loss (mean cross-entropy per token on a fixed training sample; uniform = "
        f"{res['uniform_loss']:.3f}):"
    )
    for e in res["losses"]:
        print(f"  step {e['step']:>7}  {e['train_s']:>8.1f} s  {e['loss']:.4f}")
    if res["sentences"]:
        print("generated sentences:")
        for s in res["sentences"]:
            print(f"  {s}")
    return None


def _run_fill_vs_lm(args):
    from rnnlm.experiments import fill_vs_lm
    from rnnlm.training.config import parse_duration

    linker = _setup(args)
    res = fill_vs_lm(
        args.corpus,
        parse_duration(args.time_budget),
        args.hidden,
        cell=args.model,
        layers=args.layers,
        embedding=args.embedding,
        vocab_size=args.vocab_size,
        optimizer=args.optimizer,
        lr=args.lr,
        clip=args.clip,
        batch_size=args.batch_size,
        max_length=args.max_length,
        test_fraction=args.test_fraction,
        max_test_sentences=args.max_test_sentences,
        max_steps=args.max_steps,
        lm_hidden=args.lm_hidden,
        seed=args.seed,
        linker=linker,
        progress=not args.no_progress,
    )
    if args.json:
        return res
    s, c = res["settings"], res["corpus"]
    lm = f" (LM {s['lm_hidden']})" if s["lm_hidden"] != s["hidden"] else ""
    print(
        f"{s['cell']} x{s['layers']}, hidden {s['hidden']}{lm}, embedding {s['embedding']}; vocabulary "
        f"{c['vocab_size']}; {c['train_sentences']} training sentences; "
        f"{c['test_sentences_scored']} held-out sentences scored; "
        f"{res['runtime']['engine']} {res['runtime']['linker']} on {res['runtime']['device']}"
    )
    for name, label in (("fill", "bidirectional fill model"), ("lm", "left-to-right LM")):
        r, t = res[name], res[name]["timing"]
        print(
            f"{label:>25}: top-1 accuracy {r['accuracy']:.4f} ({r['correct']}/{r['positions']}); "
            f"{r['parameters']:,} parameters; {t['steps']} steps in {t['train_s']} s; "
            f"train loss {r['final_train_loss']:.3f}"
        )
    u = res["unigram_baseline"]
    print(f"{'always ' + repr(u['word']):>25}: top-1 accuracy {u['accuracy']:.4f} (no context)")
    print(f"{'margin':>25}: {res['margin']:+.4f}")
    return None


def _runner(experiment):
    """``run`` for one experiment: the JSON result is printed when the experiment returns one."""

    def run(args) -> int:
        res = experiment(args)
        if res is not None:
            print_json(res)
        return 0

    return run
