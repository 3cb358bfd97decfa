"""Write the tutorial notebooks (notebooks/*.ipynb) from the cell sources below, without outputs.

    .venv/bin/python scripts/make_notebooks.py          # all four
    .venv/bin/python scripts/make_notebooks.py 03       # the ones whose name contains 03
    .venv/bin/python -m rnnlm.notebooks --in-place      # then execute them (make notebooks)

The notebooks are generated here so their sources can be reviewed as plain Python; running this
script overwrites any edit made to a notebook in Jupyter (edit the cells here instead).  Cells call
the library (rnnlm); what they define themselves is drawing code and small illustrations.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1] / "notebooks"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def md(text):
    return new_markdown_cell(textwrap.dedent(text).strip("\n"))


def code(text):
    return new_code_cell(textwrap.dedent(text).strip("\n"))


SETUP = """
%matplotlib inline
import warnings

import numpy as np
import matplotlib.pyplot as plt

import rnnlm
from rnnlm import engine

np.set_printoptions(precision=4, suppress=True, linewidth=110)
print(f"rnnlm {rnnlm.__version__} | engine: {engine.name} {engine.version}, floatX={engine.floatX} | "
      f"linker for batched models: {engine.default_linker()}")
"""

# The notebooks that teach the tutorial's code print it with show(): the source of the installed rnnlm,
# so what is read is what runs (for a class: only the methods named).
SHOW = r"""
import ast
import inspect
import textwrap
import time
from pathlib import Path


def show(obj, *parts):
    # Print the source of `obj` as installed (what runs is what you read); for a class, only the methods
    # whose names contain one of `parts`.
    lines, first = inspect.getsourcelines(obj)
    where = Path(inspect.getsourcefile(obj)).as_posix()
    where = "src/" + where[where.rindex("rnnlm/"):]
    if not parts:
        print(f"# {where}, lines {first}-{first + len(lines) - 1}")
        print(textwrap.dedent("".join(lines)).rstrip())
        return
    for node in ast.parse(textwrap.dedent("".join(lines))).body[0].body:
        if isinstance(node, ast.FunctionDef) and any(p in node.name for p in parts):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            print(f"# {where}, {obj.__name__}.{node.name}, lines {first + start}-{first + node.end_lineno - 1}")
            print(textwrap.dedent("".join(lines[start:node.end_lineno])).rstrip() + "\n")
