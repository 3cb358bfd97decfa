"""``--size auto``: model settings chosen from the corpus, by a measured rule.

The rule (docs/quality.md has the runs behind it) picks the cell, depth, width, embedding, dropout, tying
and Adam's learning rate from the number of training tokens, the level and the time budget; every value
the user gives wins. The chosen values are printed by ``rnnlm train`` and stored in the checkpoint like any
other setting.

- Character level: a 2-layer GRU, embedding 64, no tying, Adam 6e-3; below 3M training characters
  H = 384 with locked dropout 0.3, or under a time budget below 7.5 minutes H = 256 (more steps in the
  time) with dropout 0.2, or none below 4 minutes (too few epochs to overfit); 512 with 0.2 above 3M.
  Measured on tinyshakespeare (1M training characters, last 10% held out, 2 cores): at a 3-minute budget
  GRU 2x256 reached 1.471 nats/char at Adam 4e-3 (1.469 at 6e-3, 1.530 at 2e-3) against 1.884 for
  char-rnn's 2-layer LSTM at 2e-3 (1.751 at 4e-3) -- the GRU runs more steps in the time and learns faster
  per step; at 10 minutes 2x256 with dropout 0.2 gave 1.464 at 4e-3 and 1.446 at 6e-3, 2x384 with dropout
  0.3 1.441 at 4e-3 and 1.434 at 6e-3, 2x512 with 0.4 1.439 at 4e-3; at 5 minutes (6e-3) 2x256 (0.2)
  1.457 against 2x384 (0.3) 1.469; at 3 minutes 2x384 (0.3) 1.504, 2x256 (0.2) 1.484, 2x256 without
  dropout 1.469.
- Word level: a 1-layer LSTM with tied input/output embeddings (D = H, so no projection), Adam 5e-3, and
  locked dropout that shrinks as the corpus grows: H = 128 with dropout 0.6 (embedding 0.2) below 50k
  training tokens, 256 with 0.5 (0.1) below 1M, 512 with 0.3 (0.05) above. Measured: on the reddit sample
  (21k tokens) 1×128 beat 2×128 and 1×256 (valid ppl 50.8 vs 59.2 and 53.1 after 40 epochs, KN-3 52.1);
  on tinyshakespeare words (250k) 1×256 beat 2×256 (90.3 vs 112.5 after 8 epochs, KN-3 104.4).
"""

from __future__ import annotations

import dataclasses

from rnnlm.errors import ConfigError

#: Model fields the rule fills when the caller leaves them unset.
AUTO_FIELDS = ("cell", "layers", "hidden_dim", "embedding_dim", "dropout", "embed_dropout", "tie_embeddings")


#: Budgets (seconds) below which a small character corpus gets the narrower model (more steps in the time),
#: and below which that model gets no dropout (too few epochs to overfit).
NARROW_BELOW_S, NO_DROPOUT_BELOW_S = 450.0, 240.0


def auto_model(level: str, train_tokens: int, vocab_size: int, task: str = "lm",
               budget_s: float | None = None) -> dict:
    """The rule's settings (``ModelConfig`` fields) for a corpus of ``train_tokens`` at ``level``, trained
    for ``budget_s`` seconds (None: no time budget)."""
    if level == "char":
        big = train_tokens >= 3_000_000
        if big:
            h, drop = 512, 0.2
        elif budget_s is None or budget_s >= NARROW_BELOW_S:
            h, drop = 384, 0.3
        else:
            h, drop = 256, (0.2 if budget_s >= NO_DROPOUT_BELOW_S else 0.0)
        return {
            "cell": "gru",
            "layers": 2,
            "hidden_dim": h,
            "embedding_dim": 64,
            "dropout": drop,
            "embed_dropout": 0.0,
            "tie_embeddings": False,
        }
    if level != "word":
        raise ConfigError(f"unknown level {level!r}")
    if train_tokens < 50_000:
        h, drop, edrop = 128, 0.6, 0.2
    elif train_tokens < 1_000_000:
        h, drop, edrop = 256, 0.5, 0.1
    else:
        h, drop, edrop = 512, 0.3, 0.05
    return {
        "cell": "lstm",
        "layers": 1,
        "hidden_dim": h,
        "embedding_dim": h,
        "dropout": drop,
        "embed_dropout": edrop,
        "tie_embeddings": task != "fill",
    }


def auto_learning_rate(level: str, optimizer: str) -> float | None:
    """Adam's rate by level (the rule above); None (the optimizer's default) for the others."""
    if optimizer != "adam":
        return None
    return 6e-3 if level == "char" else 5e-3


def complete(
    settings: dict | None,
    level: str,
    train_tokens: int,
    vocab_size: int,
    task: str = "lm",
    auto: bool = True,
    budget_s: float | None = None,
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
    rule = auto_model(level, train_tokens, vocab_size, task, budget_s)
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
