"""Inference on a trained model: sampling and greedy decoding (:mod:`~rnnlm.inference.sampling`), beam search
(:mod:`~rnnlm.inference.beam`), scoring and the one perplexity (:mod:`~rnnlm.inference.scoring`), per-token
scores (:mod:`~rnnlm.inference.tokens`) and fill-in-the-blank (:mod:`~rnnlm.inference.fill`). These
functions take a model object; none imports the engine itself."""

from rnnlm.inference.beam import Hypothesis, beam_search
from rnnlm.inference.decoding import SpecialIds, encode_prime, prime_state, special_ids
from rnnlm.inference.fill import BLANK, fill, fill_distribution
from rnnlm.inference.sampling import (
    Generation,
    GenerationStream,
    TokenEvent,
    adjust_distribution,
    generate,
    generate_sentence,
)
from rnnlm.inference.scoring import (
    PerplexityResult,
    SentenceScores,
    perplexity,
    perplexity_of,
    sentence_logprob,
    stream_logprob,
)
from rnnlm.inference.tokens import TokenScores, encode_with_tokens, token_scores

__all__ = [
    "BLANK",
    "Generation",
    "GenerationStream",
    "Hypothesis",
    "PerplexityResult",
    "SentenceScores",
    "SpecialIds",
    "TokenEvent",
    "TokenScores",
    "adjust_distribution",
    "beam_search",
    "encode_prime",
    "encode_with_tokens",
    "fill",
    "fill_distribution",
    "generate",
    "generate_sentence",
    "perplexity",
    "perplexity_of",
    "prime_state",
    "sentence_logprob",
    "special_ids",
    "stream_logprob",
    "token_scores",
]
