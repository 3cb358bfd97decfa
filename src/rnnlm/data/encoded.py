"""New text encoded with a prepared corpus's vocabulary: :class:`EncodedText` (what
:meth:`rnnlm.data.corpus.Corpus.encode` returns)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EncodedText"]


@dataclass
class EncodedText:
    """New text encoded with a corpus's vocabulary (see :meth:`Corpus.encode`).

    ``n_words`` counts tokens other than SENTENCE_START/SENTENCE_END; ``n_oov`` those not in the
    vocabulary (mapped to the unknown token; a literal unknown token such as ``<unk>`` in the text is
    in the vocabulary and is not counted); ``n_predicted`` is ``sum(len(s) - 1)``: every token after the
    first of a sentence, i.e. the words plus SENTENCE_END at word level -- the count that perplexity
    averages over.
    """

    sentences: list[np.ndarray]
    n_words: int
    n_oov: int
    oov_counts: dict[str, int]
    n_predicted: int
    replacement_chars: int = 0

    @property
    def oov_rate(self) -> float:
        return self.n_oov / self.n_words if self.n_words else 0.0

    def summary(self) -> dict:
        """JSON-ready counts (the sentences themselves left out)."""
        return {
            "sentences": len(self.sentences),
            "words": self.n_words,
            "oov": self.n_oov,
            "oov_rate": self.oov_rate,
            "oov_types": len(self.oov_counts),
            "predicted_tokens": self.n_predicted,
            "replacement_chars": self.replacement_chars,
        }
