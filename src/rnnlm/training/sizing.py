"""``--size auto``: model settings chosen from the corpus and the time budget, by a measured rule.

The rule (docs/quality.md has the runs behind it) picks the cell, depth, width, embedding, dropout and
tying from the number of training tokens and the level; every value the user gives wins. The chosen
values are printed by ``rnnlm train`` and stored in the checkpoint like any other setting.

- Character level: a 2-layer LSTM (char-rnn's and PyTorch's usual recipe), embedding 64, no tying;
  H = 256 below 3M training characters, 512 above; dropout 0 below 3M characters (a 10-minute budget
  on two cores sees the corpus only a handful of times: the model underfits), 0.2 above.
- Word level: a 2-layer LSTM with tied input/output embeddings (D = H, so no projection), H chosen
  so that the parameters stay about 25 per training token, between 128 and 512; locked dropout 0.5 on
  the layers and 0.1 on the embedding below a million training tokens (small corpora overfit within a
  few epochs), 0.3 / 0.05 above.
"""

from __future__ import annotations

import dataclasses

from rnnlm.errors import ConfigError

#: Model fields the rule fills when the caller leaves them unset.
AUTO_FIELDS = ("cell", "layers", "hidden_dim", "embedding_dim", "dropout", "embed_dropout", "tie_embeddings")


def _round(h: float) -> int:
    return int(max(128, min(512, round(h / 64) * 64)))


def auto_model(level: str, train_tokens: int, vocab_size: int, task: str = "lm") -> dict:
    """The rule's settings (``ModelConfig`` fields) for a corpus of ``train_tokens`` at ``level``."""
    if level == "char":
        big = train_tokens >= 3_000_000
        return {
            "cell": "lstm",
            "layers": 2,
            "hidden_dim": 512 if big else 256,
            "embedding_dim": 64,
            "dropout": 0.2 if big else 0.0,
            "embed_dropout": 0.0,
            "tie_embeddings": False,
        }
    if level != "word":
        raise ConfigError(f"unknown level {level!r}")
    # Parameters of a 2-layer tied LSTM: V·H (embedding = output) + 2 layers · 8·H² (+ biases).
    budget = 25.0 * train_tokens
    h = 128
    while h < 512 and vocab_size * (h + 64) + 16 * (h + 64) ** 2 <= budget:
        h += 64
    small = train_tokens < 1_000_000
    return {
        "cell": "lstm",
        "layers": 2,
        "hidden_dim": _round(h),
        "embedding_dim": _round(h),
        "dropout": 0.5 if small else 0.3,
        "embed_dropout": 0.1 if small else 0.05,
        "tie_embeddings": task != "fill",
    }


def complete(
    settings: dict | None, level: str, train_tokens: int, vocab_size: int, task: str = "lm", auto: bool = True
) -> tuple[dict, list]:
    """``settings`` (ModelConfig fields the user gave) completed by :func:`auto_model` when ``auto``;
    returns ``(settings, names of the fields the rule chose)``."""
    from rnnlm.models.lm import ModelConfig

    settings = dict(settings or {})
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = set(settings) - known
    if unknown:
        raise ConfigError(f"unknown model settings: {', '.join(sorted(unknown))}")
    if not auto:
        return settings, []
    rule = auto_model(level, train_tokens, vocab_size, task)
    if (
        settings.get("embedding_dim") == 0 or task == "fill"
    ):  # one-hot input, or the fill model: nothing to tie
        rule["tie_embeddings"] = False
        rule["embed_dropout"] = 0.0
    if settings.get("tie_embeddings") and "embedding_dim" not in settings and "hidden_dim" in settings:
        rule["embedding_dim"] = settings["hidden_dim"]  # tie without a projection
    if "hidden_dim" in settings and "embedding_dim" not in settings and rule.get("tie_embeddings"):
        rule["embedding_dim"] = settings["hidden_dim"]
    chosen = [k for k in AUTO_FIELDS if k not in settings]
    for k in chosen:
        settings[k] = rule[k]
    return settings, chosen
