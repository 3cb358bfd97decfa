"""``rnnlm analyze gradients | truncation | exploding``: the tutorial's part 3, measured.

- ``gradients``: ‖∂L_t/∂s_k‖ and ‖∂s_t/∂s_k‖ on real sentences for checkpoints and/or fresh models,
  by distance t − k, with a fitted per-step decay factor per model (heat map + decay-curve PNGs).
- ``truncation``: relative error of truncated BPTT against full BPTT for every ``bptt_truncate``
  (the tutorial's definition and scan's), and what truncation costs in a short training run.
- ``exploding``: W rescaled to growing spectral radii; gradient norms with and without global-norm
  clipping, and one SGD pass with and without it.

All computation is NumPy float64 on :mod:`rnnlm.models.reference` models (:mod:`rnnlm.analysis`); no graph
engine is imported.  ``--json`` prints one JSON object; ``--out DIR`` writes the PNGs there.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from rnnlm.cli.common import (
    add_corpus_arguments,
    add_subcommands,
    corpus_options,
    csv_list,
    int_at_least,
    positive_float,
    print_json,
)
from rnnlm.errors import UsageError

FRESH_KEYS = {"activation": str, "gate": str, "radius": float, "scale": float, "layers": int,
              "embedding": int, "hidden": int, "seed": int, "name": str}
DEFAULT_FRESH = ("rnn", "rnn:activation=relu", "rnn:radius=1.5", "gru", "lstm")


def parse_fresh(spec: str) -> dict:
    """``CELL[:key=value,...]`` -> keyword arguments of :func:`rnnlm.analysis.fresh_model` + name.

    Keys: activation (tanh|relu), gate (sigmoid|hard_sigmoid), radius (spectral radius of every W
    block), scale (multiplier of W), layers, embedding, hidden, seed, name.
    """
    from rnnlm.models.reference import CELLS

    cell, _, rest = spec.partition(":")
    cell = cell.strip()
    if cell not in CELLS:
        raise UsageError(f"--fresh {spec}: unknown cell {cell!r}; choose one of {', '.join(CELLS)}")
    out = {"cell": cell}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in FRESH_KEYS:
            raise UsageError(f"--fresh {spec}: expected key=value with key one of {', '.join(FRESH_KEYS)}; "
                             f"got {item!r}")
        try:
            out[key] = FRESH_KEYS[key](value.strip())
        except ValueError:
            raise UsageError(f"--fresh {spec}: bad value for {key}: {value!r}") from None
    if "radius" in out and "scale" in out:
        raise UsageError(f"--fresh {spec}: give radius or scale, not both")
    return out


def _fresh_name(spec: dict) -> str:
    if "name" in spec:
        return spec["name"]
    parts = [spec["cell"]]
    if spec["cell"] == "rnn":
        parts.append(spec.get("activation", "tanh"))
    elif spec.get("gate", "sigmoid") != "sigmoid":
        parts.append(spec["gate"])
    for key in ("radius", "scale", "layers", "embedding", "hidden"):
        if key in spec:
            parts.append(f"{key}={spec[key]:g}" if isinstance(spec[key], float) else f"{key}={spec[key]}")
    return " ".join(parts)


def _add_common(p: argparse.ArgumentParser, sentences: int, min_len: int, max_len: int | None,
                vocab_size: int, hidden: int) -> None:
    p.add_argument("--corpus", default="reddit", metavar="SOURCE",
                   help="corpus file or known name whose sentences are analysed (default: reddit)")
    add_corpus_arguments(p, vocab_size=vocab_size)
    g = p.add_argument_group("analysis")
    g.add_argument("--sentences", type=int_at_least(1), default=sentences, metavar="N",
                   help="how many sentences to analyse, drawn at random (default: %(default)s)")
    g.add_argument("--min-tokens", type=int_at_least(2), default=min_len, metavar="N",
                   help="analyse sentences of at least N tokens (SENTENCE_START counts; default: "
                   "%(default)s)")
    g.add_argument("--max-tokens", type=int_at_least(2), default=max_len, metavar="N",
                   help="cut longer sentences to their first N tokens (default: %(default)s)")
    g.add_argument("--hidden", type=int_at_least(1), default=hidden, metavar="H",
                   help="hidden size of fresh models (default: %(default)s)")
    g.add_argument("--seed", type=int, default=0, help="seed of fresh weights and of the sentence draw")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write the PNG plots into DIR (created if missing)")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "analyze",
        help="vanishing/exploding gradients and truncated BPTT, measured (tutorial part 3)",
        description="Measure backpropagation through time on real sentences: gradient norms by "
        "distance, truncated-BPTT error and cost, exploding gradients and clipping.",
    )
    sub = add_subcommands(p, "analyze_command", ("gradients", "truncation", "exploding"))

    g = sub.add_parser(
        "gradients",
        help="‖∂L_t/∂s_k‖ and ‖∂s_t/∂s_k‖ by distance t-k, with a decay factor per model",
        description="For every sentence and every k <= t: the norm of the gradient of the loss at step t "
        "with respect to the state at step k, and of the Jacobian product ds_t/ds_k; averaged by distance "
        "t-k, with the per-step decay factor fitted to the log-norms. Models: checkpoints (rnnlm "
        "checkpoints or the tutorial's trained-model-theano.npz) and/or fresh models (--fresh). "
        f"Without either: --fresh {' --fresh '.join(DEFAULT_FRESH)}.",
    )
    g.add_argument("checkpoints", nargs="*", metavar="CKPT", help="model files to analyse")
    g.add_argument("--fresh", action="append", default=[], metavar="SPEC",
                   help="a freshly initialised model, CELL[:key=value,...] with CELL rnn|gru|lstm and keys "
                   "activation, gate, radius (spectral radius of W), scale (multiplier of W), layers, "
                   "embedding, hidden, seed, name; e.g. rnn:activation=relu, rnn:radius=0.5 (repeatable)")
    _add_common(g, sentences=30, min_len=10, max_len=40, vocab_size=8000, hidden=100)
    g.add_argument("--norm", choices=("fro", "spectral"), default="fro",
                   help="matrix norm of the Jacobian products: fro (default, fast) or spectral (exact, one "
                   "SVD per (t, k) pair)")
    g.add_argument("--max-distance", type=int_at_least(1), default=None, metavar="D",
                   help="only distances t-k <= D (default: all)")
    g.add_argument("--fit", type=csv_list(int), default=[1], metavar="FIRST[,LAST]",
                   help="distances the decay factor is fitted over (default: 1 to the largest)")
    g.set_defaults(run=run_gradients)

    t = sub.add_parser(
        "truncation",
        help="truncated BPTT against full BPTT: gradient error and training cost",
        description="The relative error of truncated-BPTT gradients against full BPTT for bptt_truncate "
        "k = 0 .. the longest sentence, under the tutorial's definition (each output step backpropagates "
        "k steps) and scan's truncate_gradient (the backward pass visits only the last k steps); then "
        "short per-sentence SGD runs, one per truncation setting, from the same weights. Uses the "
        "tutorial's model (one tanh layer, no biases): a fresh one, or CKPT.",
    )
    t.add_argument("checkpoint", nargs="?", default=None, metavar="CKPT",
                   help="a one-layer bias-free rnn model (e.g. the tutorial's trained-model-theano.npz) "
                   "whose truncation error is measured too")
    _add_common(t, sentences=20, min_len=5, max_len=30, vocab_size=1000, hidden=32)
    t.add_argument("--truncate", type=csv_list(int), default=[1, 2, 4, -1], metavar="K,...",
                   help="bptt_truncate values of the training runs, -1 = full BPTT (default: 1,2,4,-1)")
    t.add_argument("--truncation", type=csv_list(str), default=["tutorial", "scan"], metavar="MODE,...",
                   help="truncation definitions trained with: tutorial, scan (default: both)")
    t.add_argument("--epochs", type=int_at_least(1), default=2,
                   help="epochs of each training run (default: 2)")
    t.add_argument("--lr", type=positive_float, default=0.005, help="SGD learning rate (default: 0.005)")
    t.add_argument("--train-sentences", type=int_at_least(1), default=500, metavar="N",
                   help="training sentences per run (default: %(default)s)")
    t.add_argument("--valid-sentences", type=int_at_least(0), default=150, metavar="N",
                   help="held-out sentences scored after each epoch (default: %(default)s)")
    t.add_argument("--no-train", action="store_true", help="only the gradient error, no training runs")
    t.set_defaults(run=run_truncation)

    e = sub.add_parser(
        "exploding",
        help="W scaled up: gradient norms with and without global-norm clipping",
        description="Rescale W of a fresh tanh and ReLU RNN (or CKPT) to each spectral radius; report the "
        "global norm of each sentence's gradient, the same after global-norm clipping, the per-step "
        "factor of ‖∂L_t/∂s_k‖, and the loss after one pass of per-sentence SGD without and with clipping.",
    )
    e.add_argument("checkpoint", nargs="?", default=None, metavar="CKPT",
                   help="rescale this model's W instead")
    _add_common(e, sentences=30, min_len=10, max_len=40, vocab_size=2000, hidden=50)
    e.add_argument("--radius", type=csv_list(positive_float), default=[0.5, 1.0, 1.5, 2.0, 3.0, 4.0],
                   metavar="R,...", help="spectral radii of W (default: 0.5,1,1.5,2,3,4)")
    e.add_argument("--activation", type=csv_list(str), default=["tanh", "relu"], metavar="A,...",
                   help="activations of the fresh rnn models (default: tanh,relu)")
    e.add_argument("--clip", type=positive_float, default=5.0,
                   help="global-norm clip threshold (default: 5)")
    e.add_argument("--lr", type=positive_float, default=0.005, help="SGD learning rate (default: 0.005)")
    e.set_defaults(run=run_exploding)
    return p


# --------------------------------------------------------------------------------------------------
# shared steps
# --------------------------------------------------------------------------------------------------


def _progress(args):
    if args.json:
        return None
    from tqdm import tqdm

    return lambda it: tqdm(it, leave=False, disable=None, unit="sent")


def _out_dir(args) -> Path | None:
    if args.out is None:
        return None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _prepare(args, vocab_size=None):
    from rnnlm.data import prepare

    opts = corpus_options(args)
    if vocab_size is not None:
        opts["vocab_size"] = vocab_size
    return prepare(args.corpus, progress=not args.json, **opts)


def _encode_for(path, vocab, meta, args):
    """The corpus's sentences in a checkpoint's own vocabulary and tokenization."""
    from rnnlm.data import Corpus

    return Corpus.encoder(vocab, meta.get("corpus")).encode_file(args.corpus).sentences


def _load(path, args, corpus_cache):
    """(reference model, encoded sentences) of a checkpoint."""
    from rnnlm import analysis

    ref, vocab, meta = analysis.load_reference(path)
    if vocab is not None:
        return ref, _encode_for(path, vocab, meta, args)
    # The tutorial's file has no vocabulary: rebuild one of the model's size from --corpus.
    C = ref.word_dim
    if C not in corpus_cache:
        corpus_cache[C] = _prepare(args, vocab_size=C)
    warnings.warn(f"{path} has no vocabulary: using the {len(corpus_cache[C].vocab)}-word vocabulary of "
                  f"{args.corpus}, which is not the one the model was trained with (word ids differ)",
                  stacklevel=2)
    return ref, corpus_cache[C].sentences


def _select(sentences, args):
    from rnnlm import analysis

    return analysis.select_sentences(sentences, n=args.sentences, min_len=args.min_tokens,
                                     max_len=args.max_tokens, seed=args.seed)


def _sentence_info(pairs) -> dict:
    lengths = [len(x) for x, _ in pairs]
    return {"count": len(pairs), "min_len": min(lengths), "max_len": max(lengths),
            "mean_len": sum(lengths) / len(lengths)}


def _save(fig, out, name, plots):
    from rnnlm import analysis

    plots[name] = str(analysis.save_figure(fig, out / f"{name}.png"))


def _print_json(obj) -> None:
    from rnnlm import analysis

    print_json(analysis.to_jsonable(obj))


def _print_written(plots: dict) -> None:
    for path in plots.values():
        print(f"wrote {path}")


def _fmt(v, spec=".3g"):
    return "-" if v is None else format(v, spec)


# --------------------------------------------------------------------------------------------------
# handlers
# --------------------------------------------------------------------------------------------------


def run_gradients(args) -> int:
    from rnnlm import analysis

    out = _out_dir(args)
    if len(args.fit) > 2 or args.fit[0] < 0 or (len(args.fit) == 2 and args.fit[1] <= args.fit[0]):
        raise UsageError("--fit: expected FIRST or FIRST,LAST with 0 <= FIRST < LAST")
    fit_range = (args.fit[0], args.fit[1] if len(args.fit) == 2 else None)
    specs = [parse_fresh(s) for s in args.fresh]
    if not specs and not args.checkpoints:
        specs = [parse_fresh(s) for s in DEFAULT_FRESH]
    names = [_fresh_name(spec) for spec in specs] + [Path(c).name for c in args.checkpoints]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise UsageError(f"two models are named {duplicate!r}; add name=... to a --fresh spec")
    models = []  # (name, source, reference model, sentence pairs)
    corpus_cache = {}
    for path in args.checkpoints:
        ref, sentences = _load(path, args, corpus_cache)
        models.append((Path(path).name, str(path), ref, _select(sentences, args)))
    if specs:
        corpus = _prepare(args)
        pairs = _select(corpus.sentences, args)
        for spec in specs:
            kw = {k: v for k, v in spec.items() if k != "name"}
            kw["hidden_dim"] = kw.pop("hidden", args.hidden)
            kw["embedding_dim"] = kw.pop("embedding", 0)
            kw.setdefault("seed", args.seed)
            ref = analysis.fresh_model(vocab_size=len(corpus.vocab), **kw)
            models.append((_fresh_name(spec), "fresh", ref, pairs))
    results = {}
    for name, _, ref, pairs in models:
        if not args.json:
            print(f"analysing {name} ...", file=sys.stderr)
        results[name] = analysis.gradient_norms(ref, pairs, norm=args.norm, max_distance=args.max_distance,
                                                fit_range=fit_range, progress=_progress(args))
    plots = {}
    if out is not None:
        _save(analysis.plot_heatmap(results), out, "heatmap", plots)
        _save(analysis.plot_decay(results), out, "decay", plots)
    if args.json:
        _print_json({
            "norm": args.norm, "fit_range": list(fit_range),
            "models": [{"name": name, "source": source, "selection": _sentence_info(pairs),
                        **{k: v for k, v in results[name].items() if k != "per_sentence"}}
                       for name, source, _, pairs in models],
            "plots": plots,
        })
        return 0
    print(f"‖∂L_t/∂s_k‖ and ‖∂s_t/∂s_k‖ ({args.norm} norm) by distance d = t - k; decay = fitted factor "
          "per step back in time")
    w = max(24, *(len(name) for name, *_ in models))
    header = (f"{'model':<{w}} {'sents':>5} {'radius W':>8} {'decay dL/ds':>11} {'r2':>5} {'half-life':>9} "
              f"{'decay ds/ds':>11}  ‖∂L_t/∂s_k‖ at d = 0 / 5 / 10 / 20")
    print(header)
    for name, _, _, pairs in models:
        r = results[name]
        fl, fj = r["decay"]["loss_grad"], r["decay"]["jacobian"]
        radius = max(max(v["radius"]) for v in r["recurrent"].values())
        g = r["loss_grad"]["geomean"]
        at = " / ".join(_fmt(g[d] if d < len(g) else None) for d in (0, 5, 10, 20))
        print(f"{name:<{w}} {len(pairs):>5} {radius:>8.3f} {_fmt(fl['factor'], '.4f'):>11} "
              f"{_fmt(fl['r2'], '.2f'):>5} {_fmt(fl['half_life'], '.2f'):>9} "
              f"{_fmt(fj['factor'], '.4f'):>11}  {at}")
    _print_written(plots)
    return 0


def _without_per_sentence(e: dict) -> dict:
    modes = {m: {q: a for q, a in d.items() if q != "per_sentence"} for m, d in e["modes"].items()}
    return {**e, "modes": modes}


def _truncation_grid(longest: int) -> list[int]:
    """k = 0..12, then a few larger values up to the longest sentence (full BPTT for both modes)."""
    ks = list(range(0, min(longest, 12) + 1))
    k = 16
    while k < longest:
        ks.append(k)
        k += 8 if k >= 24 else 4
    if ks[-1] != longest:
        ks.append(longest)
    return ks


def run_truncation(args) -> int:
    import numpy as np

    from rnnlm import analysis
    from rnnlm.models.reference import TRUNCATIONS

    for m in args.truncation:
        if m not in TRUNCATIONS:
            raise UsageError(f"--truncation: unknown definition {m!r}; choose from {', '.join(TRUNCATIONS)}")
    out = _out_dir(args)
    corpus = _prepare(args)
    C = len(corpus.vocab)
    errors = {}
    pairs = _select(corpus.sentences, args)
    ks = _truncation_grid(max(len(x) for x, _ in pairs))
    fresh = analysis.fresh_model("rnn", vocab_size=C, hidden_dim=args.hidden, seed=args.seed)
    errors["fresh"] = analysis.truncation_error(fresh, pairs, truncations=ks)
    if args.checkpoint:
        ref, sentences = _load(args.checkpoint, args, {C: corpus})
        cp = _select(sentences, args)
        errors[Path(args.checkpoint).name] = analysis.truncation_error(
            ref, cp, truncations=_truncation_grid(max(len(x) for x, _ in cp)))
    training = None
    if not args.no_train:
        everything = analysis.select_sentences(corpus.sentences, min_len=2)
        order = np.random.default_rng(args.seed).permutation(len(everything))
        n_valid = min(args.valid_sentences, len(everything) // 5)
        valid = [everything[i] for i in order[:n_valid]]
        train = [everything[i] for i in order[n_valid:n_valid + args.train_sentences]]
        training = analysis.truncation_training(
            train, valid, C, hidden_dim=args.hidden, truncations=args.truncate, modes=args.truncation,
            epochs=args.epochs, learning_rate=args.lr, seed=args.seed, progress=_progress(args))
        full = training["models"].get(("full", -1))
        if full is not None:  # the same measurement after training: gradients of a trained model
            errors["trained"] = analysis.truncation_error(full, pairs, truncations=ks)
    plots = {}
    if out is not None:
        _save(analysis.plot_truncation(errors, training), out, "truncation", plots)
    if args.json:
        _print_json({
            "selection": _sentence_info(pairs), "vocab_size": C, "hidden_dim": args.hidden,
            "error": {name: _without_per_sentence(e) for name, e in errors.items()},
            "training": None if training is None else {k: v for k, v in training.items() if k != "models"},
            "plots": plots,
        })
        return 0
    print(f"Relative error of truncated BPTT, ‖g_k - g‖/‖g‖ over (dL/dU, dL/dW), mean over {len(pairs)} "
          "sentences")
    show = [k for k in (0, 1, 2, 4, 8, 16) if k in ks]
    for name, e in errors.items():
        for mode, d in e["modes"].items():
            cells = "  ".join(f"k={k}: {d['mean'][e['truncations'].index(k)]:.4f}" for k in show)
            print(f"  {name:<12} {mode:<9} {cells}")
    if training:
        print(f"Training cost ({training['train_sentences']} sentences, {training['epochs']} epochs of SGD, "
              f"lr {training['learning_rate']}, H={training['hidden_dim']}, C={C}); loss in nats/word")
        print(f"  {'truncation':<14} {'train loss':>10} {'valid loss':>10} {'seconds':>8}")
        for run in training["runs"]:
            label = ("full BPTT" if run["truncation"] == "full"
                     else f"{run['truncation']} k={run['bptt_truncate']}")
            v = run["valid_loss"][-1]
            print(f"  {label:<14} {run['train_loss'][-1]:>10.4f} {_fmt(v, '.4f'):>10} {run['seconds']:>8.1f}")
    _print_written(plots)
    return 0


def run_exploding(args) -> int:
    from rnnlm import analysis
    from rnnlm.models.reference import ACTIVATIONS

    for a in args.activation:
        if a not in ACTIVATIONS:
            raise UsageError(f"--activation: unknown activation {a!r}; choose from {', '.join(ACTIVATIONS)}")
    out = _out_dir(args)
    models = []
    if args.checkpoint:
        ref, sentences = _load(args.checkpoint, args, {})
        models.append((Path(args.checkpoint).name, ref, _select(sentences, args)))
    else:
        corpus = _prepare(args)
        pairs = _select(corpus.sentences, args)
        for a in args.activation:
            ref = analysis.fresh_model("rnn", vocab_size=len(corpus.vocab), hidden_dim=args.hidden,
                                       activation=a, seed=args.seed)
            models.append((f"rnn {a}", ref, pairs))
    results = {}
    for name, ref, pairs in models:
        if not args.json:
            print(f"analysing {name} ...", file=sys.stderr)
        results[name] = analysis.exploding_gradients(ref, pairs, radii=args.radius, clip=args.clip,
                                                     learning_rate=args.lr)
    plots = {}
    if out is not None:
        _save(analysis.plot_exploding(results), out, "exploding", plots)
    if args.json:
        _print_json({"clip": args.clip, "radii": args.radius,
                     "models": [{"name": name, "selection": _sentence_info(pairs), **results[name]}
                                for name, _, pairs in models],
                     "plots": plots})
        return 0
    print(f"Global gradient norm ‖∂L/∂θ‖ of each sentence's loss (median / max over sentences), clipped at "
          f"{args.clip:g}; decay = per-step factor of ‖∂L_t/∂s_k‖; loss (nats/word) before and after "
          "one pass of "
          f"per-sentence SGD (lr {args.lr:g}) without and with clipping")
    for name, r in results.items():
        print(f"{name}:")
        print(f"  {'radius':>6} {'median':>10} {'max':>10} {'clipped':>8} {'decay':>7} {'loss before':>11} "
              f"{'no clip':>10} {'clip':>10}")
        for row in r["rows"]:
            sgd = row["sgd"]
            nc = sgd.get("no_clip", {})
            cl = sgd.get("clip", {})
            print(f"  {row['radius']:>6.2f} {row['norm']['median']:>10.3g} {row['norm']['max']:>10.3g} "
                  f"{row['clipped_norm']['max']:>8.3g} {_fmt(row['decay']['factor'], '.3f'):>7} "
                  f"{_fmt(nc.get('before', cl.get('before')), '.4g'):>11} "
                  f"{'diverged' if nc.get('diverged') else _fmt(nc.get('after'), '.4g'):>10} "
                  f"{'diverged' if cl.get('diverged') else _fmt(cl.get('after'), '.4g'):>10}")
    _print_written(plots)
    return 0
