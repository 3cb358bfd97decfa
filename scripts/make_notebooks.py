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

    It runs in well under a minute on two CPU cores and needs no data files.
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

    The graph model `rnnlm.models.tutorial.RNN` (the tutorial's `RNNTheano`) declares the recurrence with `scan`, as
    Theano code does.  Printing its symbolic output shows the whole story: `U` and `W` enter the `Scan` node
    **once**, as non-sequences; the inner graph (one step: `tanh(U[:, x_t] + W s_{t-1})`) reads them as its inputs
    `i2 -> U` and `i3 -> W`, and `scan` applies that one step function at every time step.  The output layer
    `V` sits outside the loop: it does not feed the recurrence, so all steps take one matrix product (the
    library's *fast* form).

    Building the graph compiles nothing; `graph(name)` returns the symbolic outputs of one of its functions
    and `engine.pprint` prints them.
    """),
    code(r"""
graph_rnn = RNN(word_dim=len(vocab), hidden_dim=3, bptt_truncate=-1, seed=0)  # same seed: the weights of `toy`
engine.pprint(graph_rnn.graph("forward_propagation"), depth=6);
"""),
    md(r"""
    The tutorial's own graph computed $o_t$ inside the loop.  `RNN(fast=False)` keeps that faithful form:
    now `V` is a third non-sequence of the `Scan` and the softmax runs once per step.
    """),
    code(r"""
faithful = RNN(word_dim=len(vocab), hidden_dim=3, bptt_truncate=-1, seed=0, fast=False)
engine.pprint(faithful.graph("forward_propagation"), depth=4);
"""),
    md(r"""
    The compiled batched model (`LanguageModel`, here on the JAX linker) gives the same numbers in two ways:
    one `scan` over the whole sentence (`distribution`), and the compiled *one-step* function called four
    times, carrying the state by hand (`step_function`, what generation uses).  Both agree with the NumPy
    reference to float32 precision — one step function with one set of weights, applied at every step.
    """),
    code(r"""
lm = graph_rnn.to_language_model(linker=engine.default_linker())
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

    **Next:** [02 · implementing a language model](02-implementing-a-language-model.ipynb) trains these
    models on real text.
    """),
]

# ------------------------------------------------------------------------------------------------
# 02 — implementing a language model
# ------------------------------------------------------------------------------------------------
NB02 = [
    md(r"""
    # 2 · Implementing a language model

    Part 2 of the tutorial, with `rnnlm`: the corpus pipeline, the NumPy model and its loss, backpropagation
    through time with a gradient check, the speed of one SGD step in NumPy and as a compiled graph (the
    tutorial's 350 ms vs 70 ms experiment, measured on this machine), training with the loss curve,
    generating sentences, and the tutorial's published trained model.

    Data: the files in `$RNNLM_DATA` (the offline copies listed in the project's design notes).  The shared
    folder holds a **212-comment sample** of the tutorial's 15,000-comment reddit file, so the numbers here are
    smaller than the blog post's; `rnnlm data download reddit` fetches the full file.  Runs in about a
    minute and a half on two CPU cores.
    """),
    code(SETUP + """
from rnnlm import bench
from rnnlm.data import datasets, prepare
from rnnlm.training.checkpoint import load_model
from rnnlm.models.tutorial import RNN
from rnnlm.models.reference import RNNNumpy
from rnnlm.inference import generate, perplexity
from rnnlm.training.tutorial import train_with_sgd
"""),
    md(r"""
    ## 1. The data

    The tutorial's pipeline: split reddit comments into sentences (NLTK Punkt), lowercase and tokenize them
    (NLTK), wrap every sentence in `SENTENCE_START` … `SENTENCE_END`, keep the 7,999 most frequent words and map
    the rest to `UNKNOWN_TOKEN`.  `prepare` does all of it and reports what it did (the warnings below say
    that the sample stands in for the full file, and that its last row is cut off mid-comment).
    """),
    code(r"""
corpus = prepare("reddit", vocab_size=8000)
stats = corpus.stats
for key in ("source", "documents", "sentence_splitter", "sentences", "tokens", "words", "unique_tokens",
            "vocab_size", "least_frequent_word", "least_frequent_count", "unknown_rate"):
    print(f"{key:>20}: {stats[key]}")
"""),
    md(r"""
    The sample has only 4,389 distinct tokens, so all of them fit in an 8,000-word vocabulary (no word is
    unknown; $C$ = 4,390 with `UNKNOWN_TOKEN`).  Training pairs are the tutorial's: `x` is a sentence without
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
    ## 2. The NumPy model

    `RNNNumpy` is the tutorial's model in float64 NumPy: $s_t = \tanh(U[:, x_t] + W s_{t-1})$,
    $o_t = \mathrm{softmax}(V s_t)$, with $U$: H×C, $V$: C×H, $W$: H×H.  Forward propagation returns one
    distribution over the vocabulary per word and the hidden states; an untrained model predicts noise.
    """),
    code(r"""
model = RNNNumpy(C, hidden_dim=100, seed=10)
o, s = model.forward_propagation(X[i])
print("o:", o.shape, "(one distribution over", C, "words per step)   s:", s.shape, "(plus the zero initial state)")
print("predicted next words:", " ".join(vocab.decode(model.predict(X[i]))))
"""),
    md(r"""
    **The loss of a random model.**  The cross-entropy loss is $L = -\frac{1}{N}\sum_n \log o_{n, y_n}$ nats per
    word.  With $C$ words and random predictions every word gets probability about $1/C$, so the loss of a
    fresh model should be close to $\ln C$ — for the tutorial's vocabulary $\ln 8000 = 8.987$.  That is a
    useful check that the model and the loss are wired correctly:
    """),
    code(r"""
loss = model.calculate_loss(X[:1000], Y[:1000])
print(f"expected loss for random predictions: ln C = ln {C} = {np.log(C):.4f}   "
      f"(the tutorial's C = 8000: {np.log(8000):.4f})")
print(f"actual loss of the fresh model on 1000 sentences: {loss:.4f}")
"""),
    md(r"""
    ## 3. Backpropagation through time, checked

    `bptt` is the tutorial's hand-written backward pass: the error of every output is carried back through
    the recurrence (truncated after `bptt_truncate` steps; part 3 looks at what truncation costs).  Its
    gradients are checked against central finite differences of the loss — the tutorial's own check, with
    its small vocabulary (100 words, 10 hidden units) to keep the $2 \cdot$(number of parameters) loss
    evaluations cheap, and `bptt_truncate=1000` so nothing is truncated:
    """),
    code(r"""
check = RNNNumpy(100, hidden_dim=10, bptt_truncate=1000, seed=10)
errors = check.gradient_check([0, 1, 2, 3], [1, 2, 3, 4], verbose=True)
assert max(errors.values()) < 1e-2
"""),
    md(r"""
    ## 4. One SGD step: NumPy against the compiled graph

    The tutorial timed one SGD step on a 45-word sentence with $C = 8000$, $H = 100$, `bptt_truncate=4`:
    **350 ms** in NumPy, **70 ms** with Theano on a CPU (23 ms on a 2015 GPU).  `rnnlm.bench.bench_sgd_step` runs
    the same experiment in this process (fewer repeats than `rnnlm bench sgd-step` to keep the notebook short):

    - `numpy` — `RNNNumpy.sgd_step`, float64, the tutorial's loop;
    - `rnn_c` — the graph model `RNN` as shipped, on PyTensor's C linker (float32);
    - `rnn_jax_static` / `rnn_jax_split` — the same graph with a static sentence length on the JAX linker, and a
      form that gathers `U[:, x]` once outside the loop and updates only the used columns of $U$.

    Timings are medians of synchronised runs.  On a shared machine the absolute numbers move with the load
    (the result says when it was busy); ratios measured in one run are comparable.
    """),
    code(r"""
result = bench.bench_sgd_step(word_dim=8000, hidden_dim=100, bptt_truncate=4, length=45, repeat=5,
                              linkers=["c", "jax"], hand_jax=False)
m = result["machine"]
print(f"{m['cpu']} ({m['cpus_usable']} usable CPUs), load average {m['load_average']}")
print(f"NumPy BLAS: {[(b['library'], b['kernel']) for b in m['blas']]}; C linker BLAS: {m['c_linker_blas']}")
if "warning" in result:
    print("note:", result["warning"])
print(f"\n{'candidate':<16}{'median ms':>10}{'min ms':>9}{'speedup':>9}{'compile s':>11}   what")
for name, c in result["candidates"].items():
    print(f"{name:<16}{c['median_ms']:>10.1f}{c['min_ms']:>9.1f}{c['speedup']:>8.1f}x{c['compile_s']:>11.1f}   {c['what']}")
for name, why in result["skipped"].items():
    print(f"{name:<16} skipped: {why}")
for name, error in result["failed"].items():
    print(f"{name:<16} FAILED: {error}")

names = list(result["candidates"])
ms = [result["candidates"][n]["median_ms"] for n in names]
fig, ax = plt.subplots(figsize=(8, 3.2))
ax.barh(names + ["tutorial: NumPy", "tutorial: Theano CPU", "tutorial: Theano GPU"], ms + [350, 70, 23],
        color=["tab:blue"] * len(names) + ["0.75"] * 3)
ax.set_xscale("log"); ax.set_xlim(1, 2 * max(ms + [350])); ax.invert_yaxis()
ax.set_xlabel("ms per SGD step (log scale)")
ax.set_title("one SGD step, C=8000, H=100, 45 words (grey: the blog post's 2015 numbers)")
fig.tight_layout(); plt.show()
"""),
    md(r"""
    The C linker of this PyTensor install links no BLAS library (printed above), and `RNN`'s gradient of
    `U[:, x_t]` inside the loop is a dense H×C array per step; the JAX linker compiles the same graph through
    XLA, and the split form also updates only the columns of $U$ the sentence used.  `rnnlm bench sgd-step`
    runs the full experiment (more repeats, and the same step written directly in JAX for reference).

    ## 5. Training

    The tutorial's loop, `train_with_sgd`: one SGD step per sentence, the loss evaluated every
    `evaluate_loss_after` epochs, and the learning rate halved whenever the loss rises.  As in the blog post
    we train on the first 100 sentences for 10 epochs — here with the compiled graph model `RNN` (C linker;
    its first call compiles the step, which takes tens of seconds on a cold compile cache and a few seconds
    after).  To keep the run short the vocabulary is cut to 1,000 words, so this time some words become
    `UNKNOWN_TOKEN`.
    """),
    code(r"""
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the same two warnings as in section 1
    small = prepare("reddit", vocab_size=1000)
print(f"vocabulary {len(small.vocab)}; {small.stats['unknown_rate']:.1%} of the words are UNKNOWN_TOKEN")
Xs, Ys = small.xy()
rnn = RNN(len(small.vocab), hidden_dim=50, bptt_truncate=4, seed=10, linker="c")
log = []
losses = train_with_sgd(rnn, Xs[:100], Ys[:100], learning_rate=0.005, nepoch=10, evaluate_loss_after=1,
                        callback=lambda **kw: log.append(kw))
for entry in log:
    print(f"epoch {entry['epoch']:2d}: {entry['examples_seen']:4d} examples seen, loss {entry['loss']:.4f}, "
          f"learning rate {entry['learning_rate']:g}")

seen, values = zip(*losses)
fig, ax = plt.subplots(figsize=(6, 3.4))
ax.plot(seen, values, "o-")
ax.axhline(np.log(len(small.vocab)), color="0.6", ls=":", label=f"ln C = {np.log(len(small.vocab)):.2f}")
ax.set_xlabel("examples seen"); ax.set_ylabel("loss (nats/word)"); ax.legend()
ax.set_title("train_with_sgd: 100 sentences, 10 epochs"); fig.tight_layout(); plt.show()
"""),
    md(r"""
    How well does this tiny model do on sentences it has not seen?  `perplexity` ($e^{\text{loss}}$, the number of
    equally likely words the model is choosing between) on the training sentences and on the rest of the
    sample — a model trained on 100 sentences mostly memorises:
    """),
    code(r"""
lm = rnn.to_language_model(linker=engine.default_linker())  # the same weights as a batched LanguageModel
seen_ppl = perplexity(lm, small.sentences[:100])
unseen_ppl = perplexity(lm, small.sentences[100:])
print(f"perplexity on the 100 training sentences: {seen_ppl.perplexity:8.1f}")
print(f"perplexity on the other {unseen_ppl.sentences} sentences: {unseen_ppl.perplexity:8.1f}   "
      f"(uniform guessing: {len(small.vocab)})")
"""),
    md(r"""
    ## 6. Generating sentences

    The tutorial's rule: start from `SENTENCE_START`, sample the next word from $o_t$, feed it back, and stop at
    `SENTENCE_END`; never emit `UNKNOWN_TOKEN`.  `generate` runs the compiled one-step function, so each word
    costs the same however long the sentence already is.  After ten epochs on 100 sentences, expect word salad
    with some local structure.
    """),
    code(r"""
for g in generate(lm, small.vocab, n=6, seed=0, min_length=5, max_length=20):
    print(f"{g.logprob:8.1f}  {g.text}{'' if g.ended else ' …'}")
"""),
    md(r"""
    ## 7. The tutorial's published model

    The blog post ships `trained-model-theano.npz`: $U$ (50×8000), $V$ (8000×50), $W$ (50×50), float32 — a model
    with $H = 50$ trained for 50 epochs on the full reddit data.  `load_model` reads it as an rnn-cell
    `LanguageModel` without output bias.

    The file holds **no vocabulary**: the tutorial built its word list at run time from the full 15,000-comment
    file, and the 212-comment sample here has a different vocabulary, so decoding the model's ids with it
    would print the wrong words.  What is known is the id layout (`rnnlm.inference` documents it): id 0 is
    `SENTENCE_START`, id 1 `SENTENCE_END`, id 7999 `UNKNOWN_TOKEN`, and the other ids are words by decreasing
    frequency.  So the model generates and scores, but as ids; with the full file
    (`rnnlm data download reddit`) `prepare("reddit", vocab_size=8000)` rebuilds a vocabulary with the
    tutorial's procedure (whether the ids then match its word list exactly is not verified here).
    """),
    code(r"""
path = datasets.resolve("tutorial-model")
tutorial_lm, tutorial_vocab, meta = load_model(path)
print(path.name, "| vocabulary:", tutorial_vocab, "| format:", meta["format"])
print({k: v.shape for k, v in tutorial_lm.get_params().items()}, tutorial_lm.config)

step = tutorial_lm.step_function(1)
logp, *_ = step(np.array([0], np.int32), *tutorial_lm.initial_state(1))  # after SENTENCE_START
p = np.exp(np.asarray(logp)[0])
top = np.argsort(-p)[:8]
print("\nmost likely first words (ids):", {int(j): round(float(p[j]), 3) for j in top},
      f"- id 7999, UNKNOWN_TOKEN, has p = {p[7999]:.3f}, but generation never emits it")
print(f"p(SENTENCE_START = id 0 next) = {p[0]:.1e}: never predicted, as a start token should be")
for g in generate(tutorial_lm, None, n=4, seed=1, min_length=5, max_length=15):
    print(f"{g.logprob:8.1f}  ids: {g.text}{'' if g.ended else ' …'}")
"""),
    md(r"""
    **Next:** [03 · BPTT and the vanishing gradient](03-bptt-and-vanishing-gradients.ipynb) measures why
    `bptt_truncate=4` loses little for this model — and what it would lose for one with longer memory.
    """),
]

# ------------------------------------------------------------------------------------------------
# 03 — BPTT and vanishing gradients
# ------------------------------------------------------------------------------------------------
NB03 = [
    md(r"""
    # 3 · Backpropagation through time and the vanishing gradient

    Part 3 of the tutorial argues that the gradient of the loss at step $t$ with respect to an earlier state
    $s_k$ is a product of per-step Jacobians,

    $$\frac{\partial L_t}{\partial s_k} = \frac{\partial L_t}{\partial s_t}\prod_{j=k+1}^{t}\frac{\partial s_j}{\partial s_{j-1}},
    \qquad \frac{\partial s_j}{\partial s_{j-1}} = \mathrm{diag}\big(f'(a_j)\big)\,W,$$

    so with $\tanh$ (whose derivative is at most 1) and small $W$ it shrinks geometrically with the distance
    $t-k$: the network cannot learn long-range dependencies, and truncating BPTT after a few steps loses little.
    `rnnlm.analysis` turns the argument into measurements on real sentences; this notebook runs them:
    gradient norms against distance, a heat map, tanh against ReLU, the spectral radius of $W$, GRU and LSTM,
    the error of truncated BPTT, and exploding gradients with clipping.

    Everything here is float64 NumPy on the reference models (`rnnlm.models.reference`); the same measurements run on
    a trained checkpoint with `rnnlm analyze gradients CKPT`.  About a minute on two CPU cores.
    """),
    code(SETUP + """
from rnnlm import analysis as A
from rnnlm.data import prepare
from rnnlm.data.datasets import DataWarning

warnings.filterwarnings("ignore", category=DataWarning)  # notebook 02 shows it: the reddit file is the 212-comment sample
warnings.filterwarnings("ignore", message=".*cut off inside a quoted field")
"""),
    md(r"""
    ## Gradient norms against distance

    Thirty sentences of 10–40 tokens from the reddit sample, a vocabulary of 2,000 words, and a fresh tanh RNN
    with the tutorial's initialisation ($H = 100$, weights uniform in $\pm 1/\sqrt{n}$).  For every sentence and
    every pair $k \le t$, `gradient_norms` computes $\lVert\partial L_t/\partial s_k\rVert$ and the Jacobian
    norm $\lVert\partial s_t/\partial s_k\rVert$, then averages them by distance $d = t - k$ and fits a decay
    factor per step (the slope of the log-norm against $d$).
    """),
    code(r"""
corpus = prepare("reddit", vocab_size=2000)
C = len(corpus.vocab)
pairs = A.select_sentences(corpus.sentences, n=30, min_len=10, max_len=40, seed=0)
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
    the pair $(h_t, c_t)$).  For tanh and ReLU every step multiplies the gradient by at most
    $\lVert W\rVert_2$; rescaling $W$ above 1 lets it grow instead of vanish.
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
    What the table shows: the fresh tanh RNN forgets fast (its $W$ has spectral radius 0.65, and each step back
    multiplies the gradient by about 0.6); ReLU, whose derivative is 0 for half the units, forgets faster still.
    Rescaling $W$ to radius 1 makes the decay slow, and above 1 the gradient *grows* going back in time
    (the heat map of the radius-1.5 model is brightest far from the diagonal).  A fresh GRU decays like the
    tanh RNN — at initialisation its gates sit near 0.5 — while the LSTM's cell state $c_t$, carried forward
    through the forget gate alone, keeps about 0.86 per step.  What the gates add is the *ability* to learn a
    Jacobian near the identity (an update gate $z \to 1$ copies the state forward unchanged), which training
    has to discover; part 4 trains them.

    ## Truncated BPTT

    The tutorial truncates the backward pass after `bptt_truncate` steps.  Two definitions exist, and
    `RNNNumpy.bptt` implements both: the blog post's loop carries each output's error back $k$ steps
    (`truncation="tutorial"`), while Theano/PyTensor's `scan(truncate_gradient=k)` runs the backward recursion
    over the last $k$ steps of the sentence only (`truncation="scan"`), so it drops the recurrent gradient of
    every earlier step altogether.  `truncation_error` measures $\lVert g_k - g\rVert / \lVert g\rVert$ for
    the gradient $g$ of $U$ and $W$ against full BPTT; `truncation_training` trains with each setting (two
    epochs of per-sentence SGD, $H = 32$) to see what the error costs.
    """),
    code(r"""
short = A.select_sentences(corpus.sentences, n=20, min_len=5, max_len=30, seed=0)
ks = list(range(0, 13)) + [16, 20, 24, 30]
fresh32 = A.fresh_model("rnn", vocab_size=C, hidden_dim=32, seed=0)
errors = {"fresh": A.truncation_error(fresh32, short, truncations=ks)}

everything = A.select_sentences(corpus.sentences, min_len=2)
order = np.random.default_rng(0).permutation(len(everything))
valid = [everything[j] for j in order[:150]]
train = [everything[j] for j in order[150:450]]
training = A.truncation_training(train, valid, C, hidden_dim=32, truncations=(1, 2, 4, -1), epochs=2)
errors["trained (full BPTT run)"] = A.truncation_error(training["models"][("full", -1)], short, truncations=ks)

for name, e in errors.items():
    for mode, d in e["modes"].items():
        cells = "  ".join(f"k={k}: {d['mean'][ks.index(k)]:.3f}" for k in (1, 2, 4, 8))
        print(f"{name:<24}{mode:<10}{cells}")
print()
for run in training["runs"]:
    label = "full BPTT" if run["truncation"] == "full" else f"{run['truncation']}, k = {run['bptt_truncate']}"
    print(f"{label:<16} valid loss after {training['epochs']} epochs: {run['valid_loss'][-1]:.4f} nats/word "
          f"({run['seconds']:.1f} s)")
"""),
    code(r"""
A.plot_truncation(errors, training)
"""),
    md(r"""
    The tutorial's truncation at $k = 4$ keeps all but about 5% of the gradient of these models, whose
    memory is a step or two, and trains as well as full BPTT.  The `scan` definition is much harsher on
    sentences longer than $k$: only the last $k$ steps of each sentence update $U$ and $W$, so most of the
    gradient is lost and training suffers.  (The error is not always monotone in $k$ — contributions from
    different distances can cancel — so the plot also shows a bound that never grows.)  The tutorial's own
    Theano model passed `bptt_truncate` to `scan`, and so does `rnnlm.models.tutorial.RNN`: it trains with the second
    definition.  `LanguageModel` and `rnnlm train` default to full BPTT (`bptt_truncate=-1`).

    ## Exploding gradients and clipping

    The opposite failure: with $W$ rescaled to a spectral radius above 1 the product of Jacobians can grow with
    distance and the gradient norm explodes.  `exploding_gradients` measures the global gradient norm of each
    sentence's loss per radius, without and with clipping to norm 5 (the rule `rnnlm.training.optim` applies), and one
    pass of per-sentence SGD with each.
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
    # 4 · GRU and LSTM, and the bidirectional fill-in-the-blank model

    Part 4 of the tutorial replaces the vanilla cell with gated ones.  This notebook shows the GRU and LSTM
    cells of `rnnlm`, checks their hand-derived gradients (NumPy reference) against finite differences and the
    graph model's automatic gradients against the reference, trains part 4's model for a short while, and
    trains the bidirectional fill-in-the-blank model from part 1's taxonomy.

    Training runs are short (seconds, not the tutorial's hours on a GPU), so the losses fall but the sentences
    are rough.  About two minutes on two CPU cores.
    """),
    code(SETUP + """
from rnnlm.data import prepare
from rnnlm.data.datasets import DataWarning
from rnnlm.experiments import PART4, masked_word_accuracy, reproduce_part4
from rnnlm.models.lm import LanguageModel, ModelConfig, param_shapes
from rnnlm.models.reference import GATE_NAMES, GatedRNNNumpy
from rnnlm.inference import fill
from rnnlm.training.config import TrainConfig
from rnnlm.training.trainer import Trainer

warnings.filterwarnings("ignore", category=DataWarning)  # notebook 02 shows it: the reddit file is the 212-comment sample
warnings.filterwarnings("ignore", message=".*cut off inside a quoted field")
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm's notebook bar needs ipywidgets; unused here
"""),
    md(r"""
    ## The cells

    **GRU** (part 4), with update gate $z$, reset gate $r$ and candidate $c$:

    $$z = \sigma(U_z x_t + W_z s_{t-1} + b_z),\quad r = \sigma(U_r x_t + W_r s_{t-1} + b_r),$$
    $$c = \tanh\big(U_c x_t + W_c (s_{t-1} \odot r) + b_c\big),\quad s_t = (1 - z) \odot c + z \odot s_{t-1}.$$

    **LSTM**, with input, forget and output gates and a cell state $c_t$:

    $$i, f, o = \sigma(U_{i,f,o} x_t + W_{i,f,o} h_{t-1} + b_{i,f,o}),\quad g = \tanh(U_g x_t + W_g h_{t-1} + b_g),$$
    $$c_t = f \odot c_{t-1} + i \odot g,\quad h_t = o \odot \tanh(c_t).$$

    $\sigma$ is the sigmoid or, as in the tutorial's code, `hard_sigmoid` $= \mathrm{clip}(0.2a + 0.5, 0, 1)$.
    The gates are stacked on the first axis of each layer's `U`, `W`, `b`, in this order:
    """),
    code(r"""
print(GATE_NAMES)
part4 = ModelConfig(vocab_size=2000, hidden_dim=128, cell="gru", layers=2, embedding_dim=48, gate="hard_sigmoid")
shapes = param_shapes(part4)
print("part 4's model:", {k: v for k, v in shapes.items()})
print(f"{sum(int(np.prod(s)) for s in shapes.values()):,} parameters; E is the word embedding (48 × 2000)")
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
    ## Part 4's model

    `reproduce_part4` trains the tutorial's configuration — two GRU layers, embedding 48, hidden 128,
    `hard_sigmoid` gates, output bias, RMSProp (decay 0.9, lr 0.001), vocabulary 2,000, full BPTT, one sentence
    per step, sentences containing "http" dropped — for a time budget that counts training steps only
    (compilation and evaluation are excluded and reported separately).  Here 10 seconds on the reddit sample,
    with every sentence padded to one length (32 steps; longer ones are cut into pieces) so that the JAX linker
    compiles a single training function; `rnnlm experiment part4 --time-budget 10m` runs it for longer.
    """),
    code(r"""
print(PART4)
reddit = prepare("reddit", vocab_size=PART4["vocab_size"], drop_containing=PART4["drop_containing"])
print(f"{len(reddit)} sentences ({reddit.stats['dropped_sentences']} dropped for 'http'), vocabulary {len(reddit.vocab)}")
r = reproduce_part4(time_budget=10, corpus=reddit, max_length=32, buckets=(32,), eval_sentences=64,
                    evaluations=4, n_sentences=5, max_words=20, seed=0)
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
ax.set_title("part 4 GRU, RMSProp, one sentence per step"); ax.legend(); fig.tight_layout(); plt.show()
"""),
    md(r"""
    ## The bidirectional fill-in-the-blank model

    Part 1: "the output at time $t$ may not only depend on the previous elements in the sequence, but also
    future elements — to predict a missing word in a sequence you want to look at both the left and the
    right context."  `ModelConfig(bidirectional=True)` builds that model: a forward and a backward GRU, and the
    word at position $t$ predicted from the forward state after $w_{t-1}$ and the backward state after
    $w_{t+1}$.  It trains on whole sentences with the ordinary `Trainer` (`rnnlm train --task fill` on the
    command line).  Here: the first 8,000 lines of Shakespeare of at least four tokens, one line per sentence
    (NLTK tokenizer; 99% of them fit in 16 tokens), vocabulary 2,000, and 500 Adam steps of 32 lines (about two epochs).
    """),
    code(r"""
shakespeare = prepare("tinyshakespeare", vocab_size=2000, format="lines", tokenizer="nltk", min_length=4,
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