"""

# ------------------------------------------------------------------------------------------------
# 01 — introduction to RNNs
# ------------------------------------------------------------------------------------------------
NB01 = [
    md(r"""
    # 1 · Introduction to recurrent neural networks

    This notebook follows part 1 of the WildML RNN tutorial with the `rnnlm` library: the recurrence, what
    *unrolling* means, the shapes of the parameters $U$, $V$, $W$, how one set of parameters is shared by
    every time step (seen in the library's own `scan` graphs), and the two extensions part 1 names: deep
    (stacked) and bidirectional RNNs, drawn from the models `rnnlm` actually builds.

    It runs in a few seconds on two CPU cores and needs no data files.
    """),
    code(SETUP + """
from rnnlm.models.lm import LanguageModel, ModelConfig, param_shapes
from rnnlm.models.tutorial import RNN
from rnnlm.models.reference import RNNNumpy, init_tutorial_params
"""),
    md(r"""
    ## The recurrence

    A recurrent network reads a sequence $x_0, x_1, \dots$ one element at a time and carries a hidden state
    $s_t$, its memory of everything read so far:

    $$s_t = f(U x_t + W s_{t-1}), \qquad o_t = \mathrm{softmax}(V s_t), \qquad s_{-1} = 0.$$

    In a language model $x_t$ is the $t$-th word as a one-hot vector over a vocabulary of $C$ words, $o_t$ is
    the predicted distribution of the *next* word, and $f$ is a nonlinearity (the tutorial uses $\tanh$; part 1
    also mentions ReLU).  The same $U$, $V$, $W$ are used at every step.  *Unrolling* writes the loop out
    as a feed-forward network with one layer per time step — the picture below, drawn for three steps.
    """),
    code(r"""
def box(ax, xy, text):
    ax.text(*xy, text, ha="center", va="center", fontsize=12,
            bbox=dict(boxstyle="round,pad=0.35", fc="white", ec="0.3", lw=1.3))


def arrow(ax, p, q, label="", rad=0.0, offset=(0.12, 0.0), shrink=14):
    ax.annotate("", xy=q, xytext=p, arrowprops=dict(arrowstyle="-|>", color="0.3", lw=1.3, shrinkA=shrink,
                                                     shrinkB=shrink, connectionstyle=f"arc3,rad={rad}"))
    if label:
        ax.text((p[0] + q[0]) / 2 + offset[0], (p[1] + q[1]) / 2 + offset[1], label, color="0.3", fontsize=11,
                ha="left", va="center")


fig, ax = plt.subplots(figsize=(10, 3.6))
# folded: one cell whose state feeds back into itself through W
box(ax, (0, 0), "$x_t$"); box(ax, (0, 1), "$s_t$"); box(ax, (0, 2), "$o_t$")
arrow(ax, (0, 0), (0, 1), "U"); arrow(ax, (0, 1), (0, 2), "V")
arrow(ax, (0.17, 0.86), (0.17, 1.14), rad=1.6, shrink=0)
ax.text(0.45, 1.0, "W", color="0.3", fontsize=11, va="center")
ax.text(1.05, 1, "unroll\n$\\Longrightarrow$", ha="center", va="center", fontsize=12)
# unrolled: the same U, V, W at every step
xs = [2.9 + 1.6 * i for i in range(3)]
for x, t in zip(xs, ("t-1", "t", "t+1")):
    box(ax, (x, 0), f"$x_{{{t}}}$"); box(ax, (x, 1), f"$s_{{{t}}}$"); box(ax, (x, 2), f"$o_{{{t}}}$")
    arrow(ax, (x, 0), (x, 1), "U"); arrow(ax, (x, 1), (x, 2), "V")
for a, b in zip([xs[0] - 0.9] + xs, xs + [xs[-1] + 0.9]):
    arrow(ax, (a, 1), (b, 1), "W", offset=(-0.1, 0.13), shrink=18)
ax.text(xs[0] - 1.05, 1.0, "…", fontsize=14, ha="center", va="center")
ax.text(xs[-1] + 1.05, 1.0, "…", fontsize=14, ha="center", va="center")
ax.set_xlim(-0.6, 7.6); ax.set_ylim(-0.5, 2.5); ax.set_axis_off()
ax.set_title("an RNN and its unrolled form: one set of parameters U, V, W for every step")
plt.show()
"""),
    md(r"""
    ## The shapes of U, V and W

    With a vocabulary of $C$ words and a hidden state of $H$ units: $x_t \in \mathbb{R}^C$, $s_t \in
    \mathbb{R}^H$, $o_t \in \mathbb{R}^C$, so $U$ is $H \times C$, $W$ is $H \times H$ and $V$ is $C \times H$.
    Take a toy vocabulary of five words and three hidden units — the library's NumPy reference model
    (`rnnlm.models.reference.RNNNumpy`, the tutorial's `RNNNumpy`) has exactly these parameters:
    """),
    code(r"""
vocab = ["SENTENCE_START", "the", "cat", "sat", "SENTENCE_END"]  # C = 5
toy = RNNNumpy(word_dim=len(vocab), hidden_dim=3, bptt_truncate=-1, seed=0)
for name, p in toy.params.items():
    print(f"{name}: {p.shape}")
"""),
    md(r"""
    The tutorial's language model uses $C = 8000$ and $H = 100$: $2HC + H^2 = 1{,}610{,}000$ parameters,
    initialised uniformly in $\pm 1/\sqrt{n}$ with $n$ the number of incoming connections.  The count does
    not depend on the length of a sentence — that is parameter sharing.
    """),
    code(r"""
tutorial = init_tutorial_params(word_dim=8000, hidden_dim=100, seed=0)
for name, p in tutorial.items():
    print(f"{name}: {str(p.shape):>12}  {p.size:>9,} values, |max| = {np.abs(p).max():.4f}")
print(f"total: {sum(p.size for p in tutorial.values()):,} parameters "
      f"(1/sqrt(8000) = {1 / np.sqrt(8000):.4f}, 1/sqrt(100) = {1 / np.sqrt(100):.4f})")
"""),
    md(r"""
    ## One step by hand, then the library

    Multiplying $U$ by a one-hot vector selects a column, so $U x_t$ is just `U[:, x_t]`.  Below, the loop is
    unrolled by hand for the sentence "SENTENCE_START the cat sat" (each target $y_t$ is the next word) and
    compared with the library's `forward_propagation`: the same $U$ and $W$ at every step give the same states.
    """),
    code(r"""
x = np.array([0, 1, 2, 3])  # SENTENCE_START the cat sat
y = np.array([1, 2, 3, 4])  # the cat sat SENTENCE_END  (y_t = x_{t+1})
one_hot = np.eye(len(vocab))[x[0]]
print("U @ one_hot(x_0) =", toy.U @ one_hot, "= U[:, x_0] =", toy.U[:, x[0]])

s, by_hand = np.zeros(3), []  # s_{-1} = 0
for t in range(len(x)):  # the unrolled loop: one U and one W for every step
    s = np.tanh(toy.U[:, x[t]] + toy.W @ s)
    by_hand.append(s)
o, states = toy.forward_propagation(x)  # the library: o (T, C), states (T+1, H) with states[-1] = s_{-1} = 0
print("same states as the library:", np.allclose(by_hand, states[:-1]))
print("o_t: one distribution over the next word per step (rows sum to", o.sum(axis=1), ")")
print("    " + " ".join(f"{w[:9]:>9}" for w in vocab))
for t in range(len(x)):
    print(f"{vocab[x[t]][:9]:>9} -> " + " ".join(f"{p:9.3f}" for p in o[t]))
print(f"loss of this untrained model: {toy.calculate_loss([x], [y]):.3f} nats/word "
      f"(ln C = {np.log(len(vocab)):.3f}: about uniform, as it should be)")
"""),
    md(r"""
    ## Parameter sharing in the graph

    The graph model `rnnlm.RNN` (the tutorial's `RNNTheano`) declares the recurrence with `scan`, as Theano code
    does: *one* step function, $s_t = \tanh(U[:, x_t] + W s_{t-1})$, which `scan` applies at every time step,
    with the weights handed to the loop once, as *non-sequences*.  Compiled as a batched `LanguageModel` (the same
    weights), the loop is one `Scan` node; `engine.scan_loops` lists it with the shapes of the weights it
    receives.  Only $W$ is inside: $U$'s columns and the output layer $V$ do not depend on the previous state, so
    they are computed for all steps outside the loop.  However long the sentence, the same $3 \times 3$ matrix
    serves every step.  (The full symbolic graphs are printed in the appendix.)
    """),
    code(r"""
graph_rnn = RNN(word_dim=len(vocab), hidden_dim=3, bptt_truncate=-1, seed=0)  # same seed: the weights of `toy`
lm = graph_rnn.to_language_model(linker=engine.default_linker())
for T in (4, 40):
    for loop in engine.scan_loops(lm.graph("dist", (T, 1))):
        print(f"a {T}-word sentence: Scan '{loop['name']}' with non-sequences of shapes {loop['non_sequence_shapes']}")
"""),
    md(r"""
    The compiled batched model (`LanguageModel`, here on the JAX linker) gives the same numbers in two ways:
    one `scan` over the whole sentence (`distribution`), and the compiled *one-step* function called four
    times, carrying the state by hand (`step_function`, what generation uses).  Both agree with the NumPy
    reference to float32 precision — one step function with one set of weights, applied at every step.
    """),
    code(r"""
p_scan = np.exp(lm.distribution(x[:, None].astype(np.int32))[:, 0])  # (T, C): one scan over the sentence

step = lm.step_function(1)
states = lm.initial_state(1)
p_steps = []
for t in range(len(x)):  # the same compiled step, called once per word
    logp, *states = step(x[t:t + 1].astype(np.int32), *states)
    p_steps.append(np.exp(np.asarray(logp)[0]))
print("scan == step by step:", np.allclose(p_scan, p_steps, atol=1e-6))
print("graph (float32) == NumPy reference (float64):", np.allclose(p_scan, o, atol=1e-6))
"""),
    md(r"""
    ## Deep and bidirectional RNNs

    Part 1 names two extensions.  A **deep** RNN stacks layers: layer $l$ reads the states of layer $l-1$
    as its input sequence.  A **bidirectional** RNN runs a second RNN from the end of the sequence to its
    start, so an output can depend on future elements too — in `rnnlm` that is the fill-in-the-blank model:
    the word at position $t$ is predicted from the forward state after $w_{t-1}$ and the backward state
    after $w_{t+1}$ (neither has seen $w_t$).  A deep bidirectional RNN stacks both.

    In `ModelConfig` these are `layers=N` and `bidirectional=True`.  Every layer $l$ of direction $d$ ('' forward,
    `_b` backward) has its own `U{l}{d}` (gates, H, input), `W{l}{d}` (gates, H, H) and bias `b{l}{d}`; the
    output layer `V` reads the top states (both directions for the fill model).  The parameter tables:
    """),
    code(r"""
configs = {
    "deep (2 layers)": ModelConfig(vocab_size=len(vocab), hidden_dim=3, layers=2),
    "deep bidirectional (2 layers)": ModelConfig(vocab_size=len(vocab), hidden_dim=3, layers=2, bidirectional=True),
}
for title, cfg in configs.items():
    shapes = param_shapes(cfg)
    print(f"{title}: {sum(int(np.prod(s)) for s in shapes.values())} parameters")
    print("   " + "  ".join(f"{k}{s}" for k, s in shapes.items()))
"""),
    md(r"""
    Which loops does the compiled model run?  Below, each model's forward function is compiled (JAX linker)
    and its `Scan` nodes are listed: one loop per layer and direction, each with its recurrent weights as
    non-sequences.  PyTensor's rewriter merges the forward and backward loops of a layer into one `Scan`
    (`rnn0_b&rnn0`), since they have the same number of steps — the two directions still use separate
    weights.  (`model.graph(kind, shape)` returns the model's compiled function; `engine.scan_loops` lists its loops.)
    """),
    code(r"""
def scan_loops(config, length=6):
    # Compile the model's forward function and list its Scan nodes: (name, steps, non-sequence shapes).
    model = LanguageModel(config, seed=0, linker=engine.default_linker())
    fn = model.graph("dist", (length, 1))
    return [(loop["name"], length, loop["non_sequence_shapes"]) for loop in engine.scan_loops(fn)]


loops = {}
for title, cfg in configs.items():
    loops[title] = scan_loops(cfg)
    print(title)
    for name, steps, weights in loops[title]:
        print(f"   Scan '{name}': {steps} steps, recurrent weights (non-sequences) of shapes {weights}")
"""),
    md(r"""
    The drawings below are generated from those two sources: the rows, their parameter shapes and their loop
    names come from `param_shapes(config)` and the compiled `Scan` nodes above.  Blue: forward direction;
    orange: backward direction.
    """),
    code(r"""
def draw_network(ax, config, loop_names, steps=5):
    cfg, shapes = config, param_shapes(config)
    colour = {"": "tab:blue", "_b": "tab:orange"}
    rows = [(l, d) for d in cfg.directions for l in range(cfg.layers)]
    y_of = {row: i + 1 for i, row in enumerate(rows)}
    top = len(rows) + 1

    def link(p, q, c, rad=0.0):
        ax.annotate("", xy=q, xytext=p, arrowprops=dict(arrowstyle="-|>", color=c, lw=1.0, shrinkA=8,
                                                         shrinkB=8, connectionstyle=f"arc3,rad={rad}"))

    def node(xy, text, c):
        ax.text(*xy, text, ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="circle,pad=0.25", fc="white", ec=c, lw=1.3))

    for t in range(steps):
        node((t, 0), f"$x_{t}$", "0.4")
    for (l, d), y in y_of.items():
        c = colour[d]
        below = 0 if l == 0 else y_of[(l - 1, d)]
        for t in range(steps):
            node((t, y), f"$s_{t}$", c)
            link((t, below), (t, y), c, rad=0.35 if y - below > 1 else 0.0)  # input: x_t or the layer below
            if d == "" and t > 0:
                link((t - 1, y), (t, y), c)  # forward recurrence W
            if d == "_b" and t < steps - 1:
                link((t + 1, y), (t, y), c)  # backward recurrence W_b
        loop = next((n for n in loop_names if f"{cfg.cell}{l}{d}" in n.split("&")), "?")
        ax.text(-0.55, y, f"layer {l} {'→' if d == '' else '←'}   U{l}{d} {shapes[f'U{l}{d}']}\n"
                f"W{l}{d} {shapes[f'W{l}{d}']}   b{l}{d} {shapes[f'b{l}{d}']}", ha="right", va="center",
                fontsize=8, color=c)
        ax.text(steps - 0.45, y, f"scan '{loop}'", ha="left", va="center", fontsize=8, color=c)
    fwd_top = y_of[(cfg.layers - 1, "")]
    for t in range(steps):
        if not cfg.bidirectional:
            node((t, top), f"$o_{t}$", "0.2")
            link((t, fwd_top), (t, top), "0.2")
        elif 1 <= t <= steps - 2:  # the word at t from the forward state at t-1 and the backward state at t+1
            node((t, top), f"$o_{t}$", "0.2")
            link((t - 1, fwd_top), (t, top), colour[""], rad=-0.25)
            link((t + 1, y_of[(cfg.layers - 1, "_b")]), (t, top), colour["_b"], rad=0.1)
    ax.text(-0.55, top, f"output  V {shapes['V']}, c {shapes['c']}", ha="right", va="center", fontsize=8)
    ax.text(-0.55, 0, "input words (one-hot)", ha="right", va="center", fontsize=8)
    ax.set_xlim(-4.2, steps + 1.3)
    ax.set_ylim(-0.6, top + 0.6)
    ax.set_axis_off()


fig, axes = plt.subplots(1, 2, figsize=(15, 5.2), gridspec_kw={"width_ratios": [1, 1]})
for ax, (title, cfg) in zip(axes, configs.items()):
    draw_network(ax, cfg, [name for name, _, _ in loops[title]])
    ax.set_title(title, fontsize=11)
fig.tight_layout()
plt.show()
"""),
    md(r"""
    In the bidirectional drawing the output row starts at $t = 1$ and ends one word early: the first and last
    tokens (SENTENCE_START, SENTENCE_END) have nothing on one side, so the fill model predicts only the words
    between them.  Each direction stacks its own layers, and the output reads the top of both stacks.

    **Next:** [02 · implementing a language model](02-implementing-a-language-model.ipynb) writes and trains
    these models on real text.

    ## Appendix: the symbolic graphs

    For readers who want the graph itself.  `RNN.graph(name)` returns the symbolic outputs of one of the model's
    functions (`forward_propagation`, `predict`, `ce_error`, `bptt`; nothing is compiled) and `engine.pprint`
    prints them.  In the default *fast* form, `U` and `W` enter the `Scan` node once, as non-sequences; the inner
    graph — one step, `tanh(U[:, x_t] + W s_{t-1})` — reads them as its inputs (`i2 -> U`, `i3 -> W`); the output
    layer `V` sits after the loop, one matrix product for all steps.
    """),
    code(r"""
engine.pprint(graph_rnn.graph("forward_propagation"), depth=6);
"""),
    md(r"""
    The tutorial's own graph computed $o_t$ inside the loop.  `RNN(fast=False)` keeps that faithful form: `V` is a
    third non-sequence of the `Scan` and the softmax runs once per step (notebook 03 shows what that does to
    truncated gradients).
    """),
    code(r"""
faithful = RNN(word_dim=len(vocab), hidden_dim=3, bptt_truncate=-1, seed=0, fast=False)
engine.pprint(faithful.graph("forward_propagation"), depth=4);
"""),
]

# ------------------------------------------------------------------------------------------------
# 02 — implementing a language model
# ------------------------------------------------------------------------------------------------
NB02 = [
    md(r"""
    # 2 · Implementing a language model

    Part 2 of the tutorial *writes* an RNN language model: the data pipeline, the forward pass, the loss,
    backpropagation through time, a gradient check, SGD, the training loop and generation — first in NumPy
    (`RNNNumpy`), then as a Theano graph (`RNNTheano`).  This notebook prints the library's code for each
    piece next to its math (`show(...)` reads the source of the installed `rnnlm`, so what you read is what
    runs) and then runs it, with the tutorial's settings: $C$ = the 8,000 most frequent words, $H = 100$,
    `bptt_truncate=4`, SGD at 0.005 on the first 100 sentences for 10 epochs.

    **Data.** `prepare("reddit")` uses the tutorial's `reddit-comments-2015-08.csv` (15,000 comments) when it is
    in a data folder (`rnnlm data download reddit` fetches it).  Otherwise the sample shipped with rnnlm stands
    in, with a warning: the file's first 212 comments, the last one cut off mid-comment, so **211 load**
    (origin and licence: `data/README.md`).  The numbers below are the sample's.  About a minute on two CPU
    cores.
    """),
    code(SETUP + SHOW + """
from rnnlm import bench
from rnnlm.data import datasets
from rnnlm.models.ngram import Unigram
from rnnlm.models.reference import RNNNumpy, init_tutorial_params
from rnnlm.models.reference.common import numeric_grad
from rnnlm.training.tutorial import train_with_sgd
from threadpoolctl import threadpool_limits
"""),
    md(r"""
    ## 1. The data

    The tutorial's pipeline: split the comments into sentences (NLTK Punkt), lowercase and tokenize them (NLTK),
    wrap every sentence in `SENTENCE_START` … `SENTENCE_END`, keep the 7,999 most frequent words and map the rest
    to `UNKNOWN_TOKEN`.  `prepare` does all of it and says what it did: the first warning below names the file
    that stood in for the full one, the second the cut-off last row.
    """),
    code(r"""
corpus = rnnlm.prepare("reddit", vocab_size=8000)
stats = corpus.stats
for key in ("source", "documents", "sentence_splitter", "sentences", "tokens", "words", "unique_tokens",
            "vocab_size", "least_frequent_word", "least_frequent_count", "unknown_rate"):
    print(f"{key:>20}: {stats[key]}")
"""),
    md(r"""
    The sample has only 4,389 distinct tokens, so all of them fit in an 8,000-word vocabulary: nothing is
    unknown, and $C$ = 4,390 with `UNKNOWN_TOKEN`.  Training pairs are the tutorial's: `x` is a sentence without
    its last token, `y` the same sentence shifted by one — the word to predict at every step.
    """),
    code(r"""
vocab = corpus.vocab
C = len(vocab)
X, Y = corpus.xy()
print("most frequent:", vocab.index_to_word[:20])
i = 17
print("\nx:", corpus.decode(X[i]), "\n  ", X[i])
print("y:", corpus.decode(Y[i]), "\n  ", Y[i])

counts = np.array(vocab.counts)
lengths = np.array([len(s) - 2 for s in corpus.sentences])  # words, without START/END
fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.4))
a.hist(lengths, bins=40, color="tab:blue")
a.set_xlabel("words per sentence"); a.set_ylabel("sentences")
a.set_title(f"{len(lengths):,} sentences, median {np.median(lengths):.0f} words")
ranked = np.sort(counts[:-1])[::-1]
b.loglog(np.arange(1, len(ranked) + 1), ranked, ".", ms=3)
b.set_xlabel("rank"); b.set_ylabel("count"); b.set_title("word frequencies (Zipf)")
fig.tight_layout(); plt.show()
"""),
    md(r"""
    ## 2. The model and its forward pass

    $$s_t = \tanh(U x_t + W s_{t-1}),\qquad o_t = \mathrm{softmax}(V s_t),\qquad s_{-1} = 0,$$

    with $U$: H×C, $V$: C×H, $W$: H×H.  $x_t$ is a one-hot word, so $U x_t$ is the column `U[:, x_t]`.  The
    weights start uniform in $\pm 1/\sqrt{n}$, $n$ the number of incoming connections (C for $U$, H for $V$ and
    $W$):
    """),
    code(r"""
show(init_tutorial_params)
"""),
    md(r"""
    The forward pass.  The tutorial computed $o_t$ inside the loop, one softmax per step; `RNNNumpy` keeps only
    the recurrence in the loop and computes all the outputs with one (T×H)·(H×C) product after it — the output
    layer does not feed the recurrence, so the numbers are the same (the state array has one extra row, left
    zero, which `s[t - 1]` reads as $s_{-1}$ at $t = 0$: the tutorial's trick).
    """),
    code(r"""
show(RNNNumpy, "forward")
"""),
    code(r"""
model = RNNNumpy(C, hidden_dim=100, seed=10)
o, s = model.forward_propagation(X[i])
print("o:", o.shape, "(one distribution over", C, "words per step)   s:", s.shape, "(plus the zero initial state)")
print("predicted next words:", " ".join(vocab.decode(model.predict(X[i]))))
"""),
    md(r"""
    ## 3. The loss

    Cross-entropy, averaged over the $N$ predicted words: $L = -\frac{1}{N}\sum_n \log o_{n, y_n}$ nats per word.
    A fresh model spreads its probability about evenly, so its loss should be close to $\ln C$ — for the
    tutorial's vocabulary $\ln 8000 = 8.987$.  A useful check that the model and the loss are wired correctly:
    """),
    code(r"""
show(RNNNumpy, "loss")
"""),
    code(r"""
loss = model.calculate_loss(X[:1000], Y[:1000])
print(f"expected loss for random predictions: ln C = ln {C} = {np.log(C):.4f}   "
      f"(the tutorial's C = 8000: {np.log(8000):.4f})")
print(f"actual loss of the fresh model on 1000 sentences: {loss:.4f}")
"""),
    md(r"""
    ## 4. Backpropagation through time

    For one sentence with $z_t = U x_t + W s_{t-1}$: the softmax and the cross-entropy together give
    $\partial L/\partial (V s_t) = o_t - \mathrm{onehot}(y_t) =: \delta^o_t$, so

    $$\frac{\partial L}{\partial V} = \sum_t \delta^o_t\, s_t^\top,\qquad
    \delta_t := \frac{\partial L_t}{\partial z_t} = (V^\top \delta^o_t) \odot (1 - s_t^2),\qquad
    \frac{\partial z_t}{\partial z_{t-1}} = W\,\mathrm{diag}(1 - s_{t-1}^2),$$

    and each loss $L_t$ sends $\delta_t$ back through the steps before it: at every step $k$ it reaches,
    $\partial L/\partial W \mathrel{+}= \delta\, s_{k-1}^\top$ and $\partial L/\partial U[:, x_k] \mathrel{+}= \delta$,
    then $\delta \leftarrow (W^\top \delta) \odot (1 - s_{k-1}^2)$.  The tutorial stops after `bptt_truncate`
    steps (part 3, notebook 03, derives this and measures what truncation costs).  `bptt` writes the blog post's
    loop literally for `truncation="tutorial"`; the other branch is the definition `scan` uses, and full BPTT:
    """),
    code(r"""
show(RNNNumpy, "bptt")
"""),
    md(r"""
    **Gradient check.**  $\partial L/\partial\theta \approx (L(\theta + h) - L(\theta - h)) / 2h$ for every
    single parameter, compared with BPTT by the relative error $|a - n| / (|a| + |n|)$ — two loss evaluations
    per parameter, so the tutorial checks a small model (vocabulary 100, $H = 10$, `bptt_truncate=1000`: nothing
    truncated):
    """),
    code(r"""
show(RNNNumpy, "gradient_check")
show(numeric_grad)
"""),
    code(r"""
check = RNNNumpy(100, hidden_dim=10, bptt_truncate=1000, seed=10)
errors = check.gradient_check([0, 1, 2, 3], [1, 2, 3, 4], verbose=True)
assert max(errors.values()) < 1e-2
"""),
    md(r"""
    ## 5. SGD and the training loop

    One SGD step moves every parameter against its gradient; the tutorial's outer loop, `train_with_sgd`, makes
    one step per sentence, computes the loss every `evaluate_loss_after` epochs and **halves the learning rate
    whenever the loss rose**.  Both are the blog post's code:
    """),
    code(r"""
show(RNNNumpy, "sgd_step")
show(train_with_sgd)
"""),
    md(r"""
    The blog post's run, with its settings: `RNNNumpy(vocabulary_size)` — $H = 100$, `bptt_truncate=4` — trained
    on the first 100 sentences for 10 epochs at 0.005, the loss computed after every epoch.  (The blog seeds
    `np.random.seed(10)`; rnnlm draws from `np.random.default_rng(10)`, the same distribution, other numbers.)
    """),
    code(r"""
def report(epoch, examples_seen, loss, learning_rate):  # the blog's log line
    print(f"Loss after num_examples_seen={examples_seen} epoch={epoch}: {loss:.6f}   (learning rate {learning_rate:g})")


model = RNNNumpy(C, hidden_dim=100, bptt_truncate=4, seed=10)
t0 = time.perf_counter()
losses = train_with_sgd(model, X[:100], Y[:100], learning_rate=0.005, nepoch=10, evaluate_loss_after=1,
                        callback=report)
print(f"{len(losses)} evaluations, 1,000 SGD steps in {time.perf_counter() - t0:.0f} s")

seen, values = zip(*losses)
fig, ax = plt.subplots(figsize=(6, 3.4))
ax.plot(seen, values, "o-")
ax.axhline(np.log(C), color="0.6", ls=":", label=f"ln C = {np.log(C):.2f}")
ax.set_xlabel("examples seen"); ax.set_ylabel("loss (nats/word)"); ax.legend()
ax.set_title("train_with_sgd: RNNNumpy, H = 100, 100 sentences, 10 epochs"); fig.tight_layout(); plt.show()
"""),
    md(r"""
    The loss falls on every evaluation, so at 0.005 the halving rule never fires.  It exists for a rate that is
    too high.  At 0.05 the first epoch overshoots — the loss *rises* far above $\ln C$ — and the rule halves the
    rate; it fires again whenever an epoch makes things worse:
    """),
    code(r"""
rates = []


def watch(epoch, examples_seen, loss, learning_rate):
    halved = " <- the loss rose: learning rate halved" if rates and learning_rate < rates[-1] else ""
    rates.append(learning_rate)
    print(f"epoch {epoch}: loss {loss:7.4f}, learning rate {learning_rate:g}{halved}")


hot = RNNNumpy(C, hidden_dim=100, bptt_truncate=4, seed=10)
hot_losses = train_with_sgd(hot, X[:100], Y[:100], learning_rate=0.05, nepoch=6, evaluate_loss_after=1,
                            callback=watch)
"""),
    md(r"""
    ## 6. How good is it?

    Perplexity is $e^{L}$: the number of equally likely words the model is choosing between at each step
    (uniform guessing scores $C$).  On the 100 training sentences and on the other sentences of the sample,
    beside the simplest baseline, an add-one unigram of the same 100 sentences (word frequencies, no context):
    """),
    code(r"""
n_train = 100
held_X, held_Y = X[n_train:], Y[n_train:]
seen_ppl = np.exp(model.calculate_loss(X[:n_train], Y[:n_train]))
held_ppl = np.exp(model.calculate_loss(held_X, held_Y))
unigram = Unigram().fit(corpus.sentences[:n_train], C, start_id=vocab.start_index)
print(f"{'perplexity on':<28}{'RNNNumpy':>10}{'unigram':>10}")
print(f"{'the 100 training sentences':<28}{seen_ppl:>10.1f}{unigram.perplexity(corpus.sentences[:n_train]):>10.1f}")
print(f"{f'the other {len(held_X)} sentences':<28}{held_ppl:>10.1f}{unigram.perplexity(corpus.sentences[n_train:]):>10.1f}")
print(f"uniform guessing: {C}")
seen_words = set(np.concatenate(Y[:n_train]).tolist())
held = np.concatenate(held_Y)
print(f"{np.mean([w not in seen_words for w in held]):.0%} of the held-out tokens never occur in the 100 training sentences")
"""),
    md(r"""
    Two things at once.  The model **has not fit its own training sentences yet**: 333 is far from what a model
    that had memorised 100 sentences would score, and the loss curve above is still falling steeply.  And it does
    much **worse on new sentences** (806), mostly because a third of their tokens are words it never saw in
    training: for those, every training step only pushed their probability down.  The unigram of the same 100
    sentences shows the same gap for the same reason (666 against 1,035).  The RNN beats it on both: it has
    learned a little about which words follow which.  The tutorial's remedy is more data and more time (its
    published model: the full file, 50 epochs, about 20 hours); `rnnlm train` adds what the blog's loop lacks —
    a held-out split, batching, Adam, and stopping when validation stops improving.

    ## 7. The graph model: `RNN`, the tutorial's `RNNTheano`

    The blog post then rewrites the model in Theano.  `rnnlm.RNN` is that model on the engine layer: the same
    $U$, $V$, $W$ and initialisation, but a symbolic graph whose recurrence is a `scan` and whose gradients come
    from automatic differentiation, compiled into `forward_propagation`, `bptt`, `sgd_step`, … on first use:
    """),
    code(r"""
show(rnnlm.RNN, "build")
"""),
    md(r"""
    Where it differs from the `RNNNumpy` run above:

    - **float32** shared variables (the NumPy reference is float64, like the blog's code);
    - **truncation**: `scan(truncate_gradient=k)` runs the backward recursion over the last $k$ steps of the
      sentence only, a different function from the blog's loop (each output's error carried back $k$ steps) —
      the tutorial's own `RNNTheano` did the same; notebook 03 measures both;
    - **the output layer**: `fast=True` (the default) computes $\mathrm{softmax}(S V^\top)$ for all steps after the
      scan, as `RNNNumpy` does; `fast=False` keeps the tutorial's graph with $o_t$ inside the scan (notebook 03:
      it truncates $V$'s gradient too).

    So one `RNN.sgd_step` from the same weights equals `RNNNumpy.sgd_step(..., truncation="scan")` to float32
    precision, and differs from the blog's loop by what truncation drops:
    """),
    code(r"""
j = next(j for j in range(len(X)) if len(X[j]) >= 15)  # a sentence longer than bptt_truncate
x, y = X[j], Y[j]
start = init_tutorial_params(C, 100, seed=1)
graph = rnnlm.RNN(C, hidden_dim=100, bptt_truncate=4, params=start)  # the C linker; compiles sgd_step now
graph.sgd_step(x, y, np.float32(0.005))
after = {"graph": graph.get_params()}
for truncation in ("scan", "tutorial"):
    ref = RNNNumpy(C, hidden_dim=100, bptt_truncate=4, params=start)
    ref.sgd_step(x, y, 0.005, truncation=truncation)
    after[truncation] = ref.params
print(f"one SGD step on a {len(x)}-word sentence, bptt_truncate=4; differences relative to the step itself:")
for name in ("U", "V", "W"):
    step = np.abs(after["scan"][name] - start[name]).max()
    vs = {k: np.abs(after["graph"][name] - after[k][name]).max() / step for k in ("scan", "tutorial")}
    print(f"   {name}: RNN vs RNNNumpy(truncation='scan') {vs['scan']:.1e},   vs the blog's loop {vs['tutorial']:.2f}")
"""),
    md(r"""
    ## 8. The speed of one SGD step

    The blog timed one SGD step ($C = 8000$, $H = 100$, `bptt_truncate=4`, a 45-word sentence): **350 ms** in
    NumPy, **70 ms** with Theano on a CPU, 23 ms on a 2015 GPU — "a 15x improvement".  `bench.bench_sgd_step` is
    the library call behind `rnnlm bench sgd-step`; here with fewer repeats (5) to keep the notebook short:

    - `numpy` — `RNNNumpy.sgd_step`, float64, the tutorial's loop;
    - `rnn_c` — `RNN` as shipped, on PyTensor's C linker (float32);
    - `rnn_jax_static` / `rnn_jax_split` — the same graph with a static sentence length on the JAX linker, and a
      form that gathers `U[:, x]` once outside the loop and updates only the used columns of $U$.

    Beside this run's numbers: the quiet-machine measurement of `docs/benchmarks.md` (a 2-core Intel Xeon at
    load 0.66, 20 repeats).  Timings move with the machine's load, and **ratios measured under load are not
    comparable with quiet ones**: NumPy splits each matrix product over its BLAS threads, and when other
    processes hold the cores those threads wait for one another, so a busy machine can slow the NumPy step far
    more than the compiled ones (a learner once saw 22.8× at load 4.6).  The run reports its load and BLAS
    threads, and times the NumPy step once more with a single BLAS thread: how much that changes the NumPy time
    shows how much of this run's ratios is threading.
    """),
    code(r"""
