"""The production language model: a batched, compiled ``scan`` graph (:class:`LanguageModel`).

Batches of padded sentences or streamed chunks, rnn/gru/lstm cells (:mod:`rnnlm.models.cells`), an
optional embedding E, stacked layers, dropout between layers and before the output, output bias, tied
input/output embeddings, and a bidirectional fill-in-the-blank variant. Only the recurrence runs inside
``scan``: the input projection of every step and the output layer are single matrix products outside it.

Truncation: ``bptt_truncate`` maps to scan's ``truncate_gradient`` (Theano's definition: the backward
recursion visits only the last k steps of the sequence). The tutorial's NumPy loop defines it per output
step instead; :mod:`rnnlm.models.reference` implements both and the tests check each model against its
own definition.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from rnnlm import engine, engine_ops
from rnnlm.errors import ConfigError
from rnnlm.models.cells import gate_count, make_step
from rnnlm.models.reference import init_params as init_reference_params

T = engine.T
FLOATX = engine.floatX


def _f32(value):
    return T.constant(value, dtype=FLOATX)


def _rows(feats):  # (L', B, H_out) -> (L'·B, H_out)
    return feats.reshape((feats.shape[0] * feats.shape[1], feats.shape[2]))


def _nll_rows(logits, y):
    """Negative log-likelihood of targets ``y`` (N,) under ``logits`` (N, C), stable form."""
    logp = engine.log_softmax(logits, axis=-1)
    return -logp[T.arange(y.shape[0]), y]


@dataclass
class ModelConfig:
    """Everything that fixes a model's parameters and graph.

    vocab_size C; hidden_dim H; cell rnn|gru|lstm; layers (stacked); embedding_dim D (0: the
    tutorial's one-hot input, U0 acts as the embedding); activation tanh|relu (rnn cell);
    gate sigmoid|hard_sigmoid (gru/lstm); dropout between layers and before the output, and
    embed_dropout on the embedding (both "locked": one mask per sequence, the same at every
    step, as Gal & Ghahramani's variational dropout; none at evaluation); bidirectional: the
    fill-in-the-blank model (a forward and a backward stack, the word at t
    predicted from the forward state at t−1 and the backward state at t+1); tie_embeddings:
    the output layer reuses E (with a projection P (D, H) when D ≠ H); bptt_truncate: scan's
    truncate_gradient (−1 = full BPTT); output_bias: the output layer's bias c.
    """

    vocab_size: int
    hidden_dim: int = 128
    cell: str = "rnn"
    layers: int = 1
    embedding_dim: int = 0
    activation: str = "tanh"
    gate: str = "sigmoid"
    dropout: float = 0.0
    embed_dropout: float = 0.0
    bidirectional: bool = False
    tie_embeddings: bool = False
    bptt_truncate: int = -1
    output_bias: bool = True

    def __post_init__(self):
        if int(self.vocab_size) < 3:
            raise ConfigError(f"vocab_size must be at least 3, got {self.vocab_size}")
        if int(self.hidden_dim) < 1:
            raise ConfigError(f"hidden_dim must be positive, got {self.hidden_dim}")
        if int(self.layers) < 1:
            raise ConfigError(f"layers must be at least 1, got {self.layers}")
        if int(self.embedding_dim) < 0:
            raise ConfigError(f"embedding_dim must be >= 0, got {self.embedding_dim}")
        for name in ("dropout", "embed_dropout"):
            if not 0.0 <= float(getattr(self, name)) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.embed_dropout and not self.embedding_dim:
            raise ConfigError("embedding dropout needs an embedding layer (--embedding D)")
        gate_count(self.cell)
        if self.activation not in ("tanh", "relu"):
            raise ConfigError(f"unknown activation {self.activation!r}; choose tanh or relu")
        if self.gate not in ("sigmoid", "hard_sigmoid"):
            raise ConfigError(f"unknown gate {self.gate!r}; choose sigmoid or hard_sigmoid")
        if self.tie_embeddings and not self.embedding_dim:
            raise ConfigError("--tie-embeddings needs an embedding layer (--embedding D)")
        if self.tie_embeddings and self.bidirectional:
            raise ConfigError("tied embeddings are not supported for the bidirectional fill model")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown model settings: {', '.join(sorted(unknown))}")
        return cls(**d)

    @property
    def gates(self) -> int:
        return gate_count(self.cell)

    @property
    def directions(self) -> tuple:
        return ("", "_b") if self.bidirectional else ("",)

    @property
    def n_states(self) -> int:
        """State arrays per layer: (h,) or (h, c) for the LSTM."""
        return 2 if self.cell == "lstm" else 1


def init_params(config: ModelConfig, seed=None) -> dict:
    """Fresh float32 parameters for ``config``; see :func:`rnnlm.models.reference.init_params`.

    Names: ``E`` (D, C); per layer l and direction d ('' forward, '_b' backward):
    ``U{l}{d}`` (G, H, D_in), ``W{l}{d}`` (G, H, H), ``b{l}{d}`` (G, H); ``V`` (C, H_out)
    (absent when tied; ``P`` (D, H) when tied with D ≠ H); ``c`` (C,) when output_bias.
    """
    cfg = config
    rng = np.random.default_rng(seed)
    out = {}
    for d_i, d in enumerate(cfg.directions):
        p = init_reference_params(
            cfg.cell,
            cfg.vocab_size,
            cfg.hidden_dim,
            embedding_dim=cfg.embedding_dim,
            layers=cfg.layers,
            seed=int(rng.integers(2**31)),
        )
        for k, v in p.items():
            if k in ("E", "V", "c"):
                if d_i == 0:
                    out[k] = v
            else:
                out[k + d] = v
    H_out = cfg.hidden_dim * len(cfg.directions)
    if cfg.bidirectional:
        out["V"] = rng.uniform(-1, 1, (cfg.vocab_size, H_out)) / np.sqrt(H_out)
    if cfg.tie_embeddings:
        out.pop("V", None)
        if cfg.embedding_dim != cfg.hidden_dim:
            out["P"] = rng.uniform(-1, 1, (cfg.embedding_dim, cfg.hidden_dim)) / np.sqrt(cfg.hidden_dim)
    if not cfg.output_bias:
        out.pop("c", None)
    elif "c" not in out:
        out["c"] = np.zeros(cfg.vocab_size)
    return {k: np.asarray(v, FLOATX) for k, v in out.items()}


def param_shapes(config: ModelConfig) -> dict:
    """Expected shape of every parameter of ``config`` (for validating loaded files)."""
    cfg, G, H, C = config, config.gates, config.hidden_dim, config.vocab_size
    D = cfg.embedding_dim
    shapes = {}
    if D:
        shapes["E"] = (D, C)
    for d in cfg.directions:
        for l in range(cfg.layers):
            d_in = (D or C) if l == 0 else H
            shapes[f"U{l}{d}"] = (G, H, d_in)
            shapes[f"W{l}{d}"] = (G, H, H)
            shapes[f"b{l}{d}"] = (G, H)
    if cfg.tie_embeddings:
        if D != H:
            shapes["P"] = (D, H)
    else:
        shapes["V"] = (C, H * len(cfg.directions))
    if cfg.output_bias:
        shapes["c"] = (C,)
    return shapes


class LanguageModel:
    """A batched, compiled RNN language model (or bidirectional fill model).

    Data layout is time-major: ``x``, ``y`` (L, B) int32 token ids, ``mask`` (L, B) float32
    (1 real token, 0 padding), states (layers, B, H) float32 (an LSTM also carries cells).

    Compiled functions are built lazily and cached per input shape when the linker needs
    static shapes (JAX); with the C linker one function serves every shape. ``precision="bf16"``: the
    training graphs' matrix products take bfloat16 operands with float32 accumulation (parameters,
    states and the softmax stay float32); scoring always runs at fp32, so perplexities compare.
    """

    def __init__(self, config: ModelConfig, params=None, seed=None, linker="c", precision="fp32"):
        self.config = config
        self.linker = linker
        engine_ops.check_precision(precision, linker)
        if precision != "fp32" and not self._fused():
            raise ConfigError(f"--precision {precision} needs the fused layers (PyTensor, full BPTT)")
        # of the graph being built (set by _compile): its matrix-product precision and its kind
        self.precision, self._dot_precision, self._kind = precision, "fp32", None
        self.mode = engine.mode_for(linker)
        self.static = linker in ("jax",)
        if self.static and config.bptt_truncate > 0:
            # PyTensor 3.0.7's JAX backend fails on the gradient of a truncated scan whose input
            # sequence needs a gradient (AssertionError in get_partial_traces); say so up front.
            raise ConfigError("bptt_truncate > 0 is not supported with the jax linker (a PyTensor "
                              "JAX-backend limitation); use --linker c or full BPTT (-1)")
        if params is None:
            params = init_params(config, seed=seed)
        self.validate_params(params)
        self.params = {k: engine.shared(np.asarray(params[k], FLOATX), name=k) for k in param_shapes(config)}
        self.optimizer = None
        self.placement = None  # rnnlm.devices.Placement: data-parallel over a device mesh (see place())
        self._fns = {}

    # -- parameters ----------------------------------------------------------------------
    def validate_params(self, params: dict) -> None:
        want = param_shapes(self.config)
        missing = set(want) - set(params)
        if missing:
            raise ConfigError(f"missing parameters: {', '.join(sorted(missing))}")
        extra = set(params) - set(want)
        if extra:
            raise ConfigError(f"unexpected parameters for this model: {', '.join(sorted(extra))}")
        for k, shape in want.items():
            if tuple(np.shape(params[k])) != shape:
                raise ConfigError(f"parameter {k} has shape {tuple(np.shape(params[k]))}, expected {shape}")
            if not np.all(np.isfinite(params[k])):
                raise ConfigError(f"parameter {k} contains NaN or Inf")

    def get_params(self) -> dict:
        return {k: np.asarray(v.get_value()) for k, v in self.params.items()}

    def set_params(self, params: dict) -> None:
        self.validate_params(params)
        for k, v in self.params.items():
            v.set_value(np.asarray(params[k], FLOATX))

    def n_parameters(self) -> int:
        return int(sum(np.prod(s) for s in param_shapes(self.config).values()))

    def initial_state(self, batch_size: int) -> list:
        """Zero states: a list of ``n_states`` arrays of shape (layers, B, H)."""
        cfg = self.config
        return [np.zeros((cfg.layers, batch_size, cfg.hidden_dim), FLOATX) for _ in range(cfg.n_states)]

    # -- graph ---------------------------------------------------------------------------
    def _inputs(self, shape):
        L, B = shape if self.static else (None, None)
        cfg = self.config
        x = engine.tensor("x", "int32", (L, B))
        y = engine.tensor("y", "int32", (L, B))
        mask = engine.tensor("mask", FLOATX, (L, B))
        states = [
            engine.tensor(f"state{i}", FLOATX, (cfg.layers, B, cfg.hidden_dim)) for i in range(cfg.n_states)
        ]
        drops = [engine.tensor(f"drop{i}", FLOATX, s) for i, s in enumerate(self.dropout_shapes(B))]
        return x, y, mask, states, drops

    def dropout_shapes(self, batch_size) -> list:
        """Shapes of the dropout masks a training step takes, in order: one (B, H·directions) per
        layer (after every layer but the last, and before the output), then (B, D) for the
        embedding. Locked dropout: one mask per sequence, broadcast over time."""
        cfg = self.config
        shapes = [(batch_size, cfg.hidden_dim * len(cfg.directions))] * (cfg.layers if cfg.dropout > 0 else 0)
        if cfg.embed_dropout > 0:
            shapes.append((batch_size, cfg.embedding_dim))
        return shapes

    def _split_drops(self, drops):
        """(layer masks, embedding mask or None) from the flat list of :meth:`dropout_shapes`."""
        cfg = self.config
        n = cfg.layers if (drops and cfg.dropout > 0) else 0
        emask = drops[n] if (drops and cfg.embed_dropout > 0) else None
        return list(drops[:n]), emask

    def _embed(self, x, d, emask=None):
        """Layer 0's input for all steps: (L, B) ids -> (L, B, D) embeddings (``emask`` (B, D) drops units,
        the same ones at every step); without an embedding the projection (L, B, G·H): U's columns."""
        cfg, p = self.config, self.params
        G, H = cfg.gates, cfg.hidden_dim
        L, B = x.shape[0], x.shape[1]
        flat = x.flatten()
        if not cfg.embedding_dim:
            proj = engine_ops.take_rows(p[f"U0{d}"].reshape((G * H, cfg.vocab_size)).T, flat)  # U's columns
            return (proj + p[f"b0{d}"].flatten()).reshape((L, B, G * H))
        e = engine_ops.take_rows(p["E"].T, flat).reshape((L, B, cfg.embedding_dim))  # rows of Eᵀ
        return e if emask is None else e * emask.dimshuffle("x", 0, 1)

    def _dot(self, a, b):
        return engine_ops.matmul(a, b, self._dot_precision)

    def _fused(self) -> bool:
        """Whether each layer runs as one fused node (:mod:`rnnlm.engine_ops`: a hand-written backward,
        dW as one GEMM over all steps) instead of ``scan`` + autodiff: on PyTensor, with full BPTT."""
        return engine_ops.available() and self.config.bptt_truncate < 0

    def _dnnl(self, ragged, kind=None) -> bool:
        """Whether the layers run the native ones (:mod:`rnnlm.engine_ops.dnnl`): train/grads/eval graphs,
        tanh and sigmoid gates, full BPTT, one CPU device; padded batches where rnnlm's own layers run."""
        cfg = self.config
        return ((kind or self._kind) in ("train", "grads", "eval") and cfg.bptt_truncate < 0
                and cfg.activation == "tanh" and (cfg.gate == "sigmoid" or cfg.cell == "rnn")
                and self.placement is None and engine_ops.dnnl_lstm(self.linker)
                and (not ragged or engine_ops.dnnl.own_layer(cfg.cell, self._dot_precision)))

    def _layer(self, l, proj, mask, init, Wt, direction, go_backwards, ragged):
        """One layer over all steps: the state sequences in processing order ([S] or [S, C])."""
        cfg = self.config
        label = f"{cfg.cell}{l}{direction}"
        if self._fused():
            proj, mask = (proj[::-1], mask[::-1]) if go_backwards else (proj, mask)
            return engine_ops.recurrent_layer(cfg.cell, proj, mask, init, Wt, activation=cfg.activation,
                                              gate=cfg.gate, masked=ragged, label=label,
                                              precision=self._dot_precision)
        step = make_step(cfg.cell, cfg.hidden_dim, cfg.activation, cfg.gate)
        out = engine.scan(
            step,
            sequences=[proj, mask],
            outputs_info=init,
            non_sequences=[Wt],
            truncate_gradient=cfg.bptt_truncate,
            go_backwards=go_backwards,
            label=label,
        )
        return list(out) if isinstance(out, (list, tuple)) else [out]

    def _stack(self, x, mask, states, drops, direction, go_backwards=False, emask=None, ragged=True):
        """Run every layer of one direction; returns the top layer's states (L, B, H) and
        the final state of each layer (lists of (B, H)). ``drops``: (B, H) masks after each layer;
        ``emask``: (B, D) embedding mask. ``ragged=False`` promises a mask of ones
        (a full batch): the fused layers then skip the per-step mask blend."""
        cfg, p = self.config, self.params
        G, H = cfg.gates, cfg.hidden_dim
        finals = [[] for _ in range(cfg.n_states)]
        inp = None
        for l in range(cfg.layers):
            U, b, W = (p[f"{k}{l}{direction}"] for k in "UbW")
            init = [s[l] for s in states]
            X = self._embed(x, direction, emask) if l == 0 else inp  # (L, B, D); (L, B, G·H) if projected
            projected = l == 0 and not cfg.embedding_dim
            if not projected and self._dnnl(ragged):
                X, m = (X[::-1], mask[::-1]) if go_backwards else (X, mask)  # m: blended per step if ragged
                S, *last = engine_ops.dnnl.layer(cfg.cell, X, U, W, b, init, f"{cfg.cell}{l}{direction}",
                                                 self._dot_precision, m if ragged else None)
                outs = [S]
            else:
                L, B, D = X.shape[0], X.shape[1], X.shape[2]
                proj = X if projected else (self._dot(X.reshape((L * B, D)), U.reshape((G * H, D)).T)
                                            + b.flatten()).reshape((L, B, G * H))
                Wt = W.reshape((G * H, H)).T
                outs = self._layer(l, proj, mask, init, Wt, direction, go_backwards, ragged)
                last = [o[-1] for o in outs]
            for i, o in enumerate(last):
                finals[i].append(o)
            inp = outs[0]
            if go_backwards:
                inp = inp[::-1]  # scan returns states in processing order; restore time order
            if drops and l < cfg.layers - 1:
                inp = inp * drops[l].dimshuffle("x", 0, 1)
        return inp, finals

    def _output_weights(self, h):
        """(N, H_out) top states -> ``(h', Wo (K, C), c (C,) or None)``: the logits are ``h'·Wo + c``."""
        cfg, p = self.config, self.params
        if cfg.tie_embeddings:
            if "P" in p:
                h = self._dot(h, p["P"].T)
            return h, p["E"], p["c"] if cfg.output_bias else None
        return h, p["V"].T, p["c"] if cfg.output_bias else None

    def _output_logits(self, h):
        """(N, H_out) top states -> (N, C) logits."""
        h, Wo, c = self._output_weights(h)
        logits = self._dot(h, Wo)
        return logits if c is None else logits + c

    def _loss_rows(self, h, y, w):
        """``(Σ w·nll, nll (N,))`` of targets ``y`` (N,) given top states ``h`` (N, H_out), row weights ``w``;
        one fused node (:mod:`rnnlm.engine_ops.output`) unless placed over devices or the ops are off."""
        if self.placement is not None or not engine_ops.fused_output():
            nll = _nll_rows(self._output_logits(h), y)
            return T.sum(nll * w), nll
        h, Wo, c = self._output_weights(h)
        c = T.zeros((self.config.vocab_size,), dtype=FLOATX) if c is None else c
        return engine_ops.softmax_nll(h, Wo, c, y, w, grads=self._kind in ("train", "grads"),
                                      precision=self._dot_precision)

    def _features(self, x, y, mask, states, drops, ragged=True):
        """Top-layer features, their targets and mask, and the final states.

        Returns ``(feats (L', B, H_out), targets (L', B), tmask (L', B), new_states)``.  For the
        LM, L' = L and the target at t is ``y[t]``.  For the fill model, L' = L − 2: the word
        w_t (1 <= t <= L-2) is predicted from the forward state after w_{t-1} and the backward
        state after w_{t+1}; neither has seen w_t.
        """
        cfg = self.config
        drops, emask = self._split_drops(drops)
        if not cfg.bidirectional:
            top, finals = self._stack(x, mask, states, drops, "", emask=emask, ragged=ragged)
            if drops:
                top = top * drops[-1].dimshuffle("x", 0, 1)
            return top, y, mask, [T.stack(f) for f in finals]
        H = cfg.hidden_dim
        fwd, _ = self._stack(x, mask, states, [d[:, :H] for d in drops], "", emask=emask, ragged=ragged)
        bwd, _ = self._stack(
            x, mask, states, [d[:, H:] for d in drops], "_b", go_backwards=True, emask=emask, ragged=ragged
        )
        feats = T.concatenate([fwd[:-2], bwd[2:]], axis=2)  # (L-2, B, 2H)
        if drops:
            feats = feats * drops[-1].dimshuffle("x", 0, 1)
        # w_t is a real word (not END) iff position t+1 is real
        return feats, x[1:-1], mask[2:], [T.zeros_like(s) for s in states]

    def _graph(self, x, y, mask, states, drops, ragged=True):
        """Symbolic per-position NLL (L', B), its mask, final states, and the masked loss sum."""
        feats, target, tmask, new_states = self._features(x, y, mask, states, drops, ragged)
        # placed: rows batch-major, so each device computes the output layer of its own batch columns
        bm = self.placement is not None
        f, t, m = (feats.dimshuffle(1, 0, 2), target.T, tmask.T) if bm else (feats, target, tmask)
        loss, nll = self._loss_rows(_rows(f), t.flatten(), m.flatten())
        nll = nll.reshape(t.shape)
        return (nll.T if bm else nll), tmask, new_states, loss

    # -- compiled functions ----------------------------------------------------------------
    def _key(self, kind, shape, ragged=True):
        full_apart = self._fused() or self._dnnl(False, kind)  # full batches get a graph of their own
        return (kind, tuple(shape) if self.static else None, bool(ragged) or not full_apart)

    def _compile(self, kind, shape, ragged=True):
        """The compiled function of ``kind`` for batches of ``shape``; ``ragged=False`` (a batch whose
        mask is all ones) gets its own function: no per-step mask blends, oneDNN's LSTM on the C linker."""
        key = self._key(kind, shape, ragged)
        if key not in self._fns:
            self._kind = kind
            self._dot_precision = self.precision if kind in ("train", "grads") else "fp32"
            try:
                with engine.quiet():  # engine chatter while building graphs is not the user's concern
                    self._fns[key] = self._build(kind, shape, key[2])
            finally:
                self._kind, self._dot_precision = None, "fp32"
        return self._fns[key]

    def _build(self, kind, shape, ragged=True):
        x, y, mask, states, drops = self._inputs(shape)
        if kind != "train":
            drops = []
        nll, tmask, new_states, loss_sum = self._graph(x, y, mask, states, drops, ragged)
        ntok = T.sum(tmask)
        inputs = [x, y, mask] + states + drops
        if kind == "train":
            if self.optimizer is None:
                raise ConfigError("no optimizer: call set_optimizer() before training")
            params = list(self.params.values())
            loss = loss_sum / T.maximum(ntok, _f32(1.0))
            grads = engine.grad(loss, params)
            updates, gnorm = self.optimizer.updates(params, grads)
            fn = engine.function(inputs, [loss_sum, ntok, gnorm] + new_states, updates=updates,
                                 mode=self.mode, on_unused_input="ignore")
        elif kind == "grads":
            params = list(self.params.values())
            grads = engine.grad(loss_sum, params)
            fn = engine.function(inputs, [loss_sum, ntok] + grads, mode=self.mode, on_unused_input="ignore")
        elif kind == "eval":
            fn = engine.function(inputs, [loss_sum, ntok, nll * tmask] + new_states, mode=self.mode,
                                 on_unused_input="ignore")
        elif kind == "dist":
            feats = self._features(x, y, mask, states, [], ragged)[0]
            logp = engine.log_softmax(self._output_logits(_rows(feats)), axis=-1)
            logp = logp.reshape((feats.shape[0], feats.shape[1], self.config.vocab_size))
            fn = engine.function(inputs, logp, mode=self.mode, on_unused_input="ignore")
        else:
            raise ValueError(kind)
        return fn

    def graph(self, kind: str = "dist", shape=(8, 1)):
        """The compiled function of ``kind`` (``train``, ``grads``, ``eval``, ``dist``) for batches of
        ``shape`` (L, B), for inspection: :func:`rnnlm.engine.pprint`, :func:`rnnlm.engine.scan_loops`."""
        if kind not in ("train", "grads", "eval", "dist"):
            raise ConfigError(f"unknown graph {kind!r}; choose train, grads, eval or dist")
        return self._compile(kind, tuple(shape))

    def set_optimizer(self, optimizer) -> None:
        """Attach an :mod:`rnnlm.training.optim` optimizer; its updates are compiled into ``train``."""
        self.optimizer = optimizer
        optimizer.bind(list(self.params.values()))
        self._fns = {k: v for k, v in self._fns.items() if k[0] != "train"}

    def _states(self, states, B):
        return self.initial_state(B) if states is None else list(states)

    def place(self, placement) -> None:
        """Run ``train`` and ``eval`` data-parallel on ``placement`` (:class:`rnnlm.devices.Placement`; None:
        one device): parameters and optimizer state replicated over its devices, every batch sharded along
        its batch axis; XLA inserts the gradient all-reduce. Under several processes, :meth:`train_step`
        takes this process's columns of the batch (:meth:`~rnnlm.devices.Placement.columns`) and
        :meth:`evaluate` the whole batch."""
        if placement is not None and not self.static:
            from rnnlm.devices import ONE_LINE

            raise ConfigError(ONE_LINE)
        if placement is not self.placement:
            self._fns = {}  # compiled anew: placed graphs lay the output layer's rows out batch-major
        self.placement = placement

    def _run(self, kind, x, y, mask, states, drops=(), local=False):
        """The compiled ``kind`` function on a batch, placed over the devices when the model is."""
        pl, B = self.placement, x.shape[1]
        if pl is None:
            return self._compile(kind, x.shape, _ragged(mask))(x, y, mask, *self._states(states, B), *drops)
        # one graph whatever this process's columns hold: every process must run the same program
        fn = self._compile(kind, (x.shape[0], pl.global_width(B) if local else B), ragged=True)
        shared = list(self.params.values())
        if kind == "train":
            shared += [*self.optimizer.state.values(), self.optimizer.lr]
        pl.place_shared(shared)
        return pl.run(fn, [x, y, mask, *self._states(states, B)], drops, local=local)

    def train_step(self, x, y, mask, states=None, drops=()):
        """One optimizer step on a batch.  Returns (loss_sum, ntok, grad_norm, new_states)."""
        x, y, mask = _as_batch(x, y, mask)
        out = self._run("train", x, y, mask, states, drops, local=True)
        return out[0], out[1], out[2], list(out[3:])

    def gradients(self, x, y, mask, states=None) -> dict:
        """Gradients of the *summed* masked loss w.r.t. every parameter (no update)."""
        x, y, mask = _as_batch(x, y, mask)
        fn = self._compile("grads", x.shape, _ragged(mask))
        out = fn(x, y, mask, *self._states(states, x.shape[1]))
        return {
            "loss_sum": float(out[0]),
            "ntok": float(out[1]),
            **{k: np.asarray(g) for k, g in zip(self.params, out[2:], strict=True)},
        }

    def evaluate(self, x, y, mask, states=None):
        """Forward only.  Returns (loss_sum, ntok, nll (L', B) masked, new_states)."""
        x, y, mask = _as_batch(x, y, mask)
        out = self._run("eval", x, y, mask, states)
        nll = np.asarray(out[2]) if self.placement is None else self.placement.to_host(out[2])
        return float(out[0]), float(out[1]), nll, list(out[3:])

    def distribution(self, x, mask=None, states=None) -> np.ndarray:
        """log p(· | context) at every predicted position: (L', B, C) float32.

        LM: row t is the distribution of the token after ``x[:t+1]``.  Fill model: row t-1 is the
        distribution of the word at position t given both sides (L' = L − 2).
        """
        x, y, mask = _as_batch(x, None, mask)
        fn = self._compile("dist", x.shape, _ragged(mask))
        return np.asarray(fn(x, y, mask, *self.initial_state(x.shape[1])))

    # -- incremental decoding ----------------------------------------------------------------
    def step_function(self, batch_size=None):
        """Compiled ``step(tokens (B,), *states) -> [logp (B, C), *new_states]``.

        Advances every layer by one token; the cost per token does not depend on how many
        tokens came before (the state carries the history).  Under a static-shape linker (JAX)
        one function is compiled per batch size; the parameters stay where that linker keeps
        them (mixing linkers on one set of shared variables would move them back and forth).
        """
        if self.config.bidirectional:
            raise ConfigError("a bidirectional fill model cannot generate left to right")
        key = ("step", batch_size if self.static else None)
        if key in self._fns:
            return self._fns[key]
        if self.static and batch_size is None:
            raise ConfigError("the jax linker needs a fixed batch size for the step function")
        cfg = self.config
        B = batch_size if self.static else None
        tok = engine.tensor("tokens", "int32", (B,))
        states = [
            engine.tensor(f"state{i}", FLOATX, (cfg.layers, B, cfg.hidden_dim)) for i in range(cfg.n_states)
        ]
        x = tok.dimshuffle("x", 0)  # (1, B)
        mask = T.ones_like(x, dtype=FLOATX)
        top, finals = self._stack(x, mask, states, [], "", ragged=False)
        logp = engine.log_softmax(self._output_logits(top[0]), axis=-1)
        fn = engine.function([tok] + states, [logp] + [T.stack(f) for f in finals], mode=self.mode)
        self._fns[key] = fn
        return fn


def _ragged(mask) -> bool:
    """Whether a batch has padding (a mask that is not all ones)."""
    return not bool(np.all(mask == 1))


def _as_batch(x, y, mask):
    x = np.asarray(x, dtype="int32")
    y = np.asarray(y, dtype="int32") if y is not None else np.zeros_like(x)
    mask = np.ones(x.shape, FLOATX) if mask is None else np.asarray(mask, dtype=FLOATX)
    if x.ndim != 2 or x.shape != y.shape or x.shape != mask.shape:
        raise ConfigError(
            f"x, y, mask must be (L, B) arrays of one shape; got {x.shape}, {y.shape}, {mask.shape}"
        )
    return x, y, mask
