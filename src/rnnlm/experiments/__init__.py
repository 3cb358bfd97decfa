"""The tutorial's experiments reproduced, as functions that return plain dicts.

- :func:`~rnnlm.experiments.part4.reproduce_part4`: part 4's two-layer GRU trained on reddit
  comments for a time budget (:data:`PART4`): loss curve, generated sentences, time per step.
- :func:`~rnnlm.experiments.fill_vs_lm.fill_vs_lm`: part 1's bidirectional RNN as a
  fill-in-the-blank model against a left-to-right language model of the same size, trained for
  the same time, scored by top-1 masked-word accuracy (:mod:`~rnnlm.experiments.masked`).
"""

from rnnlm.experiments.fill_vs_lm import fill_vs_lm
from rnnlm.experiments.masked import masked_word_accuracy, masked_word_predictions, unigram_baseline
from rnnlm.experiments.part4 import PART4, reproduce_part4

__all__ = [
    "PART4",
    "fill_vs_lm",
    "masked_word_accuracy",
    "masked_word_predictions",
    "reproduce_part4",
    "unigram_baseline",
]