# docs/benchmarks.md, `rnnlm bench sgd-step --repeat 20`: ms per step, median
QUIET = {"numpy": 22.33, "rnn_c": 28.30, "rnn_jax_static": 6.69, "rnn_jax_split": 5.65}
QUIET_MACHINE = "Intel Xeon (2 vCPUs), OpenBLAS SkylakeX kernel with 2 threads, load 0.66 -> 0.69, 20 repeats"

result = bench.bench_sgd_step(word_dim=8000, hidden_dim=100, bptt_truncate=4, length=45, repeat=5,
                              linkers=["c", "jax"], hand_jax=False)
m = result["machine"]
cpus = m["cpus_usable"] or m["cpus"]
load = (result["load_average_before"][0], result["load_average_after"][0])
blas = sorted({f"{b['library']} {b['kernel']} kernel with {b['threads']} threads" for b in m["blas"]}) or ["none found"]
print(f"this run:            {m['cpu']} ({cpus} usable CPUs), NumPy BLAS {', '.join(blas)}, "
      f"load {load[0]} -> {load[1]}, 5 repeats")
print(f"docs/benchmarks.md:  {QUIET_MACHINE}")
print(f"\n{'candidate':<16}{'ms here':>9}{'vs numpy':>9}   {'ms quiet':>9}{'vs numpy':>9}   what")
for name, c in result["candidates"].items():
    quiet = QUIET.get(name)
    q = f"{quiet:>9.2f}{QUIET['numpy'] / quiet:>8.1f}x" if quiet else " " * 18
    print(f"{name:<16}{c['median_ms']:>9.1f}{c['speedup']:>8.1f}x   {q}   {c['what']}")
