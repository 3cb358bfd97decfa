"""Any model as a float64 reference model (:class:`~rnnlm.models.reference.GatedRNNNumpy`);
fresh models, checkpoints, and rescaling the recurrent weights W to a spectral radius."""

from __future__ import annotations

import numpy as np

from rnnlm.errors import CheckpointError, ConfigError
from rnnlm.models.reference import GatedRNNNumpy, init_params, tutorial_to_general

__all__ = [
    "fresh_model",
    "load_reference",
    "recurrent_summary",
    "reference_model",
    "scale_recurrent",
    "spectral_radius",
]


def _layers_in(params) -> int:
    n = 0
    while f"W{n}" in params:
        n += 1
    return n


def reference_model(model=None, *, params=None, cell="rnn", activation="tanh",
                    gate="sigmoid") -> GatedRNNNumpy:
    """Any model as a :class:`~rnnlm.models.reference.GatedRNNNumpy` (float64 copy of its weights).

    ``model`` may be a ``GatedRNNNumpy`` (returned as is), the tutorial's ``RNNNumpy`` or graph
    ``RNN`` (U (H, C), V (C, H), W (H, H): a one-layer rnn without biases), or a
    :class:`~rnnlm.models.lm.LanguageModel` (its ``config`` and ``get_params()``).  Without a model,
    ``params`` (the LanguageModel layout: E?, U{l}, W{l}, b{l}, V, c?) with ``cell``,
    ``activation`` and ``gate``.  Tied output embeddings become the equivalent V; a missing
    output bias becomes zeros.  The bidirectional fill model has no left-to-right recurrence to
    analyse and is refused.
    """
    if isinstance(model, GatedRNNNumpy):
        return model
    if model is not None:
        config = getattr(model, "config", None)
        if config is not None:  # LanguageModel
            if config.bidirectional:
                raise ConfigError("gradient analysis needs a left-to-right model; this one is bidirectional")
            params = dict(model.get_params())
            cell, activation, gate = config.cell, config.activation, config.gate
        elif all(hasattr(model, k) for k in ("U", "V", "W")):  # RNNNumpy or the graph RNN
            p = model.get_params() if hasattr(model, "get_params") else model.params
            params = tutorial_to_general(p["U"], p["V"], p["W"], dtype=np.float64, output_bias=True)
            cell, activation = "rnn", getattr(model, "activation", "tanh")
        else:
            raise ConfigError(f"cannot analyse a {type(model).__name__}: expected a LanguageModel, "
                              "RNN, RNNNumpy or GatedRNNNumpy")
    if params is None:
        raise ConfigError("reference_model needs a model or params")
    params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    if any(k.endswith("_b") for k in params):
        raise ConfigError("gradient analysis needs a left-to-right model; these parameters are bidirectional")
    if "V" not in params:  # tied embeddings: logits = (h Pᵀ) E, i.e. V = Eᵀ P (or Eᵀ when D = H)
        if "E" not in params:
            raise ConfigError("params lack both V and E: no output layer")
        params["V"] = params["E"].T @ params.pop("P") if "P" in params else params["E"].T.copy()
    params.pop("P", None)
    C = params["V"].shape[0]
    params.setdefault("c", np.zeros(C))
    layers = _layers_in(params)
    if layers == 0:
        raise ConfigError("params hold no recurrent layer (W0)")
    H = params["W0"].shape[-1]
    D = params["E"].shape[0] if "E" in params else 0
    return GatedRNNNumpy(cell, C, H, embedding_dim=D, layers=layers, gate=gate, activation=activation,
                         params=params)


def spectral_radius(W) -> float:
    """Largest |eigenvalue| of a square matrix W (H, H)."""
    return _radius(np.asarray(W, dtype=np.float64))


def scale_recurrent(params: dict, scale=None, spectral_radius=None) -> dict:
    """A copy of ``params`` with every recurrent block ``W{l}[g]`` (H, H) rescaled.

    ``scale`` multiplies every block; ``spectral_radius`` instead rescales each block separately
    so that its largest |eigenvalue| equals the target (for an rnn cell: W itself).
    Exactly one of the two must be given.
    """
    if (scale is None) == (spectral_radius is None):
        raise ConfigError("give exactly one of scale and spectral_radius")
    out = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    for name in [k for k in out if k.startswith("W") and k[1:].split("_")[0].isdigit()]:
        W = out[name]
        for g in range(W.shape[0]):
            if scale is not None:
                W[g] *= float(scale)
            else:
                rho = _radius(W[g])
                if rho == 0.0:
                    raise ConfigError(f"{name}[{g}] is zero: cannot rescale it to a spectral radius")
                W[g] *= float(spectral_radius) / rho
    return out


def _radius(W):
    return float(np.max(np.abs(np.linalg.eigvals(W))))


def recurrent_summary(ref: GatedRNNNumpy) -> dict:
    """Spectral radius and spectral norm of every recurrent block: ``{"W0": {"radius": [...],
    "norm": [...]}, ...}`` (one entry per gate block, in :data:`rnnlm.models.reference.GATE_NAMES` order)."""
    out = {}
    for layer in range(ref.layers):
        W = ref.params[f"W{layer}"]
        out[f"W{layer}"] = {"radius": [_radius(w) for w in W],
                            "norm": [float(np.linalg.norm(w, 2)) for w in W]}
    return out


def fresh_model(cell="rnn", vocab_size=8000, hidden_dim=100, activation="tanh", gate="sigmoid", layers=1,
                embedding_dim=0, radius=None, scale=None, seed=0) -> GatedRNNNumpy:
    """A freshly initialised model (:func:`rnnlm.models.reference.init_params`: the tutorial's ±1/√fan_in),
    optionally with W rescaled (:func:`scale_recurrent`: ``radius`` or ``scale``)."""
    params = init_params(cell, vocab_size, hidden_dim, embedding_dim, layers, seed)
    if radius is not None or scale is not None:
        params = scale_recurrent(params, scale=scale, spectral_radius=radius)
    return GatedRNNNumpy(cell, vocab_size, hidden_dim, embedding_dim=embedding_dim, layers=layers, gate=gate,
                         activation=activation, params=params)


def load_reference(path):
    """A checkpoint as a reference model, without a graph engine: ``(GatedRNNNumpy, vocab, meta)``.

    Reads rnnlm checkpoints and the tutorial's ``trained-model-theano.npz`` (U, V, W; vocab None)
    with :func:`rnnlm.training.checkpoint.read_checkpoint`.
    """
    from rnnlm.training.checkpoint import read_checkpoint

    ck = read_checkpoint(path)
    meta = ck["meta"]
    try:
        if ck["tutorial"]:
            p = ck["params"]
            params = tutorial_to_general(p["U"], p["V"], p["W"], dtype=np.float64, output_bias=True)
            return reference_model(params=params), None, meta
        cfg = meta.get("model") or {}
        if cfg.get("bidirectional"):
            raise ConfigError("a bidirectional fill model has no left-to-right recurrence to analyse")
        ref = reference_model(params=ck["params"], cell=cfg.get("cell", "rnn"),
                              activation=cfg.get("activation", "tanh"), gate=cfg.get("gate", "sigmoid"))
    except (ConfigError, KeyError, IndexError, ValueError) as e:
        raise CheckpointError(f"{path}: {e}") from None
    vocab = None
    if meta.get("vocab") is not None:
        from rnnlm.data import Vocabulary

        vocab = Vocabulary.from_json(meta["vocab"])
    return ref, vocab, meta
