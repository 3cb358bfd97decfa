"""An RNN and an n-gram model mixed token by token (Mikolov et al., 2011: RNN + Kneser–Ney beats both).

``p(w | h) = λ p_rnn(w | h) + (1 − λ) p_ngram(w | h)``, for every predicted token (the one perplexity's
tokens). λ is tuned on held-out text by EM, which maximises the mixture's likelihood (the log-likelihood
is concave in λ, so EM converges to the optimum).
"""

from __future__ import annotations

import numpy as np

from rnnlm.errors import ConfigError
from rnnlm.inference.scoring import perplexity_of, sentence_token_logprobs, stream_token_logprobs


def mix(lp_a, lp_b, lam: float) -> np.ndarray:
    """Elementwise ``log(λ e^a + (1 − λ) e^b)`` of two arrays of log-probabilities (float64)."""
    if not 0.0 <= lam <= 1.0:
        raise ConfigError(f"lambda must be in [0, 1], got {lam}")
    a, b = np.asarray(lp_a, np.float64), np.asarray(lp_b, np.float64)
    if lam == 1.0:
        return a.copy()
    if lam == 0.0:
        return b.copy()
    return np.logaddexp(np.log(lam) + a, np.log1p(-lam) + b)


def tune_lambda(lp_a, lp_b, iterations: int = 200, tol: float = 1e-7) -> float:
    """The λ in [0, 1] that maximises the mixture's mean log-likelihood on these tokens (EM)."""
    a, b = np.asarray(lp_a, np.float64), np.asarray(lp_b, np.float64)
    if a.shape != b.shape or not a.size:
        raise ConfigError("tuning lambda needs the two models' log-probabilities of the same tokens")
    lam = 0.5
    for _ in range(iterations):
        post = np.exp(np.log(lam) + a - mix(a, b, lam))  # responsibility of model a for each token
        new = float(post.mean())
        if abs(new - lam) < tol:
            return new
        lam = new
    return lam


def token_logprobs(model, ngram, sequences, level: str = "word", batch_size: int = 32):
    """``(rnn, ngram)`` log-probabilities of the same predicted tokens (1-D float64 arrays): word level
    sentence by sentence from SENTENCE_START, char level as one stream."""
    seqs = [np.asarray(s, np.int32).reshape(-1) for s in sequences]
    if ngram.vocab_size != model.config.vocab_size:
        raise ConfigError(
            f"the n-gram model has {ngram.vocab_size} tokens, the RNN {model.config.vocab_size}: "
            "they were not trained on the same vocabulary"
        )
    if level == "char":
        stream = np.concatenate(seqs) if seqs else np.zeros(0, np.int32)
        return stream_token_logprobs(model, stream), ngram.token_logprobs(stream, stream=True)[0]
    rnn = sentence_token_logprobs(model, seqs, batch_size)
    kn = ngram.token_logprobs(seqs)
    return np.concatenate([np.zeros(0), *rnn]), np.concatenate([np.zeros(0), *kn])


def interpolated(lp_rnn, lp_ngram, lam: float) -> dict:
    """Perplexities of the RNN, the n-gram and their mixture at ``lam`` on the same tokens."""
    n = len(lp_rnn)
    mixed = mix(lp_rnn, lp_ngram, lam)
    return {
        "lambda": lam,
        "tokens": n,
        "rnn": perplexity_of(-lp_rnn.sum(), n),
        "ngram": perplexity_of(-lp_ngram.sum(), n),
        "interpolated": perplexity_of(-mixed.sum(), n),
        "nll": float(-mixed.sum() / n) if n else float("nan"),
    }
