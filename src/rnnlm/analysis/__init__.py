"""Backpropagation through time and the vanishing gradient, measured (the tutorial's part 3).

The blog post argues that ``∂L_t/∂s_k`` is a product of ``t − k`` per-step Jacobians
``∂s_j/∂s_{j-1} = diag(f'(a_j)) W`` (its ``W^T diag(f')`` is the same product in the transposed,
back-propagation form), so for a tanh RNN with small W it shrinks geometrically with the distance
``t − k``, and truncating BPTT after a few steps loses little.  This package measures all of that on
real sentences for any model:

- :mod:`~rnnlm.analysis.gradients`: :func:`gradient_norms`, ``‖∂L_t/∂s_k‖`` for every k ≤ t and
  ``‖∂s_t/∂s_k‖`` (the Jacobian products; the general cell Jacobians for GRU and LSTM), per
  sentence and averaged over sentences as a function of the distance ``t − k``; :func:`fit_decay`
  turns a curve into a per-step decay factor (the slope of the log-norm against distance,
  exponentiated).
- :mod:`~rnnlm.analysis.truncation`: :func:`truncation_error`, the relative error of truncated BPTT
  against full BPTT as a function of ``bptt_truncate``, for both definitions of
  :meth:`rnnlm.models.reference.RNNNumpy.bptt`; :func:`truncation_training`, what truncation costs
  in training loss (short SGD runs).
- :mod:`~rnnlm.analysis.exploding`: :func:`exploding_gradients`, W rescaled to a growing spectral
  radius; gradient norms with and without global-norm clipping, and a short SGD run with and
  without it.
- :mod:`~rnnlm.analysis.plots`: ``plot_*``, matplotlib Figures (Agg, no pyplot state);
  :func:`save_figure` writes PNGs atomically.
- :mod:`~rnnlm.analysis.models` (:func:`reference_model`, :func:`fresh_model`,
  :func:`load_reference`, :func:`scale_recurrent`, :func:`spectral_radius`) and
  :mod:`~rnnlm.analysis.common` (:func:`select_sentences`, :func:`to_jsonable`).

Everything is NumPy float64 on the reference models of :mod:`rnnlm.models.reference` (no graph engine is
imported): the parameter layout is :class:`rnnlm.models.lm.LanguageModel`'s, so a trained model's
``get_params()`` loads straight in (:func:`reference_model`).
"""

from rnnlm.analysis.common import select_sentences, to_jsonable
from rnnlm.analysis.exploding import exploding_gradients
from rnnlm.analysis.gradients import (
    NORMS,
    fit_decay,
    forward_with_perturbation,
    gradient_norms,
    loss_state_gradients,
    sentence_norms,
    state_jacobians,
)
from rnnlm.analysis.models import (
    fresh_model,
    load_reference,
    recurrent_summary,
    reference_model,
    scale_recurrent,
    spectral_radius,
)
from rnnlm.analysis.plots import plot_decay, plot_exploding, plot_heatmap, plot_truncation, save_figure
from rnnlm.analysis.truncation import truncation_error, truncation_training

__all__ = [
    "NORMS",
    "exploding_gradients",
    "fit_decay",
    "forward_with_perturbation",
    "fresh_model",
    "gradient_norms",
    "load_reference",
    "loss_state_gradients",
    "plot_decay",
    "plot_exploding",
    "plot_heatmap",
    "plot_truncation",
    "recurrent_summary",
    "reference_model",
    "save_figure",
    "scale_recurrent",
    "select_sentences",
    "sentence_norms",
    "spectral_radius",
    "state_jacobians",
    "to_jsonable",
    "truncation_error",
    "truncation_training",
]
