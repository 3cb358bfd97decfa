"""--size auto: the rule's choices, and every value the user gives wins."""

import pytest

from rnnlm.errors import ConfigError
from rnnlm.training.sizing import auto_learning_rate, auto_model, complete


def test_word_rule_grows_the_model_and_shrinks_dropout_with_the_corpus():
    small, mid, big = (auto_model("word", n, 5000) for n in (20_000, 300_000, 5_000_000))
    assert [m["hidden_dim"] for m in (small, mid, big)] == [128, 256, 512]
    assert [m["dropout"] for m in (small, mid, big)] == [0.6, 0.5, 0.3]
    for m in (small, mid, big):
        assert m["cell"] == "lstm" and m["layers"] == 1 and m["tie_embeddings"]
        assert m["embedding_dim"] == m["hidden_dim"]  # tied without a projection
    assert not auto_model("word", 20_000, 5000, task="fill")["tie_embeddings"]


def test_char_rule_is_a_two_layer_gru_sized_by_corpus_and_budget():
    def pick(n, budget):
        m = auto_model("char", n, 65, budget_s=budget)
        assert (m["cell"], m["layers"], m["embedding_dim"], m["tie_embeddings"]) == ("gru", 2, 64, False)
        return m["hidden_dim"], m["dropout"]

    assert pick(1_000_000, None) == pick(1_000_000, 600) == pick(1_000_000, 450) == (384, 0.3)
    assert pick(1_000_000, 300) == pick(1_000_000, 240) == (256, 0.2)  # a shorter budget: more steps
    assert pick(1_000_000, 180) == pick(1_000_000, 239) == (256, 0.0)  # ... and too few epochs to overfit
    assert pick(10_000_000, None) == pick(10_000_000, 60) == (512, 0.2)
    assert auto_learning_rate("char", "adam") == 6e-3 and auto_learning_rate("word", "adam") == 5e-3
    assert auto_learning_rate("word", "sgd") is None
    got, chosen = complete(None, "char", 1_000_000, 65, budget_s=120)
    assert got["hidden_dim"] == 256 and "hidden_dim" in chosen


def test_given_values_win_and_the_rest_is_reported():
    got, chosen = complete({"hidden_dim": 64, "cell": "gru"}, "word", 20_000, 5000)
    assert got["hidden_dim"] == 64 and got["cell"] == "gru"
    assert got["embedding_dim"] == 64  # tied: the embedding follows the width the user gave
    assert "hidden_dim" not in chosen and "cell" not in chosen and "dropout" in chosen
    got, chosen = complete({"embedding_dim": 0}, "word", 20_000, 5000)  # the tutorial's one-hot input
    assert got["embedding_dim"] == 0 and not got["tie_embeddings"] and got["embed_dropout"] == 0.0
    got, chosen = complete({"hidden_dim": 32}, "word", 20_000, 5000, auto=False)
    assert got == {"hidden_dim": 32} and chosen == []
    with pytest.raises(ConfigError):
        complete({"width": 3}, "word", 100, 10)