for name, why in result["skipped"].items():
    print(f"{name:<16} skipped: {why}")
for name, error in result["failed"].items():
    print(f"{name:<16} FAILED: {error}")
if max(load) > 0.5 * cpus:
    print(f"\nThe load ({max(load)}) was above half of the {cpus} CPUs: this run's ratios are NOT comparable with the "
          "quiet ones.")
else:
    print(f"\nThe machine was quiet (load {max(load)} on {cpus} CPUs): the ratios are comparable with the quiet "
          "ones; the milliseconds only on the same CPU.")

# Why load distorts the ratio: the NumPy step again, now with one BLAS thread.
with threadpool_limits(limits=1, user_api="blas"):
    one = bench.bench_sgd_step(word_dim=8000, hidden_dim=100, bptt_truncate=4, length=45, repeat=5, linkers=[],
                               hand_jax=False)
threads = max(b["threads"] for b in m["blas"]) if m["blas"] else "?"
print(f"NumPy step with {threads} BLAS threads: {result['candidates']['numpy']['median_ms']:.1f} ms; with 1 thread, "
      f"load {one['load_average_before'][0]}: {one['candidates']['numpy']['median_ms']:.1f} ms")

names = list(result["candidates"])
ms = [result["candidates"][n]["median_ms"] for n in names]
fig, ax = plt.subplots(figsize=(8, 3.4))
ax.barh(names + [f"{n} (quiet)" for n in QUIET] + ["blog: NumPy", "blog: Theano CPU"],
        ms + list(QUIET.values()) + [350, 70],
        color=["tab:blue"] * len(names) + ["tab:green"] * len(QUIET) + ["0.75"] * 2)
ax.set_xscale("log"); ax.set_xlim(1, 2 * max(ms + [350])); ax.invert_yaxis()
ax.set_xlabel("ms per SGD step (log scale)")
ax.set_title("one SGD step, C=8000, H=100, 45 words (green: docs/benchmarks.md; grey: the blog, 2015)")
fig.tight_layout(); plt.show()
"""),
    md(r"""
    On a quiet machine the compiled graph is 3–4× the NumPy reference, not the blog's 5× (350 → 70 ms) or its
    15× with a GPU: rnnlm's reference already computes the output layer as one matrix product (the blog's NumPy
    did $T$ small ones), so the 2015 ratios came from a slower baseline.  The C linker of this PyTensor install
    links no BLAS library (printed above), so `RNN` as shipped gains little or nothing over NumPy (0.8× quiet);
    the JAX linker compiles the same graph through XLA.  `rnnlm bench sgd-step` runs the full experiment, with
    more repeats.

    ## 9. Generating sentences

    The tutorial's rule: start from `SENTENCE_START`, sample the next word from $o_t$, append it, and stop at
    `SENTENCE_END`; never emit `UNKNOWN_TOKEN`.  Written out as the blog does it, with `forward_propagation`
    over the whole prefix for every new word:
    """),
    code(r"""
def generate_sentence(model, rng, max_words=30):
    sentence = [vocab.start_index]
    while sentence[-1] != vocab.end_index and len(sentence) <= max_words:
        o, _ = model.forward_propagation(sentence)
        p = o[-1].copy()
        p[[vocab.unk_index, vocab.start_index]] = 0.0  # never UNKNOWN_TOKEN (nor a second START)
        sentence.append(int(rng.choice(C, p=p / p.sum())))
    return vocab.decode(sentence[1:-1] if sentence[-1] == vocab.end_index else sentence[1:])


rng = np.random.default_rng(0)
for _ in range(5):
    print(" ".join(generate_sentence(model, rng)))
"""),
    md(r"""
    Word salad, as expected after 1,000 SGD steps on 100 sentences.  Recomputing the whole
    prefix makes each word cost more than the last; `rnnlm.generate` runs a compiled one-step function and
    carries the state instead (with temperature, top-k and beam search; `rnnlm generate` on the command line).
    Notebook 04 trains gated models that do better.

    ## 10. The tutorial's published model

    The blog post ships `trained-model-theano.npz`: $U$ (50×8000), $V$ (8000×50), $W$ (50×50), float32 — $H = 50$,
    trained for 50 epochs (about 20 hours) on the full reddit file.  `rnnlm.load` reads it as an rnn-cell
    `LanguageModel` without output bias.

    The file holds **no vocabulary**: the tutorial built its word list at run time from the full 15,000-comment
    file, and the sample here has a different one, so decoding the model's ids with it would print the wrong
    words.  What is known is the id layout: id 0 is `SENTENCE_START`, id 1 `SENTENCE_END`, id 7999
    `UNKNOWN_TOKEN`, the other ids are words by decreasing frequency.  So the model generates and scores, but as
    ids; with the full file (`rnnlm data download reddit`) `prepare("reddit", vocab_size=8000)` rebuilds a
    vocabulary with the tutorial's procedure (whether its ids then match the model's exactly is not verified here).
    """),
    code(r"""
path = datasets.resolve("tutorial-model")
tutorial_lm, tutorial_vocab, meta = rnnlm.load(path)
print(path.name, "| vocabulary:", tutorial_vocab, "| format:", meta["format"])
print({k: v.shape for k, v in tutorial_lm.get_params().items()}, tutorial_lm.config)

step = tutorial_lm.step_function(1)
logp, *_ = step(np.array([0], np.int32), *tutorial_lm.initial_state(1))  # after SENTENCE_START
p = np.exp(np.asarray(logp)[0])
top = np.argsort(-p)[:8]
print("\nmost likely first words (ids):", {int(j): round(float(p[j]), 3) for j in top},
      f"- id 7999, UNKNOWN_TOKEN, has p = {p[7999]:.3f}, but generation never emits it")
print(f"p(SENTENCE_START = id 0 next) = {p[0]:.1e}: never predicted, as a start token should be")
for g in rnnlm.generate(tutorial_lm, None, n=4, seed=1, min_length=5, max_length=15):
    print(f"{g.logprob:8.1f}  ids: {g.text}{'' if g.ended else ' …'}")
