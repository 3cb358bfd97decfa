"""PyTorch's usual recipes on rnnlm's splits and budget: the peer a default rnnlm run must beat.

Both train for a wall-clock budget (training steps only, as rnnlm's budget) on the training split and
are scored with rnnlm's one perplexity on the held-out split:

- characters: the recipe of ../shared/anchors/torch_charlm.py (karpathy's char-rnn in PyTorch):
  embedding 64, a 2-layer LSTM of 256, batches of 64 random 64-character windows, Adam 2e-3, global-norm
  clip 5; scored as one stream with the state carried in 256-character chunks.
- words: pytorch/examples' word_language_model defaults: embedding 200, a 2-layer LSTM of 200, dropout
  0.2, SGD at 20 with the rate divided by 4 whenever validation does not improve after an epoch, clip
  0.25, 20 streams of 35 tokens; trained on the sentences as one stream, scored sentence by sentence from
  SENTENCE_START (rnnlm's definition: context does not cross sentences).

PyTorch is optional: :func:`available` says whether it is installed.
"""

from __future__ import annotations

import math
import time

import numpy as np

CHAR_RECIPE = {"embedding": 64, "hidden": 256, "layers": 2, "batch": 64, "steps": 64, "lr": 2e-3, "clip": 5.0}
WORD_RECIPE = {
    "embedding": 200,
    "hidden": 200,
    "layers": 2,
    "dropout": 0.2,
    "batch": 20,
    "steps": 35,
    "lr": 20.0,
    "clip": 0.25,
}


def available() -> bool:
    from rnnlm.bench.machine import optional_module

    return optional_module("torch") is not None


def _model(torch, V, recipe):
    nn = torch.nn

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(V, recipe["embedding"])
            self.drop = nn.Dropout(recipe.get("dropout", 0.0))
            self.rnn = nn.LSTM(
                recipe["embedding"],
                recipe["hidden"],
                recipe["layers"],
                batch_first=True,
                dropout=recipe.get("dropout", 0.0),
            )
            self.out = nn.Linear(recipe["hidden"], V)
            if "dropout" in recipe:  # word_language_model's init
                nn.init.uniform_(self.emb.weight, -0.1, 0.1)
                nn.init.uniform_(self.out.weight, -0.1, 0.1)
                nn.init.zeros_(self.out.bias)

        def forward(self, x, h=None):
            y, h = self.rnn(self.drop(self.emb(x)), h)
            return self.out(self.drop(y)), h

    return LM()


def _stream_nll(torch, model, ids, chunk=256) -> tuple[float, int]:
    """Summed NLL of every token after the first, state carried in ``chunk``-token pieces (batch 1)."""
    model.eval()
    total, h = 0.0, None
    with torch.no_grad():
        for i in range(0, len(ids) - 1, chunk):
            x = torch.as_tensor(ids[i : i + chunk][None], dtype=torch.long)
            y = torch.as_tensor(ids[i + 1 : i + chunk + 1][None], dtype=torch.long)
            x = x[:, : y.shape[1]]
            logits, h = model(x, h)
            total += torch.nn.functional.cross_entropy(logits[0], y[0], reduction="sum").item()
    model.train()
    return total, len(ids) - 1


def _sentence_nll(torch, model, sentences, batch=64) -> tuple[float, int]:
    """Summed NLL of ``s[1:]`` given ``s[:-1]`` for every sentence, from a zero state (rnnlm's definition)."""
    model.eval()
    total, count = 0.0, 0
    seqs = sorted((np.asarray(s, np.int64) for s in sentences if len(s) > 1), key=len)
    with torch.no_grad():
        for k in range(0, len(seqs), batch):
            part = seqs[k : k + batch]
            L = max(len(s) for s in part) - 1
            x = np.zeros((len(part), L), np.int64)
            y = np.full((len(part), L), -100, np.int64)  # ignored positions
            for b, s in enumerate(part):
                x[b, : len(s) - 1], y[b, : len(s) - 1] = s[:-1], s[1:]
            logits, _ = model(torch.as_tensor(x))
            total += torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                torch.as_tensor(y).reshape(-1),
                reduction="sum",
                ignore_index=-100,
            ).item()
            count += int((y >= 0).sum())
    model.train()
    return total, count


def train_char(train_ids, valid_ids, V, budget_s, seed=0, recipe=CHAR_RECIPE) -> dict:
    """The char-rnn recipe for ``budget_s`` seconds; validation nats per character on ``valid_ids``."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = _model(torch, V, recipe)
    opt = torch.optim.Adam(model.parameters(), recipe["lr"])
    data = torch.as_tensor(np.asarray(train_ids, np.int64))
    B, T = recipe["batch"], recipe["steps"]
    steps, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < budget_s:
        ix = rng.integers(0, len(data) - T - 1, B)
        x = torch.stack([data[i : i + T] for i in ix])
        y = torch.stack([data[i + 1 : i + T + 1] for i in ix])
        logits, _ = model(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe["clip"])
        opt.step()
        steps += 1
    seconds = time.monotonic() - t0
    total, n = _stream_nll(torch, model, np.asarray(valid_ids))
    return {
        "recipe": dict(recipe),
        "steps": steps,
        "seconds": round(seconds, 1),
        "tokens_per_s": steps * B * T / seconds,
        "nll": total / n,
        "perplexity": math.exp(total / n),
        "tokens": n,
        "torch": torch.__version__,
    }


def train_word(
    train_sentences, valid_sentences, test_sentences, V, budget_s, seed=0, recipe=WORD_RECIPE
) -> dict:
    """word_language_model's recipe for ``budget_s`` seconds; perplexity of the test sentences (validation
    after each epoch drives the rate, as in the example)."""
    import torch

    torch.manual_seed(seed)
    model = _model(torch, V, recipe)
    stream = np.concatenate([np.asarray(s, np.int64) for s in train_sentences])
    B, T = recipe["batch"], recipe["steps"]
    n = (len(stream) - 1) // B
    xs = torch.as_tensor(stream[: n * B].reshape(B, n))
    ys = torch.as_tensor(stream[1 : n * B + 1].reshape(B, n))
    lr, best, steps, epochs, t0 = recipe["lr"], None, 0, 0, time.monotonic()
    done = False
    while not done:
        h = None
        for i in range(0, n, T):
            x, y = xs[:, i : i + T], ys[:, i : i + T]
            if h is not None:
                h = tuple(v.detach() for v in h)
            logits, h = model(x, h)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
            model.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe["clip"])
            with torch.no_grad():
                for p in model.parameters():
                    p -= lr * p.grad
            steps += 1
            if time.monotonic() - t0 >= budget_s:
                done = True
                break
        epochs += 1
        if not done:
            v = _sentence_nll(torch, model, valid_sentences)
            v = v[0] / max(v[1], 1)
            if best is not None and v >= best:
                lr /= 4.0
            best = v if best is None else min(best, v)
    seconds = time.monotonic() - t0
    total, count = _sentence_nll(torch, model, test_sentences)
    return {
        "recipe": dict(recipe),
        "steps": steps,
        "epochs": epochs,
        "seconds": round(seconds, 1),
        "nll": total / count,
        "perplexity": math.exp(total / count),
        "tokens": count,
        "torch": torch.__version__,
    }
