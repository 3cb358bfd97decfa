"""rnnlm.experiments.masked: masked-word guesses and the unigram baseline."""

import numpy as np
import pytest

from rnnlm import engine
from rnnlm.data import SENTENCE_END, SENTENCE_START, Corpus
from rnnlm.errors import ConfigError
from rnnlm.models.lm import LanguageModel, ModelConfig

LINKER = engine.default_linker()


def test_masked_word_predictions_never_guess_special_tokens_and_lm_ignores_the_right():
    """An untrained LM's guess for w_t cannot depend on words right of t; no guess is START/END/UNK."""
    from rnnlm.experiments import masked_word_predictions

    corpus = Corpus.from_tokens([["a", "b", "c", "d"]] * 3)
    v = corpus.vocab
    model = LanguageModel(ModelConfig(vocab_size=len(v), hidden_dim=6, cell="rnn"), seed=0, linker=LINKER)
    banned = (v.start_index, v.end_index, v.unk_index)
    s1 = np.array(v.encode([SENTENCE_START, "a", "b", "c", "d", SENTENCE_END]))
    s2 = np.array(v.encode([SENTENCE_START, "a", "b", "d", "a", SENTENCE_END]))
    p1, p2 = masked_word_predictions(model, [s1, s2], banned, batch_size=2, lengths=(8,))
    assert p1.shape == (4,)
    assert p1[0] == p2[0] and p1[1] == p2[1] and p1[2] == p2[2]  # same left contexts
    assert not set(np.concatenate([p1, p2]).tolist()) & set(banned)
    with pytest.raises(ConfigError, match="longer"):
        masked_word_predictions(model, [np.arange(9) % len(v)], banned, lengths=(8,))


def test_unigram_baseline_guesses_the_most_frequent_word():
    from rnnlm.experiments import unigram_baseline

    corpus = Corpus.from_tokens([["a", "b", "a"], ["a", "c"], ["b", "zz"]], vocab_size=5)  # zz: unknown
    v = corpus.vocab
    test = [v.encode([SENTENCE_START, "b", "a", "zz", SENTENCE_END])]
    res = unigram_baseline(corpus.sentences, test, v)
    assert res["word"] == "a"  # START/END are more frequent but never guessed
    assert (res["correct"], res["positions"]) == (1, 2)  # the unknown word is not scored
