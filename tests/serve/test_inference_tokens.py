"""The library pieces under ``rnnlm serve``: per-token scores (:func:`rnnlm.inference.token_scores`) and
token-by-token generation (:class:`rnnlm.inference.GenerationStream`)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnlm import inference
from rnnlm.errors import ConfigError
from rnnlm.training.checkpoint import load_model
from tests.serve.conftest import LINKER

TEXT = "the cat sat on the mat .\nthe zebra looked at a tree today .\nmy friend found the old bridge again ."


@pytest.fixture(scope="module")
def word(word_run):
    return load_model(word_run, linker=LINKER)


@pytest.fixture(scope="module")
def char(char_ckpt):
    return load_model(char_ckpt, linker=LINKER)


def _own_logprobs(model, sentence):
    """log p(s[t+1] | s[:t+1]) from the model's own distribution, one sentence alone: (n,), and the
    distribution rows (n, C)."""
    x = np.asarray(sentence[:-1], np.int32)[:, None]
    d = model.distribution(x)[:, 0].astype(np.float64)
    return d[np.arange(len(sentence) - 1), sentence[1:]], d


def test_word_token_scores_are_the_models_log_probabilities_and_total_is_perplexity(word):
    model, vocab, meta = word
    encoded, tokens, oov = inference.encode_with_tokens(vocab, meta["corpus"], TEXT)
    ts = inference.token_scores(model, encoded, top=5)
    assert ts.predicted == sum(len(s) - 1 for s in encoded.sentences) == encoded.n_predicted
    for i, s in enumerate(encoded.sentences):
        rows = ts.sentence == i
        np.testing.assert_array_equal(ts.position[rows], np.arange(1, len(s)))
        np.testing.assert_array_equal(ts.target[rows], s[1:])
        own, d = _own_logprobs(model, s)
        np.testing.assert_allclose(ts.logprob[rows], own, atol=2e-5)
        # rank: 1 + the number of strictly more probable tokens; top: the 5 most probable, best first
        want_rank = 1 + (d > own[:, None] + 1e-6).sum(axis=1)
        assert np.all(np.abs(ts.rank[rows] - want_rank) <= 1)
        np.testing.assert_allclose(ts.top_logprob[rows], -np.sort(-d, axis=1)[:, :5], atol=2e-5)
        np.testing.assert_allclose(
            np.take_along_axis(d, ts.top_ids[rows].astype(int), 1), ts.top_logprob[rows], atol=2e-5
        )
    # The total is the one perplexity, computed from the very same numbers.
    ppl = inference.perplexity(model, encoded)
    assert ts.total_logprob == ppl.logprob
    assert ts.perplexity == ppl.perplexity and ts.result() == ppl
    assert ts.total_logprob == pytest.approx(ts.logprob.sum(), rel=1e-6)
    np.testing.assert_allclose(ts.surprisal_bits, -ts.logprob / math.log(2))
    assert ts.bits_per_token == pytest.approx(math.log2(ts.perplexity))
    assert ts.oov == encoded.n_oov == sum(int(o.sum()) for o in oov) >= 1


def test_encode_with_tokens_keeps_unknown_words_as_written(word):
    _, vocab, meta = word
    encoded, tokens, oov = inference.encode_with_tokens(vocab, meta["corpus"], TEXT)
    assert tokens[1] == [
        "SENTENCE_START",
        "the",
        "zebra",
        "looked",
        "at",
        "a",
        "tree",
        "today",
        ".",
        "SENTENCE_END",
    ]
    assert oov[1][2] and encoded.sentences[1][2] == vocab.unk_index  # "zebra"
    for t, o in zip(tokens, oov, strict=True):
        assert o.tolist() == [w not in vocab for w in t]
    for s, t, o in zip(encoded.sentences, tokens, oov, strict=True):
        np.testing.assert_array_equal(s, np.where(o, vocab.unk_index, vocab.encode(t)))


def test_char_token_scores_carry_the_state_across_chunks(char):
    model, vocab, meta = char
    text = "the cat sat on the mat .\nthe dog ran to the river again .\n"
    encoded, tokens, _ = inference.encode_with_tokens(vocab, meta["corpus"], text)
    assert "".join("".join(t) for t in tokens) == text
    ts = inference.token_scores(model, encoded, level="char", chunk=7, top=3)  # 8 chunks, state carried
    ppl = inference.perplexity(model, encoded, level="char", chunk=7)
    assert ts.total_logprob == ppl.logprob and ts.perplexity == ppl.perplexity
    stream = np.concatenate(encoded.sentences)
    own, d = _own_logprobs(model, stream)  # the whole stream in one call: no chunks
    np.testing.assert_allclose(ts.logprob, own, atol=5e-5)
    np.testing.assert_array_equal(ts.target, stream[1:])
    np.testing.assert_allclose(np.take_along_axis(d, ts.top_ids.astype(int), 1), ts.top_logprob, atol=5e-5)
    # (line, position) of every predicted character: the first character of the text is not predicted.
    first_line = len(encoded.sentences[0])
    assert ts.sentence[0] == 0 and ts.position[0] == 1
    assert ts.sentence[first_line - 1] == 1 and ts.position[first_line - 1] == 0


def test_token_scores_refuses_what_cannot_be_scored(word, fill_ckpt):
    model, vocab, _ = word
    with pytest.raises(ConfigError, match="nothing to score"):
        inference.token_scores(model, [np.array([vocab.start_index], np.int32)])
    with pytest.raises(ConfigError, match="top"):
        inference.token_scores(model, [np.array([0, 3, 1], np.int32)], top=-1)
    fill_model = load_model(fill_ckpt, linker=LINKER).model
    with pytest.raises(ConfigError, match="fill"):
        inference.token_scores(fill_model, [np.array([0, 3, 1], np.int32)])


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n=3, seed=7),
        dict(n=2, seed=1, temperature=0.7, top_k=5, prime="the cat", min_length=4, max_length=6),
        dict(n=1, mode="greedy", prime="my friend"),
        dict(n=4, seed=2, max_length=3),  # rows cut off at max_length
    ],
)
def test_generation_stream_gives_generate_token_by_token(word, kwargs):
    model, vocab, _ = word
    want = inference.generate(model, vocab, **kwargs)
    stream = inference.GenerationStream(model, vocab, **kwargs)
    events = list(stream)
    assert [g.to_json() for g in stream.results] == [g.to_json() for g in want]
    for r, g in enumerate(want):
        mine = [e for e in events if e.row == r]
        assert [e.id for e in mine if not e.end] == g.ids
        assert [e.token for e in mine if not e.end] == g.tokens[len(g.prefix) :]
        assert any(e.end for e in mine) == g.ended and (not g.ended or mine[-1].end)
        assert sum(e.logprob for e in mine) == pytest.approx(g.logprob, abs=1e-9)
        assert stream.prefix == g.prefix
    # Events come step by step: each row's k-th token before any row's (k+1)-th.
    steps = [sum(1 for e in events[:i] if e.row == ev.row) for i, ev in enumerate(events)]
    assert steps == sorted(steps)


def test_generation_stream_char_level_and_early_stop(char):
    model, vocab, _ = char
    want = inference.generate(model, vocab, 2, seed=5, prime="the ", max_length=30, temperature=1.5)
    stream = inference.GenerationStream(model, vocab, 2, seed=5, prime="the ", max_length=30, temperature=1.5)
    assert stream.prefix_text == "the "
    assert [g.text for g in (list(stream) and stream.results)] == [g.text for g in want]
    # Stopping early: what was drawn so far, rendered.
    stream = inference.GenerationStream(model, vocab, 1, seed=5, prime="the ", max_length=30, temperature=1.5)
    for i, _ in enumerate(stream):
        if i == 4:
            break
    partial = stream.generations()[0]
    one = inference.generate(model, vocab, 1, seed=5, prime="the ", max_length=30, temperature=1.5)[0]
    assert partial.text == one.text[: len("the ") + 5] and not partial.ended and stream.results is None
    with pytest.raises(ConfigError, match="once"):
        iter(stream)