"""),
    md(r"""
    **Next:** [03 · BPTT and the vanishing gradient](03-bptt-and-vanishing-gradients.ipynb) derives BPTT and
    measures why `bptt_truncate=4` loses little for this model — and what it would lose for one with longer memory.
    """),
]

# ------------------------------------------------------------------------------------------------
# 03 — BPTT and vanishing gradients
# ------------------------------------------------------------------------------------------------
NB03 = [
    md(r"""
    # 3 · Backpropagation through time and the vanishing gradient

    Part 3 of the tutorial derives backpropagation through time (BPTT) with the chain rule, shows that the
    gradient reaching back from step $t$ to an earlier step $k$ is a product of $t-k$ Jacobians, and argues that
    with $\tanh$ (or sigmoid) this product shrinks geometrically: the network cannot learn long-range
    dependencies, and truncating BPTT after a few steps loses little.  This notebook follows that argument —
    the derivation, checked numerically against the code; the derivatives of tanh and sigmoid — and then
    measures it on real sentences with `rnnlm.analysis`: gradient norms against distance, tanh against ReLU
    (and why that contradicts the tutorial's advice only at first sight), the spectral radius of $W$, GRU and
    LSTM, the error and the training cost of truncated BPTT (both definitions, and the tutorial's Theano graph,
    which truncates $V$ too), and exploding gradients with clipping.

    Everything is float64 NumPy on the reference models (`rnnlm.models.reference`); `rnnlm analyze gradients
    CKPT` runs the same measurements on a trained checkpoint.  About 40 seconds on two CPU cores.
    """),
    code(SETUP + SHOW + """
from rnnlm import analysis as A
from rnnlm.data.datasets import DataWarning
from rnnlm.models.reference import GatedRNNNumpy, RNNNumpy, init_params

warnings.filterwarnings("ignore", category=DataWarning)  # notebook 02 shows it: the reddit sample stands in
warnings.filterwarnings("ignore", message=".*cut off inside a quoted field")
"""),
    md(r"""
    ## BPTT, derived

    The tutorial's setting: $s_t = \tanh(U x_t + W s_{t-1})$, $\hat y_t = \mathrm{softmax}(V s_t)$, and the loss of
    a sentence is the sum of the per-step cross-entropies $E_t = -y_t \log \hat y_t$ ($y_t$ one-hot).  Take $E_3$,
    the loss at step 3.  Its gradient with respect to $V$ involves step 3 only:

    $$\frac{\partial E_3}{\partial V} = (\hat y_3 - y_3) \otimes s_3 .$$

    $W$ is different: $s_3 = \tanh(U x_3 + W s_2)$ depends on $W$ directly *and* through $s_2$, which depends on
    $W$ and $s_1$, and so on back to the start.  The chain rule sums over every path:

    $$\frac{\partial E_3}{\partial W} = \sum_{k=0}^{3} \frac{\partial E_3}{\partial \hat y_3}
    \frac{\partial \hat y_3}{\partial s_3} \frac{\partial s_3}{\partial s_k} \frac{\partial s_k}{\partial W},
    \qquad \frac{\partial s_3}{\partial s_k} = \prod_{j=k+1}^{3} \frac{\partial s_j}{\partial s_{j-1}},
    \qquad \frac{\partial s_j}{\partial s_{j-1}} = \mathrm{diag}(1 - s_j^2)\, W,$$

    where $\partial s_k/\partial W$ is the *immediate* dependence ($s_{k-1}$ held fixed): $\partial s_k[i] /
    \partial W[i, j] = (1 - s_k[i]^2)\, s_{k-1}[j]$.  $U$ is the same with $x_k$ in place of $s_{k-1}$.  The sum is
    backpropagation through time: the error of step 3 travels back through the unrolled network, one Jacobian
    per step, and every step it passes adds its share to the gradient.

    Below, the sum is computed term by term for $E_3$ of a real four-word prefix, and compared with
    `RNNNumpy.bptt` — which returns the gradient of $E_0 + \dots + E_3$, so $\partial E_3/\partial W$ is the
    difference of two calls (the first three losses do not depend on the fourth word).
    """),
    code(r"""
corpus = rnnlm.prepare("reddit", vocab_size=2000)
C = len(corpus.vocab)
pairs = A.select_sentences(corpus.sentences, n=30, min_len=10, max_len=40, seed=0)
x, y = pairs[0][0][:4], pairs[0][1][:4]
print("prefix:", corpus.decode(x), "-> targets", corpus.decode(y))

H = 8
ref = RNNNumpy(C, hidden_dim=H, bptt_truncate=-1, seed=0)  # full BPTT
yhat, s = ref.forward_propagation(x)  # s[-1] = s_{-1} = 0
dE3_do = yhat[3] - np.eye(C)[y[3]]  # ∂E_3/∂(V s_3): softmax + cross-entropy
dE3_ds3 = ref.V.T @ dE3_do
J = np.eye(H)  # ∂s_3/∂s_k, starting at k = 3
terms = {}
for k in (3, 2, 1, 0):
    dE3_dz = (J.T @ dE3_ds3) * (1 - s[k] ** 2)  # through tanh at step k
    terms[k] = np.outer(dE3_dz, s[k - 1])  # × ∂s_k/∂W (immediate)
    J = J @ np.diag(1 - s[k] ** 2) @ ref.W  # ∂s_3/∂s_{k-1} = ∂s_3/∂s_k · diag(1 - s_k²) W
by_formula = sum(terms.values())
by_bptt = ref.bptt(x, y)[2] - ref.bptt(x[:3], y[:3])[2]
print("‖term k‖ for k = 3, 2, 1, 0:", "  ".join(f"{np.linalg.norm(t):.2e}" for t in terms.values()),
      " (k = 0 is zero: s_{-1} = 0)")
print(f"∂E_3/∂W by the sum: max |difference from bptt| / max |bptt| = "
      f"{np.abs(by_formula - by_bptt).max() / np.abs(by_bptt).max():.1e}")
"""),
    md(r"""
    The terms already shrink going back.  `bptt` computes the same sum for every $E_t$ at once, backwards: the
    error at step $t$ becomes $\delta_t = \partial E_t / \partial z_t$, each step back multiplies it by
    $W^\top$ and $\mathrm{diag}(1 - s^2)$, and every step adds $\delta\, s_{k-1}^\top$ to $\partial L/\partial W$
    and $\delta$ to the column $x_k$ of $\partial L/\partial U$.  The tutorial's loop (the `truncation ==
    "tutorial"` branch) is this with the walk back cut after `bptt_truncate` steps:
    """),
    code(r"""
show(RNNNumpy, "bptt")
"""),
    md(r"""
    ## Why the gradient vanishes

    Each step back multiplies by $\partial s_j/\partial s_{j-1} = \mathrm{diag}(f'(a_j))\,W$.  The derivatives of
    the tutorial's nonlinearities are small: $\tanh' = 1 - \tanh^2$ is at most 1 (only at 0) and the sigmoid's
    $\sigma' = \sigma(1 - \sigma)$ at most $1/4$.  Both go to 0 when the unit saturates, and with small weights
    $\lVert W \rVert < 1$ as well, the product of $t - k$ such factors goes to zero geometrically.  ReLU, which
    the tutorial suggests, has derivative exactly 1 for a positive input — and 0 for a negative one.
    """),
    code(r"""
a = np.linspace(-5, 5, 401)
sig = 1 / (1 + np.exp(-a))
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.4))
left.plot(a, np.tanh(a), label="tanh"); left.plot(a, sig, label="sigmoid"); left.plot(a, np.maximum(a, 0), label="ReLU")
left.set_ylim(-1.2, 2.2); left.set_title("the nonlinearities"); left.legend(); left.grid(alpha=0.3)
right.plot(a, 1 - np.tanh(a) ** 2, label="tanh′ = 1 − tanh², max 1")
right.plot(a, sig * (1 - sig), label="sigmoid′ = σ(1 − σ), max 1/4")
right.plot(a, (a > 0).astype(float), label="ReLU′: 0 or 1", ls="--")
right.set_title("their derivatives: factors of every step back"); right.legend(fontsize=8); right.grid(alpha=0.3)
fig.tight_layout(); plt.show()
"""),
    md(r"""
    ## Gradient norms against distance

    Now measured: thirty sentences of 10–40 tokens from the reddit sample, a vocabulary of 2,000 words, and a
    fresh tanh RNN with the tutorial's initialisation ($H = 100$, weights uniform in $\pm 1/\sqrt{n}$).  For every
    sentence and every pair $k \le t$, `gradient_norms` computes $\lVert\partial L_t/\partial s_k\rVert$ and the
    Jacobian norm $\lVert\partial s_t/\partial s_k\rVert$, then averages them by distance $d = t - k$ and fits a
    decay factor per step (the slope of the log-norm against $d$).
    """),
    code(r"""
print(f"{len(pairs)} sentences, {sum(len(x) for x, _ in pairs)} tokens, vocabulary {C}")
tanh = A.fresh_model("rnn", vocab_size=C, hidden_dim=100, seed=0)
g = A.gradient_norms(tanh, pairs)
decay = g["decay"]["loss_grad"]
print(f"spectral radius of W: {A.spectral_radius(tanh.params['W0'][0]):.3f}")
print(f"‖∂L_t/∂s_k‖ shrinks by a factor {decay['factor']:.3f} per step back (half-life {decay['half_life']:.2f} steps, "
      f"r² {decay['r2']:.2f})")
print("geometric mean by distance d = 0..10:", g["loss_grad"]["geomean"][:11])
"""),
    md(r"""
    The heat map shows the same numbers per position: row $t$ is the loss at step $t$, column $k$ the state it
    is differentiated by.  The mass sits on the diagonal — each loss depends strongly on the last few states only.
    """),
    code(r"""
A.plot_heatmap({"rnn tanh (fresh)": g}, max_len=30)
"""),
    md(r"""
    ## tanh vs ReLU, the spectral radius of W, GRU and LSTM

    The same measurement for a ReLU RNN, for tanh RNNs whose $W$ is rescaled to a spectral radius of 1.0 and
    1.5, and for fresh GRU and LSTM cells (their state Jacobian includes the gates; for the LSTM the state is
    the pair $(h_t, c_t)$).
    """),
    code(r"""
specs = {
    "rnn tanh": dict(cell="rnn"),
    "rnn relu": dict(cell="rnn", activation="relu"),
    "rnn tanh, radius 1.0": dict(cell="rnn", radius=1.0),
    "rnn tanh, radius 1.5": dict(cell="rnn", radius=1.5),
    "gru": dict(cell="gru"),
    "lstm": dict(cell="lstm"),
}
results = {"rnn tanh": g}
for name, kw in specs.items():
    if name not in results:
        results[name] = A.gradient_norms(A.fresh_model(vocab_size=C, hidden_dim=100, seed=0, **kw), pairs)

print(f"{'model':<22}{'radius W':>9}{'decay/step':>11}{'half-life':>10}{'r²':>6}   ‖∂L_t/∂s_k‖ at d = 0, 5, 10")
for name, r in results.items():
    fit = r["decay"]["loss_grad"]
    radius = max(max(v["radius"]) for v in r["recurrent"].values())
    half = f"{fit['half_life']:.2f}" if fit["half_life"] else "—"
    at = ", ".join(f"{r['loss_grad']['geomean'][d]:.2e}" for d in (0, 5, 10))
    print(f"{name:<22}{radius:>9.3f}{fit['factor']:>11.3f}{half:>10}{fit['r2']:>6.2f}   {at}")
"""),
    code(r"""
A.plot_decay(results)
"""),
    code(r"""
A.plot_heatmap({k: results[k] for k in ("rnn relu", "rnn tanh, radius 1.5", "gru")}, max_len=30)
"""),
    md(r"""
    The fresh tanh RNN forgets fast: each step back multiplies the gradient by about 0.6.  Rescaling $W$ to
    radius 1 makes the decay slow, and above 1 the gradient *grows* going back in time (the heat map of the
    radius-1.5 model is brightest far from the diagonal).  A fresh GRU decays like the tanh RNN — at
    initialisation its gates sit near 0.5 — while the LSTM's cell state $c_t$, carried forward through the forget
    gate alone (whose bias starts at 1), keeps about 0.86 per step.  What the gates add is the *ability* to learn
    a Jacobian near the identity (an update gate $z \to 1$ copies the state forward unchanged), which training
    has to discover; notebook 04 trains them.

    ## ReLU: forgets faster here, recommended by the tutorial — both true

    The table has the fresh ReLU RNN forgetting *faster* than tanh (0.41 per step against 0.61), while the
    tutorial recommends ReLU against vanishing gradients.  The two statements are about different regimes, and
    the factor $\mathrm{diag}(f'(a))\,W$ separates them:

    - **tanh′ is about 1 here.**  With the tutorial's initialisation the pre-activations are tiny ($U$ is
      uniform in $\pm 1/\sqrt{C} = \pm 0.022$), and $\tanh'(a) \approx 1$ near 0, so the tanh factor is almost
      $W$ alone: the decay, 0.61, is $W$'s doing (spectral radius 0.65).  Saturation — the tutorial's worry —
      comes with training, when activations grow.
    - **ReLU zeroes about half of the units.**  A unit with a negative input has derivative 0, so each step back
      multiplies by $W$ with about half of its rows zeroed: less than tanh's $W$.
    - **The tutorial's advice comes with an initialisation.**  ReLU helps when the active units can pass the
      gradient on unchanged, i.e. with $W$ near the identity: the IRNN of Le, Jaitly and Hinton (2015), which
      the tutorial cites, initialises $W = I$.  Then active units multiply the gradient by exactly 1.

    Measured on the same sentences — the average derivative $f'(a)$ over every unit and step, the share of units
    at zero derivative, and the decay per step, with the tutorial's $W$ and with $W = I$:
    """),
    code(r"""
def derivative_stats(model):
    values = []
    for x, _ in pairs:
        _, cache = model.forward(x)
        act = cache["layers"][0]["act"][:, 0]  # (T, H): f(a_t)
        values.append(1 - act ** 2 if model.activation == "tanh" else (act > 0).astype(float))
    v = np.concatenate(values)
    return v.mean(), (v < 1e-3).mean()


print(f"{'model':<32}{'mean f′(a)':>11}{'f′ = 0':>8}{'decay/step':>12}")
for activation in ("tanh", "relu"):
    for init in ("tutorial", "identity"):
        params = init_params("rnn", C, 100, seed=0)
        if init == "identity":
            params["W0"] = np.eye(100)[None]
        model = GatedRNNNumpy("rnn", C, 100, activation=activation, params=params)
        mean, zero = derivative_stats(model)
        factor = A.gradient_norms(model, pairs)["decay"]["loss_grad"]["factor"]
        print(f"{activation + ', W ' + ('= I' if init == 'identity' else 'uniform ±1/√H'):<32}"
              f"{mean:>11.3f}{zero:>8.0%}{factor:>12.3f}")
"""),
    md(r"""
    With the tutorial's $W$, tanh′ averages almost exactly 1 and about half of the ReLU units sit at zero
    derivative: ReLU loses.  With $W = I$ both keep nearly all of the gradient per step; ReLU keeps 1 for every
    active unit however large its input, where tanh would saturate once trained.  So the tutorial's ReLU advice
    holds with the identity initialisation it links to, not with its own $\pm 1/\sqrt{n}$ one.  (An unbounded ReLU
    with a large $W$ can also explode: see the last section.)

    ## Truncated BPTT

    The tutorial truncates the backward pass after `bptt_truncate` steps.  Two definitions exist, and
    `RNNNumpy.bptt` implements both: the blog post's loop carries each output's error back $k$ steps
    (`truncation="tutorial"`), while Theano/PyTensor's `scan(truncate_gradient=k)` runs the backward recursion
    over the last $k$ steps of the sentence only (`truncation="scan"`), so it drops the recurrent gradient of
    every earlier step altogether.  `truncation_error` measures $\lVert g_k - g\rVert / \lVert g\rVert$ for
    the gradient $g$ of $U$ and $W$ against full BPTT.  `truncation_training` then trains with each setting —
    per-sentence SGD at the tutorial's 0.005, $H = 32$, 600 training sentences, **8 epochs** — from the same
    weights in the same order, and scores 150 held-out sentences after every epoch; the dotted line is an
    add-one unigram of the same training sentences, the loss of a model that has learned only word frequencies.
    """),
    code(r"""
short = A.select_sentences(corpus.sentences, n=20, min_len=5, max_len=30, seed=0)
ks = list(range(0, 13)) + [16, 20, 24, 30]
fresh32 = A.fresh_model("rnn", vocab_size=C, hidden_dim=32, seed=0)
errors = {"fresh": A.truncation_error(fresh32, short, truncations=ks)}

everything = A.select_sentences(corpus.sentences, min_len=2)
order = np.random.default_rng(0).permutation(len(everything))
valid = [everything[j] for j in order[:150]]
train = [everything[j] for j in order[150:750]]
t0 = time.perf_counter()
training = A.truncation_training(train, valid, C, hidden_dim=32, truncations=(1, 4, -1), epochs=8)
seconds = time.perf_counter() - t0
errors["trained (full BPTT run)"] = A.truncation_error(training["models"][("full", -1)], short, truncations=ks)

counts = np.bincount(np.concatenate([y for _, y in train]), minlength=C) + 1.0  # add-one unigram
unigram_loss = -np.mean(np.log(counts / counts.sum())[np.concatenate([y for _, y in valid])])

for name, e in errors.items():
    for mode, d in e["modes"].items():
        cells = "  ".join(f"k={k}: {d['mean'][ks.index(k)]:.3f}" for k in (1, 2, 4, 8))
        print(f"{name:<24}{mode:<10}{cells}")
print(f"\nvalidation loss (nats/word) after epochs 0..{training['epochs']} ({seconds:.0f} s for all runs); "
      f"unigram {unigram_loss:.3f}")
for run in training["runs"]:
    label = "full BPTT" if run["truncation"] == "full" else f"{run['truncation']}, k = {run['bptt_truncate']}"
    print(f"{label:<16}" + " ".join(f"{v:.3f}" for v in run["valid_loss"]))
"""),
    code(r"""
fig = A.plot_truncation(errors, training)
fig.axes[1].axhline(unigram_loss, color="0.5", ls=":", lw=1, label="add-one unigram")
fig.axes[1].set_ylim(unigram_loss - 0.5, unigram_loss + 1.5)
fig.axes[1].legend(fontsize=7)
fig
"""),
    md(r"""
    The tutorial's truncation at $k = 4$ keeps all but about 5% of the gradient of these models, whose memory is
    a step or two, and over eight epochs it trains as well as full BPTT — even $k = 1$ stays within a few
    hundredths.  All of them pass the unigram after the first epochs and keep improving: they are learning to
    use context, not just frequencies.  The `scan` definition is much harsher on sentences longer than $k$: only
    the last $k$ steps of each sentence update $U$ and $W$, so most of the gradient is lost; $k = 4$ trails the
    others and $k = 1$ barely learns.  (The error is not always monotone in $k$ — contributions from different
    distances can cancel — so the left plot also shows a bound that never grows.)

    **The tutorial's Theano graph truncates $V$ too.**  In `RNNTheano` the output $o_t = \mathrm{softmax}(V s_t)$
    is computed *inside* the `scan` step, so `truncate_gradient=k` cuts $V$'s gradient as well: $V$ learns from
    the last $k$ outputs of each sentence only, where the blog's NumPy `bptt` (and the derivation above) uses
    every step.  `rnnlm.RNN(fast=False)` keeps that graph; the default `fast=True` computes the outputs after the
    scan.  Their gradients against full BPTT on one sentence of 20 words or more, $k = 4$:
    """),
    code(r"""
x, y = next((x, y) for x, y in short if len(x) >= 20)
ref = RNNNumpy(C, hidden_dim=32, bptt_truncate=4, seed=0)
full = dict(zip("UVW", ref.bptt(x, y, bptt_truncate=-1)))
print(f"a {len(x)}-word sentence, bptt_truncate=4: ‖g − g_full‖ / ‖g_full‖")
for label, fast in (("RNN(fast=True)", True), ("RNN(fast=False), the tutorial's graph", False)):
    graph = rnnlm.RNN(C, hidden_dim=32, bptt_truncate=4, params=ref.params, fast=fast)
    grads = dict(zip("UVW", graph.bptt(np.asarray(x, "int32"), np.asarray(y, "int32"))))
    print(f"   {label:<40}" + "  ".join(
        f"{n}: {np.linalg.norm(grads[n] - full[n]) / np.linalg.norm(full[n]):.3f}" for n in "UVW"))
"""),
    md(r"""
    $U$ and $W$ lose the same share in both graphs (scan's truncation); $V$'s gradient is exact in the fast
    graph and loses about as much as $U$ and $W$ in the tutorial's.  `LanguageModel` and `rnnlm train` default to
    full BPTT (`bptt_truncate=-1`), where the question does not arise.

    ## Exploding gradients and clipping

    The opposite failure: with $W$ rescaled to a spectral radius above 1 the product of Jacobians can grow with
    distance and the gradient norm explodes.  `exploding_gradients` measures the global gradient norm of each
    sentence's loss per radius, without and with clipping to norm 5 (the rule `rnnlm.training.optim` applies),
    and one pass of per-sentence SGD with each.
    """),
    code(r"""
pairs50 = A.select_sentences(corpus.sentences, n=30, min_len=10, max_len=40, seed=0)
expl = {a: A.exploding_gradients(A.fresh_model("rnn", vocab_size=C, hidden_dim=50, activation=a, seed=0), pairs50,
                                 radii=(0.5, 1.0, 1.5, 2.0, 3.0, 4.0), clip=5.0)
        for a in ("tanh", "relu")}
for a, e in expl.items():
    print(f"rnn {a}")
    for row in e["rows"]:
        sgd = row["sgd"]
        after = {k: ("diverged" if v["after"] is None else f"{v['after']:.4g}") for k, v in sgd.items()}
        print(f"   radius {row['radius']:.1f}: median ‖∂L/∂θ‖ {row['norm']['median']:9.3g}, "
              f"decay/step {row['decay']['factor']:.3f} | loss before {sgd['clip']['before']:9.4g}, "
              f"after SGD: no clip {after['no_clip']:>8}, clipped {after['clip']:>9}")
"""),
    code(r"""
A.plot_exploding({f"rnn {a}": e for a, e in expl.items()})
"""),
    md(r"""
    Above radius 1 the decay factor exceeds 1 and the gradient norm grows by orders of magnitude.  With tanh
    the states stay in $(-1, 1)$, so the loss itself stays finite and one pass of unclipped SGD at the
    tutorial's learning rate still lowers it here (while clipping to norm 5 makes the steps so small that the
    loss barely moves in one pass).  With ReLU nothing bounds the states: from radius 2 on unclipped SGD
    diverges to inf/NaN, and at radius 3–4 even the untrained model's loss is astronomically large — clipping
    keeps every step, and so the weights, finite, but it cannot repair a forward pass that explodes.  That is
    why `rnnlm train` clips the global gradient norm at 5 by default (`TrainConfig(clip=5.0)`).

    **Next:** [04 · GRU and LSTM](04-gru-and-lstm.ipynb).
    """),
]

# ------------------------------------------------------------------------------------------------
# 04 — GRU and LSTM
# ------------------------------------------------------------------------------------------------
NB04 = [
    md(r"""
    # 4 · GRU and LSTM

    Part 4 of the tutorial replaces the vanilla cell with gated ones, adds a word embedding and trains with
    RMSProp.  This notebook writes out the GRU and LSTM cells with the library's code beside the equations and
    explains what the gates do; checks the hand-derived gradients; explains embeddings and RMSProp; trains part
    4's model *as its code builds it*, saying exactly where rnnlm departs; compares the vanilla RNN, the GRU and
    the LSTM at an equal time budget (learning curves and sentences from each); and ends with the bidirectional
    fill-in-the-blank model from part 1's taxonomy.

    Runs are seconds long, not the tutorial's hours on a GPU, on the 211-comment reddit sample (notebook 02): the
    losses fall and the models can be compared, but the sentences stay rough.  About a minute and a half on two
    CPU cores.
    """),
    code(SETUP + SHOW + """
from rnnlm import TrainConfig
from rnnlm import analysis as A
from rnnlm.data.datasets import DataWarning
from rnnlm.experiments import PART4, masked_word_accuracy, reproduce_part4
from rnnlm.inference import fill
from rnnlm.models.cells import make_step
from rnnlm.models.lm import LanguageModel, ModelConfig, param_shapes
from rnnlm.models.reference import GATE_NAMES, GatedRNNNumpy
from rnnlm.training.optim import RMSProp
from rnnlm.training.trainer import Trainer

warnings.filterwarnings("ignore", category=DataWarning)  # notebook 02 shows it: the reddit sample stands in
warnings.filterwarnings("ignore", message=".*cut off inside a quoted field")
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm's notebook bar needs ipywidgets; unused here
"""),
    md(r"""
    ## The cells

    **GRU** (part 4), with update gate $z$, reset gate $r$ and candidate state $c$:

    $$z = \sigma(U_z x_t + W_z s_{t-1} + b_z),\quad r = \sigma(U_r x_t + W_r s_{t-1} + b_r),$$
    $$c = \tanh\big(U_c x_t + W_c (s_{t-1} \odot r) + b_c\big),\quad s_t = (1 - z) \odot c + z \odot s_{t-1}.$$

    **LSTM**, with input, forget and output gates and a cell state $c_t$:

    $$i, f, o = \sigma(U_{i,f,o} x_t + W_{i,f,o} h_{t-1} + b_{i,f,o}),\quad g = \tanh(U_g x_t + W_g h_{t-1} + b_g),$$
    $$c_t = f \odot c_{t-1} + i \odot g,\quad h_t = o \odot \tanh(c_t).$$

    $\sigma$ is the sigmoid or, as in the tutorial's code, `hard_sigmoid` $= \mathrm{clip}(0.2a + 0.5, 0, 1)$.

    **What the gates are for.**  A gate is a vector of numbers in $(0, 1)$, computed from the input and the
    previous state, that multiplies another vector elementwise: a soft switch per unit.

    - The GRU's **update gate** $z$ decides, per unit, how much of the old state to keep: $z \approx 1$ copies
      $s_{t-1}$ forward unchanged (the unit *remembers*), $z \approx 0$ replaces it with the candidate (the unit
      *rewrites*).  Its **reset gate** $r$ decides how much of the old state the candidate may look at:
      $r \approx 0$ computes the candidate from the current word alone, a fresh start.
    - The LSTM separates memory from output: the cell $c_t$ is written through the **input gate** $i$, kept
      through the **forget gate** $f$, and read out through the **output gate** $o$.

    This is what notebook 03's vanishing gradient needed.  Backpropagating through $s_t = (1-z) \odot c + z \odot
    s_{t-1}$ gives $\partial s_t/\partial s_{t-1} = \mathrm{diag}(z) + \dots$, and through $c_t = f \odot c_{t-1} +
    \dots$ gives $\mathrm{diag}(f)$: an *additive* path on which a gate near 1 passes the gradient back unchanged,
    where the vanilla RNN always multiplies by $\mathrm{diag}(\tanh')\,W$.  How much of a signal written at step 0
    survives $d$ steps on that path:
    """),
    code(r"""
d = np.arange(0, 31)
fig, ax = plt.subplots(figsize=(6.5, 3.4))
for z in (0.5, 0.9, 0.99):
    ax.semilogy(d, z ** d, label=f"gate {z}: kept $z^d$")
ax.semilogy(d, 0.613 ** d, "k--", label="fresh tanh RNN: 0.613 per step (notebook 03)")
ax.set_xlabel("steps d"); ax.set_ylabel("share kept (log scale)"); ax.set_ylim(1e-6, 1.5)
ax.set_title("memory along the gated path"); ax.legend(fontsize=8); fig.tight_layout(); plt.show()
"""),
    md(r"""
    The code.  The graph models build one step function for `scan` per cell (the input projections of all steps
    are computed before the loop, so only the recurrent product is inside); the NumPy reference writes the same
    step out with its cache for the hand-derived backward pass.  The gates are stacked on the first axis of each
    layer's `U`, `W`, `b`, in the order `GATE_NAMES` gives.
    """),
    code(r"""
show(make_step)
"""),
    code(r"""
show(GatedRNNNumpy, "layer_forward")
print(GATE_NAMES)
"""),
    md(r"""
    ## Gradient checks

    `GatedRNNNumpy` has a hand-derived backward pass for every cell; `gradient_check` compares it with central
    finite differences (the largest relative error per parameter).  Then the graph model — the same weights in
    a `LanguageModel`, gradients by automatic differentiation through `scan`, float32 — is compared with the
    reference's float64 gradients.  Tiny sizes: vocabulary 12, embedding 4, hidden 6, two layers, 7 words.
    """),
    code(r"""
rng = np.random.default_rng(0)
x, y = rng.integers(0, 12, 7), rng.integers(0, 12, 7)
mask = np.ones((7, 1), np.float32)
for cell, gate in (("gru", "hard_sigmoid"), ("lstm", "sigmoid")):
    ref = GatedRNNNumpy(cell, 12, 6, embedding_dim=4, layers=2, gate=gate, seed=1)
    fd = ref.gradient_check(x, y)
    cfg = ModelConfig(vocab_size=12, hidden_dim=6, cell=cell, layers=2, embedding_dim=4, gate=gate)
    graph = LanguageModel(cfg, params=ref.params, linker=engine.default_linker())
    auto = graph.gradients(x[:, None], y[:, None], mask)
    exact = ref.bptt(x, y)
    rel = {k: float(np.abs(auto[k] - exact[k]).max() / np.abs(exact[k]).max()) for k in exact}
    print(f"{cell} ({gate}): loss graph {auto['loss_sum']:.6f} vs reference {ref.loss(x, y):.6f}")
    print(f"   finite differences vs hand-written BPTT, worst parameter: {max(fd, key=fd.get)} {max(fd.values()):.1e}")
    print(f"   graph autodiff (float32) vs hand-written BPTT, worst parameter: {max(rel, key=rel.get)} {max(rel.values()):.1e}")
"""),
    md(r"""
    ## Word embeddings

    Parts 2 and 3 fed the network one-hot words, so $U x_t$ was a column of $U$: every gate of the first layer had
    its own $H \times C$ block.  Part 4 first maps the word to a dense vector, $x_e = E[:, x_t]$ — the column of
    an embedding matrix $E$ (D×C) — and the gates read $x_e$ through $U$ blocks of only $H \times D$.  The columns
    of $E$ are learned like any weight; words used in similar contexts end up with similar vectors, so what the
    model learns about one word carries over to its neighbours (and pretrained vectors, such as the GloVe
    vectors part 4 mentions, could be loaded into $E$).  The parameter count of part 4's first layer, by input:
    """),
    code(r"""
for D, what in ((0, "one-hot (parts 2-3)"), (48, "embedding 48 (part 4's text)"), (128, "embedding 128 (part 4's code)")):
    shapes = param_shapes(ModelConfig(vocab_size=2000, hidden_dim=128, cell="gru", embedding_dim=D))
    first = {k: v for k, v in shapes.items() if k in ("E", "U0")}
    n = sum(int(np.prod(s)) for s in first.values())
    print(f"{what:<32}{n:>10,} parameters   {first}")
"""),
    md(r"""
    ## RMSProp

    Plain SGD takes the same step size for every parameter.  In a language model the gradients of different
    parameters differ by orders of magnitude: a frequent word's embedding column gets a gradient at almost every
    step, a rare word's now and then.  RMSProp keeps a running average of each parameter's squared gradient and
    divides the step by its square root, so every parameter moves at about the learning rate per step, whatever
    the scale of its gradient:

    $$m \leftarrow \rho\, m + (1 - \rho)\, g^2,\qquad \theta \leftarrow \theta - \eta\, \frac{g}{\sqrt{m + \epsilon}},$$

    with part 4's $\rho = 0.9$, $\epsilon = 10^{-6}$, $\eta = 0.001$ — the code's update, written once for every
    parameter of any model:
    """),
    code(r"""
show(RMSProp)
"""),
    md(r"""
    ## Part 4's model, as its code builds it

    The tutorial's `GRUTheano` (the code behind part 4): two GRU layers with `hard_sigmoid` gates and the reset
    gate applied to $s_{t-1}$ before $W_c$, hidden 128, output bias, full BPTT, one sentence per RMSProp step
    (decay 0.9, $\epsilon = 10^{-6}$, lr 0.001, no clipping), vocabulary 2,000, sentences containing "http"
    dropped.  Its embedding is `E = np.random.uniform(..., (hidden_dim, word_dim))`: **128 × 2,000, the hidden
    size** — the post's text says 48, and `train.py` defines `EMBEDDING_DIM = 48` but never passes it.  rnnlm's
    `PART4` settings (and `rnnlm experiment part4`) follow the text's 48; here we follow the code and pass
    `embedding=128`.  Where rnnlm still departs from `GRUTheano`:

    - **initialisation of $E$**: uniform in $\pm\sqrt{3/D}$ (word vectors of norm about 1) instead of
      $\pm 1/\sqrt{C}$; $U$, $W$, $V$ are the code's $\pm 1/\sqrt{H}$ and the biases zero;
    - **layout**: the gates of each layer are stacked in `U0` (3, H, D), `U1` (3, H, H), … where the code has one
      `U` (6, H, H) for both layers — the same numbers;
    - **lengths**: sentences are padded (with a mask: padding adds nothing to the loss) to one length, 32 tokens,
      and the few longer ones are cut into pieces, so the JAX linker compiles one training function; the order of
      the sentences is shuffled each epoch;
    - **data**: the reddit sample, where the code read `data/reddit-comments-2015.csv`, a larger file;
    - **time**: 10 seconds of training steps (compilation and evaluation not counted), where the tutorial trained
      for hours on a GPU; the loss is measured on 64 training sentences, as the code's `calculate_loss` measures
      training data.
    """),
    code(r"""
print("rnnlm's PART4 settings:", PART4)
reddit = rnnlm.prepare("reddit", vocab_size=PART4["vocab_size"], drop_containing=PART4["drop_containing"])
print(f"{len(reddit)} sentences ({reddit.stats['dropped_sentences']} dropped for 'http'), vocabulary {len(reddit.vocab)}")
r = reproduce_part4(time_budget=10, corpus=reddit, embedding=128, max_length=32, buckets=(32,), eval_sentences=64,
                    evaluations=4, n_sentences=5, max_words=20, seed=0)
print("model:", {k: r["config"][k] for k in ("cell", "layers", "embedding_dim", "hidden_dim", "gate", "parameters")})
t = r["timing"]
print(f"{t['steps']} steps ({t['epochs']} epochs) in {t['train_s']} s of training, "
      f"{t['ms_per_step']} ms per step (median), compilation {t['compile_s']} s")
for point in r["losses"]:
    print(f"   step {point['step']:5d}  {point['train_s']:6.1f} s  loss {point['loss']:.4f}")
print("\ngenerated:")
for sentence in r["sentences"]:
    print("  ", sentence or "(empty: SENTENCE_END was drawn first)")

fig, ax = plt.subplots(figsize=(6, 3.4))
ax.plot([p["train_s"] for p in r["losses"]], [p["loss"] for p in r["losses"]], "o-")
ax.axhline(r["uniform_loss"], color="0.6", ls=":", label=f"ln C = {r['uniform_loss']:.2f}")
ax.set_xlabel("training seconds"); ax.set_ylabel("loss on 64 training sentences (nats/word)")
ax.set_title("part 4's GRU (embedding 128), RMSProp, one sentence per step"); ax.legend(); fig.tight_layout(); plt.show()
"""),
    md(r"""
    Ten seconds is about half an epoch of this small corpus: the loss has left $\ln C$ but the model has not yet
    learned much more than word frequencies.  One sentence per step is also slow on a CPU; the comparison below
    trains with rnnlm's defaults instead.

    ## RNN, GRU and LSTM at an equal time budget

    Which cell learns most from the same few seconds?  `rnnlm.train` (what `rnnlm train` runs) trains each cell
    with the same settings — one layer, hidden 128, embedding 128, Adam with rnnlm's default rate and a cosine
    schedule over the budget, batches of 32 sentences, full BPTT — for **12 seconds of training each** on the same
    split of the sample (validation included in the 12 s; compilation before the clock), and scores the validation
    split every second.  The dashed lines are the baselines `rnnlm train` fits on the same training split: an
    interpolated Kneser–Ney trigram and an add-one unigram.
    """),
    code(r"""
BUDGET = 12.0
corpus = rnnlm.prepare("reddit", vocab_size=2000)
cells = {}
for cell in ("rnn", "gru", "lstm"):
    t0 = time.perf_counter()
    result = rnnlm.train(corpus, None, model={"cell": cell, "hidden_dim": 128, "embedding_dim": 128},
                         size="default", config=TrainConfig(time_budget=BUDGET, valid_every_s=1.0, patience=0), progress=False)
    cells[cell] = result
    s = result.summary()
    print(f"{cell:>4}: {result.model.n_parameters():,} parameters, {s['steps']} steps ({s['epochs']} epochs) in "
          f"{s['elapsed_s']:.1f} s; best validation perplexity {s['best_valid_perplexity']:.1f} "
          f"({time.perf_counter() - t0:.0f} s with compilation and scoring)")
base = cells["rnn"].summary()["baselines"]["valid"]
print(f"baselines on the same validation split: KN-3 {base['kn']:.1f}, unigram {base['unigram']:.1f}")

fig, ax = plt.subplots(figsize=(7, 3.8))
for cell, result in cells.items():
    curve = [(h["elapsed"], h["valid_ppl"]) for h in result.state["history"] if h.get("event") == "valid"]
    ax.plot(*zip(*curve), ".-", label=cell)
ax.axhline(base["kn"], color="0.3", ls="--", lw=1, label="Kneser–Ney trigram")
ax.axhline(base["unigram"], color="0.6", ls="--", lw=1, label="unigram")
ax.set_yscale("log"); ax.set_xlabel("training seconds"); ax.set_ylabel("validation perplexity (log scale)")
ax.set_title(f"equal time budget ({BUDGET:.0f} s each), same data and settings"); ax.legend(); fig.tight_layout()
plt.show()

for cell, result in cells.items():
    print(f"\n{cell}:")
    for g in rnnlm.generate(result.model, result.corpus.vocab, n=3, seed=0, min_length=5, max_length=25):
        print(f"   {g.text}{'' if g.ended else ' …'}")
"""),
    md(r"""
    An equal time is not an equal number of updates.  A GRU step computes three gate blocks and an LSTM step four,
    against the vanilla RNN's one, so in the same seconds the RNN makes the most updates and the LSTM the fewest
    (the steps above).  Early in training updates matter more than memory: the RNN's curve falls fastest, then
    flattens and creeps back up as it starts to overfit.  The GRU catches up within the budget and ends level with
    it or below; the LSTM, with the fewest updates, is still closing the gap (raise `BUDGET` and rerun).  On
    this sample — 21,000 training tokens of short reddit sentences — all three end near the Kneser–Ney trigram:
    there is too little text for any of them to pull far ahead of counting (notebook 02's point), and too little
    long-range structure for the gates' memory to pay.  The sentences are as rough as the perplexities suggest.

    **What the gates learned.**  The trained GRU's and LSTM's gate values on the validation sentences
    (`analysis.reference_model` turns a trained `LanguageModel` into the NumPy reference, whose forward pass
    keeps every gate activation):
    """),
    code(r"""
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
valid = cells["gru"].splits["valid"].sentences
for ax, (cell, gates) in zip(axes, (("gru", ("z", "r")), ("lstm", ("i", "f", "o")))):
    ref = A.reference_model(cells[cell].model)
    acts = [ref.forward(q[:-1])[1]["layers"][0]["act"] for q in valid]
    for gname in gates:
        values = np.concatenate([a[:, GATE_NAMES[cell].index(gname)].ravel() for a in acts])
        ax.hist(values, bins=40, range=(0, 1), histtype="step", lw=1.5, density=True,
                label=f"{gname}: mean {values.mean():.2f}, {np.mean(values > 0.9):.0%} above 0.9")
    ax.set_title(f"{cell} gates on {len(valid)} validation sentences"); ax.set_xlabel("gate value"); ax.legend(fontsize=8)
fig.tight_layout(); plt.show()
"""),
    md(r"""
    The gates are far from their starting point of about 0.5.  In this run most of the GRU's update-gate values
    sit near 0 — most units *rewrite* their state at every word, as there is little to carry across short
    sentences — while a minority near 1 *hold* theirs.  The LSTM learned the opposite division of labour: its
    forget and input gates stay high (the forget gate's bias starts at 1), so the cell accumulates what it reads,
    and the output gate, spread over the whole range, decides per word what of it to show.  (Timed runs differ
    a little from one execution to the next; the shapes of these histograms are what to read.)

    ## The bidirectional fill-in-the-blank model

    Part 1: "the output at time $t$ may not only depend on the previous elements in the sequence, but also
    future elements — to predict a missing word in a sequence you want to look at both the left and the
    right context."  `ModelConfig(bidirectional=True)` builds that model: a forward and a backward GRU, and the
    word at position $t$ predicted from the forward state after $w_{t-1}$ and the backward state after
    $w_{t+1}$.  It trains on whole sentences with the ordinary `Trainer` (`rnnlm train --task fill` on the
    command line).  Here: the first 8,000 lines of Shakespeare of at least four tokens, one line per sentence
    (NLTK tokenizer; 99% of them fit in 16 tokens), vocabulary 2,000, and 500 Adam steps of 32 lines (about two
    epochs).
    """),
    code(r"""
shakespeare = rnnlm.prepare("tinyshakespeare", vocab_size=2000, format="lines", tokenizer="nltk", min_length=4,
                            max_sentences=8000)
parts = shakespeare.split(valid=0.0, test=0.05, seed=0)
print(f"{len(parts['train'])} training lines, {len(parts['test'])} held out; vocabulary {len(shakespeare.vocab)}, "
      f"{shakespeare.stats['unknown_rate']:.1%} of the words unknown")
cfg = ModelConfig(vocab_size=len(shakespeare.vocab), hidden_dim=128, cell="gru", embedding_dim=64,
                  bidirectional=True)
fill_model = LanguageModel(cfg, seed=0, linker=engine.default_linker())
trainer = Trainer(fill_model, parts["train"], None,
                  TrainConfig(optimizer="adam", lr=0.005, batch_size=32, max_length=16, epochs=100, max_steps=500),
                  progress=False)
state = trainer.fit()
curve = [(h["step"], h["train_loss"]) for h in state["history"] if "train_loss" in h]
print(f"{state['global_step']} steps in {state['elapsed']:.0f} s (compilation included); "
      f"train loss {curve[0][1]:.3f} -> {curve[-1][1]:.3f} nats/word")
"""),
    md(r"""
    `fill` tokenizes a query like the training corpus, wraps it in `SENTENCE_START` … `SENTENCE_END`, and lists
    the most probable words for the blank (their probabilities under the model):
    """),
    code(r"""
for query in ("my ___ lord , i pray you .", "what is your ___ , my lord ?", "i will ___ you to the king .",
              "o , ___ me not , i pray you !"):
    guesses = fill(fill_model, shakespeare.vocab, query, top_k=5, settings=shakespeare.settings)
    print(f"{query:<30}", "  ".join(f"{w} {p:.2f}" for w, p in guesses))
"""),
    md(r"""
    Top-1 accuracy on held-out sentences, every inner word masked in turn (`masked_word_accuracy`), against the
    simplest baseline — always guessing the most frequent word:
    """),
    code(r"""
test = [s for s in parts["test"].sentences if len(s) <= 16]
acc = masked_word_accuracy(fill_model, test, shakespeare.vocab, lengths=(16,))
vocab = shakespeare.vocab
special = {vocab.start_index, vocab.end_index, vocab.unk_index}
most_frequent = next(j for j in np.argsort(vocab.counts)[::-1] if j not in special)
words = np.concatenate([s[1:-1] for s in test])
words = words[words != vocab.unk_index]
print(f"bidirectional GRU: {acc['accuracy']:.1%} of {acc['positions']} masked words in {acc['sentences']} sentences")
print(f"always '{vocab.index_to_word[most_frequent]}': {np.mean(words == most_frequent):.1%}")
"""),
    md(r"""
    Whether seeing both sides beats a left-to-right model of the same size trained for the same time is
    measured by `rnnlm experiment fill-vs-lm` (`rnnlm.experiments.fill_vs_lm`), which trains both models in
    turns under one time budget and reports both accuracies.
    """),
]


NOTEBOOKS = {
    "01-introduction-to-rnns.ipynb": NB01,
    "02-implementing-a-language-model.ipynb": NB02,
    "03-bptt-and-vanishing-gradients.ipynb": NB03,
    "04-gru-and-lstm.ipynb": NB04,
}


def main(argv) -> int:
    ROOT.mkdir(exist_ok=True)
    for name, cells in NOTEBOOKS.items():
        if argv and not any(a in name for a in argv):
            continue
        nb = new_notebook(cells=cells, metadata={"kernelspec": dict(KERNELSPEC),
                                                 "language_info": {"name": "python"}})
        nbformat.validate(nb)
        (ROOT / name).write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
        print(f"wrote {ROOT / name} ({len(cells)} cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
