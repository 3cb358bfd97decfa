"""Part 2 of the tutorial, end to end: real sentences, the fresh-model loss, train_with_sgd."""

import numpy as np
import pytest

from rnnlm.data import prepare
from rnnlm.models.reference import RNNNumpy
from rnnlm.models.tutorial import RNN
from rnnlm.training.tutorial import train_with_sgd


@pytest.fixture(scope="module")
def reddit(reddit_csv):
    corpus = prepare(reddit_csv, vocab_size=400, splitter="trained")
    X, Y = corpus.xy()
    return corpus, X[:100], Y[:100]


@pytest.fixture(scope="module")
def graph_rnn(reddit):
    corpus, _, _ = reddit
    return RNN(len(corpus.vocab), hidden_dim=16, bptt_truncate=4, seed=10)


@pytest.mark.core
def test_fresh_model_loss_on_real_sentences_is_ln_C(reddit, graph_rnn):
    corpus, X, Y = reddit
    C = len(corpus.vocab)
    assert abs(graph_rnn.calculate_loss(X, Y) - np.log(C)) < 0.1
    ref = RNNNumpy(C, 16, seed=10)
    assert abs(ref.calculate_loss(X, Y) - np.log(C)) < 0.1


@pytest.mark.core
def test_train_with_sgd_on_100_reddit_sentences_lowers_the_loss(reddit, graph_rnn):
    _, X, Y = reddit
    before = graph_rnn.calculate_loss(X, Y)
    losses = train_with_sgd(graph_rnn, X, Y, learning_rate=0.05, nepoch=3, evaluate_loss_after=1)
    after = graph_rnn.calculate_loss(X, Y)
    assert losses[0][1] == pytest.approx(before, rel=1e-4)
    assert after < before - 0.3


def test_learning_rate_halves_when_the_loss_rises():
    """A model whose loss goes up at the second evaluation: the tutorial's rule must fire."""

    class Rising:
        def __init__(self):
            self.evals, self.lrs = 0, []

        def calculate_loss(self, X, Y):
            self.evals += 1
            return [1.0, 2.0, 1.5, 3.0][self.evals - 1]

        def sgd_step(self, x, y, lr):
            self.lrs.append(float(lr))

    m = Rising()
    seen = []
    train_with_sgd(
        m,
        [[1]],
        [[2]],
        learning_rate=0.4,
        nepoch=4,
        evaluate_loss_after=1,
        callback=lambda **kw: seen.append(kw["learning_rate"]),
    )
    assert seen == [0.4, 0.2, 0.2, 0.1]
    assert m.lrs == pytest.approx([0.4, 0.2, 0.2, 0.1])


def test_numpy_reference_and_graph_train_identically(reddit):
    corpus, X, Y = reddit
    C = len(corpus.vocab)
    graph = RNN(C, 12, bptt_truncate=-1, seed=2)
    ref = RNNNumpy(
        C, 12, bptt_truncate=-1, params={k: v.astype("float64") for k, v in graph.get_params().items()}
    )
    train_with_sgd(graph, X[:10], Y[:10], learning_rate=0.01, nepoch=1)
    train_with_sgd(ref, X[:10], Y[:10], learning_rate=0.01, nepoch=1)
    for k, v in graph.get_params().items():
        np.testing.assert_allclose(v, getattr(ref, k), rtol=1e-3, atol=1e-5)
