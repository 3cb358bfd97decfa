"""Generation, beam search, scoring, perplexity and fill-in-the-blank (rnnlm.inference).

Most tests use a hand-set bigram model: a tanh RNN with H = C, U0 = 10·I and W0 = 0, so
s_t = tanh(10·e_{x_t}) is (to float32 precision) the one-hot vector of the last token, and V's
column j holds log p(· | j). Its probabilities are a table written below, so the best sentence,
greedy's choice and the perplexity of a text can be worked out by hand.
"""

import math

import numpy as np
import pytest

from rnnlm import engine
from rnnlm import inference as sample
from rnnlm.data import Corpus, Vocabulary
from rnnlm.errors import ConfigError
from rnnlm.models.lm import LanguageModel, ModelConfig, init_params

LINKER = engine.default_linker()

WORDS = ["SENTENCE_START", "SENTENCE_END", "a", "b", "c", "d", "UNKNOWN_TOKEN"]
S, E, A, B, C_, D, UNK = range(7)
NV = len(WORDS)
EPS = 1e-12  # "impossible" transitions (V must stay finite)
# p(next | previous): START -> UNK .4 (most probable: must never be emitted by default), a .33, b .27;
# a -> END .3, c .36, d .34; b -> END .9, c .1; c, d, UNK -> END.
TABLE = {
    S: {UNK: 0.4, A: 0.33, B: 0.27},
    A: {E: 0.3, C_: 0.36, D: 0.34},
    B: {E: 0.9, C_: 0.1},
    C_: {E: 1.0},
    D: {E: 1.0},
    UNK: {E: 1.0},
}


def _bigram_params():
    P = np.full((NV, NV), EPS)
    P[E] = 1.0 / NV  # END is never an input of a scored sentence; any row will do
    for prev, row in TABLE.items():
        for nxt, p in row.items():
            P[prev, nxt] = p
    P /= P.sum(axis=1, keepdims=True)
    return {
        "U0": (10 * np.eye(NV))[None].astype("float32"),
        "W0": np.zeros((1, NV, NV), "float32"),
        "b0": np.zeros((1, NV), "float32"),
        "V": np.log(P).T.astype("float32"),
    }


@pytest.fixture(scope="module")
def bigram():
    cfg = ModelConfig(vocab_size=NV, hidden_dim=NV, cell="rnn", output_bias=False)
    return LanguageModel(cfg, params=_bigram_params(), linker=LINKER), Vocabulary(WORDS)


def _encoder(vocab):
    """A corpus that reads new text as whitespace-separated lines (one sentence per line)."""
    return Corpus(
        vocab, [], "word", settings={"format": "lines", "tokenizer": "whitespace", "lowercase": False}
    )


@pytest.mark.core
def test_greedy_misses_the_best_sentence_beam_finds_it(bigram):
    model, vocab = bigram
    greedy = sample.generate_sentence(model, vocab, mode="greedy")
    # Greedy takes a (.33 > .27), then c (.36), then END: p = .33·.36 = .1188.
    assert greedy.ids == [A, C_] and greedy.ended
    assert greedy.logprob == pytest.approx(math.log(0.33 * 0.36), abs=1e-5)
    # The best sentence is "b" (p(b)·p(END|b) = .27·.9 = .243); a beam of 2 finds it.
    beams = sample.beam_search(model, vocab, beam_size=2, max_length=10)
    tokens, logprob = beams[0]
    assert tokens == [B] and beams[0].ended and beams[0].text == "b"
    assert logprob == pytest.approx(math.log(0.27 * 0.9), abs=1e-5)
    assert [h.tokens for h in beams] == [[B], [A, C_]]
    # A beam of one is greedy decoding.
    assert [h.tokens for h in sample.beam_search(model, vocab, beam_size=1)] == [[A, C_]]


@pytest.mark.core
def test_hand_computed_perplexity_with_oov(bigram):
    model, vocab = bigram
    encoded = _encoder(vocab).encode(["a c", "b", "zzz"])  # zzz is not in the vocabulary
    assert encoded.n_oov == 1 and encoded.n_predicted == 7
    # Predicted tokens: a c END | b END | UNK END  (START excluded, END included).
    probs = [0.33, 0.36, 1.0, 0.27, 0.9, 0.4, 1.0]
    want = math.exp(-sum(math.log(p) for p in probs) / len(probs))
    result = sample.perplexity(model, encoded)
    assert result.predicted == 7 and result.oov == 1 and result.words == 4 and result.sentences == 3
    assert result.perplexity == pytest.approx(want, rel=1e-5)
    scores = sample.sentence_logprob(model, encoded.sentences, batch_size=2)
    np.testing.assert_array_equal(scores.ntok, [3, 2, 2])
    np.testing.assert_allclose(scores.logprob, np.log([0.33 * 0.36, 0.27 * 0.9, 0.4]), atol=1e-5)
    np.testing.assert_allclose(scores.perplexity, np.exp(-scores.logprob / [3, 2, 2]))


def test_beam_never_emits_unk_and_handles_a_beam_larger_than_the_vocabulary(bigram):
    model, vocab = bigram
    beams = sample.beam_search(model, vocab, beam_size=3 * NV, max_length=4)
    assert len(beams) == 3 * NV
    seqs = [tuple(h.tokens) for h in beams]
    assert len(set(seqs)) == len(seqs), "duplicate hypotheses"
    assert all(UNK not in s and S not in s and E not in s and len(s) <= 4 for s in seqs)
    scores = [h.score for h in beams]
    assert scores == sorted(scores, reverse=True)
    # Every reported log-probability is the model's own (unscaled) probability of that sentence.
    ended = [h for h in beams if h.ended][:6]
    got = sample.sentence_logprob(model, [[S, *h.tokens, E] for h in ended]).logprob
    np.testing.assert_allclose([h.logprob for h in ended], got, atol=1e-4)
    # Asked to, it may emit the unknown token: "UNK END" (.4) is then the best sentence.
    best = sample.beam_search(model, vocab, beam_size=2, allow_unk=True)[0]
    assert best.tokens == [UNK] and best.logprob == pytest.approx(math.log(0.4), abs=1e-5)


def test_beam_max_length_and_length_penalty(bigram):
    model, vocab = bigram
    short = sample.beam_search(model, vocab, beam_size=4, max_length=1)
    assert all(len(h.tokens) <= 1 for h in short)
    assert [h.tokens for h in short if h.ended][:2] == [[B], [A]]
    # alpha = 4: GNMT's ((5+|Y|)/6)^alpha lets "a c" (3 tokens with END) beat "b" (2 tokens);
    # the reported log-probabilities stay unscaled. (max_length 3: a penalty this strong would
    # otherwise prefer a 100-word chain of "impossible" 1e-12 transitions.)
    long = sample.beam_search(model, vocab, beam_size=4, length_penalty=4.0, max_length=3)
    assert long[0].tokens == [A, C_]
    assert long[0].logprob == pytest.approx(math.log(0.33 * 0.36), abs=1e-5)
    assert long[0].score == pytest.approx(long[0].logprob / (8 / 6) ** 4, rel=1e-6)
    with pytest.raises(ConfigError):
        sample.beam_search(model, vocab, beam_size=0)


def test_sampling_follows_the_renormalised_model_and_length_rules(bigram):
    model, vocab = bigram
    n = 2000
    first = sample.generate(model, vocab, n, seed=1, max_length=1)
    words = [g.ids[0] for g in first]
    assert UNK not in words and S not in words
    # Without UNK, START -> a has .33/.60 = .55 and b .45 (4 standard deviations: .045).
    assert abs(words.count(A) / n - 0.55) < 0.045
    # max_length 1: "b" usually ends (p .9); "a" is cut off unless END (p .3) follows.
    b_ended = np.mean([g.ended for g in first if g.ids == [B]])
    assert abs(b_ended - 0.9) < 0.05
    cut = [g for g in first if not g.ended]
    assert cut and all(len(g.ids) == 1 for g in cut)
    # min_length 2: END is never drawn before two words.
    gens = sample.generate(model, vocab, 300, seed=2, min_length=2, max_length=3)
    assert all(2 <= len(g.ids) <= 3 and UNK not in g.ids and S not in g.ids for g in gens)
    assert all(len(g.ids) == 3 for g in gens if not g.ended)
    # Greedy ignores temperature; a seed reproduces a sample.
    a = sample.generate(model, vocab, 20, seed=7, temperature=1.5)
    assert [g.ids for g in a] == [g.ids for g in sample.generate(model, vocab, 20, seed=7, temperature=1.5)]
    with pytest.raises(ConfigError):
        sample.generate(model, vocab, min_length=5, max_length=2)


def test_temperature_and_top_k_direction():
    logp = np.log([0.5, 0.3, 0.2])
    np.testing.assert_allclose(sample.adjust_distribution(logp, 1.0), [0.5, 0.3, 0.2])
    sharp = sample.adjust_distribution(logp, 0.5)  # p^2, renormalised
    np.testing.assert_allclose(sharp, np.array([0.25, 0.09, 0.04]) / 0.38)
    flat = sample.adjust_distribution(logp, 2.0)  # sqrt(p), renormalised
    np.testing.assert_allclose(flat, np.sqrt([0.5, 0.3, 0.2]) / np.sqrt([0.5, 0.3, 0.2]).sum())
    assert sharp[0] > 0.5 > flat[0]
    np.testing.assert_allclose(sample.adjust_distribution(logp, 1.0, top_k=2), [0.625, 0.375, 0.0])
    np.testing.assert_allclose(
        sample.adjust_distribution(logp, 1.0, forbidden=np.array([True, False, False])), [0.0, 0.6, 0.4]
    )
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ConfigError):
            sample.adjust_distribution(logp, bad)


def test_scores_are_unchanged_by_sampling_at_any_temperature(bigram):
    model, vocab = bigram
    encoded = _encoder(vocab).encode(["a c", "b", "a d", "b c", "a"])
    before = sample.sentence_logprob(model, encoded.sentences).logprob.copy()
    ppl = sample.perplexity(model, encoded).perplexity
    params = {k: v.copy() for k, v in model.get_params().items()}
    for t, k in ((0.2, 0), (1.0, 2), (5.0, 0), (50.0, 3)):
        sample.generate(model, vocab, 4, seed=3, temperature=t, top_k=k)
        np.testing.assert_array_equal(sample.sentence_logprob(model, encoded.sentences).logprob, before)
        assert sample.perplexity(model, encoded).perplexity == ppl
    for k, v in model.get_params().items():
        np.testing.assert_array_equal(v, params[k])


# --------------------------------------------------------------------------------------------------
# priming and the carried state, on a model whose state matters (GRU, 2 layers)
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gru_word():
    words = ["SENTENCE_START", "SENTENCE_END"] + [f"w{i}" for i in range(9)] + ["UNKNOWN_TOKEN"]
    cfg = ModelConfig(vocab_size=len(words), hidden_dim=8, cell="gru", layers=2, embedding_dim=5)
    return LanguageModel(cfg, seed=11, linker=LINKER), Vocabulary(words)


def _counting(monkeypatch, model):
    calls = []
    original = model.step_function

    def step_function(batch_size=None):
        fn = original(batch_size)

        def step(tokens, *states):
            calls.append(len(tokens))
            return fn(tokens, *states)

        return step

    monkeypatch.setattr(model, "step_function", step_function)
    return calls


def test_prime_state_is_carried_not_recomputed(gru_word, monkeypatch):
    model, vocab = gru_word
    prime = "w1 w2 w3 w4 w5 w6"
    fed = 1 + 6  # START + prime words
    calls = _counting(monkeypatch, model)
    g = sample.generate_sentence(model, vocab, mode="greedy", prime=prime, max_length=12, prime_chunk=0)
    # One step call per token fed: the prime once, then each generated word (END is not fed back).
    assert len(calls) == fed + len(g.ids)
    assert g.prefix == [vocab.word_to_index[w] for w in prime.split()]
    assert g.tokens[:6] == prime.split() and g.text.startswith(prime)
    # The generation's log-probability is the model's probability of the continuation given the
    # prime, computed independently by evaluate over the whole sentence.
    sent = [S, *g.prefix, *g.ids] + ([E] if g.ended else [])
    x = np.array(sent[:-1], np.int32)[:, None]
    y = np.array(sent[1:], np.int32)[:, None]
    nll = model.evaluate(x, y, np.ones_like(x, dtype="float32"))[2][:, 0]
    assert g.logprob == pytest.approx(-nll[len(g.prefix) :].sum(), abs=1e-4)


def test_long_prime_through_evaluate_chunks_equals_stepping(gru_word):
    model, _ = gru_word
    rng = np.random.default_rng(0)
    tokens = np.concatenate([[S], rng.integers(2, 11, 13)]).astype("int32")
    lp_step, st_step = sample.prime_state(model, tokens, chunk=0)
    lp_chunk, st_chunk = sample.prime_state(model, tokens, chunk=4)  # 12 head tokens: 3 chunks
    np.testing.assert_allclose(lp_chunk, lp_step, atol=1e-5)
    for a, b in zip(st_chunk, st_step, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def test_beam_logprobs_continue_a_prime(gru_word):
    model, vocab = gru_word
    beams = sample.beam_search(model, vocab, beam_size=3, max_length=5, prime="w3 w4")
    assert len(beams) == 3 and all(h.prefix == [5, 6] for h in beams)
    for h in beams:
        assert len(h.prefix) + len(h.tokens) <= 5 and vocab.unk_index not in h.tokens
        assert h.words[:2] == ["w3", "w4"]
        sent = [S, *h.prefix, *h.tokens] + ([E] if h.ended else [])
        x = np.array(sent[:-1], np.int32)[:, None]
        y = np.array(sent[1:], np.int32)[:, None]
        nll = model.evaluate(x, y, np.ones_like(x, dtype="float32"))[2][:, 0]
        assert h.logprob == pytest.approx(-nll[2:].sum(), abs=1e-4)


# --------------------------------------------------------------------------------------------------
# char level
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def char_model():
    vocab = Vocabulary.build([list("abc de\nfg.\n")], None, "\ufffd", reserved=())
    cfg = ModelConfig(vocab_size=len(vocab), hidden_dim=6, cell="lstm", embedding_dim=4)
    return LanguageModel(cfg, seed=5, linker=LINKER), vocab


def test_char_generation_after_a_prime(char_model):
    model, vocab = char_model
    gens = sample.generate(model, vocab, 3, seed=0, prime="ab\nde", max_length=25, temperature=2.0)
    for g in gens:
        assert len(g.ids) == 25 and not g.ended and vocab.unk_index not in g.ids
        assert g.text == "de" + "".join(vocab.decode(g.ids))  # the line being continued
    assert sample.generate_sentence(model, vocab, mode="greedy", max_length=3).prefix == []
    beams = sample.beam_search(model, vocab, beam_size=4, max_length=6, prime="fg")
    assert len(beams) == 4 and all(len(h.tokens) == 6 and not h.ended for h in beams)


def test_char_perplexity_is_one_stream(char_model):
    model, vocab = char_model
    lines = [vocab.encode(list(s)) for s in ("abc de\n", "fg.\n", "ab\n")]
    stream = np.concatenate(lines)
    n = len(stream) - 1
    whole = sample.stream_logprob(model, stream, chunk=n)  # one chunk: the shape evaluate below uses
    chunked = sample.stream_logprob(model, stream, chunk=3)  # the state carried across 6 chunks
    assert whole[1] == chunked[1] == n
    assert chunked[0] == pytest.approx(whole[0], abs=1e-4)
    x, y = stream[:-1, None], stream[1:, None]
    assert whole[0] == pytest.approx(-model.evaluate(x, y, np.ones_like(x, dtype="float32"))[0], abs=1e-4)
    ppl = sample.perplexity(model, lines, level="char", chunk=3)
    assert ppl.perplexity == pytest.approx(math.exp(-whole[0] / whole[1]), rel=1e-5)


# --------------------------------------------------------------------------------------------------
# the tutorial's published model (U 50x8000, no vocabulary)
# --------------------------------------------------------------------------------------------------


def test_tutorial_model_forward_and_sampling(tutorial_model_npz):
    with np.load(tutorial_model_npz, allow_pickle=False) as z:
        U, V, W = z["U"], z["V"], z["W"]
    H, Cv = U.shape
    cfg = ModelConfig(vocab_size=Cv, hidden_dim=H, cell="rnn", output_bias=False)
    params = {"U0": U[None], "W0": W[None], "b0": np.zeros((1, H), "float32"), "V": V}
    model = LanguageModel(cfg, params=params, linker=LINKER)
    ids = sample.special_ids(model)
    assert ids == (0, 1, Cv - 1)
    # Forward: the step function is the tutorial's s_t = tanh(U[:, x_t] + W s_{t-1}), o_t = softmax(V s_t).
    seq = [0, 100, 2]
    logp, _ = sample.prime_state(model, seq, chunk=0)
    s = np.zeros(H)
    for t in seq:
        s = np.tanh(U[:, t] + W @ s)
    o = V @ s
    np.testing.assert_allclose(logp, o - o.max() - np.log(np.exp(o - o.max()).sum()), atol=1e-4)
    # START (id 0) is never predicted; it follows that id 0 is the start token of the tutorial's layout.
    assert np.exp(logp[0]) < 1e-4
    gens = sample.generate(model, None, 4, seed=0, max_length=30, min_length=3)
    for g in gens:
        assert 3 <= len(g.ids) <= 30 and Cv - 1 not in g.ids and 0 not in g.ids
        assert g.tokens is None and g.text == " ".join(map(str, g.ids))
    assert sum(g.ended for g in gens) >= 2  # a trained model ends most sentences well within 30 words


# --------------------------------------------------------------------------------------------------
# fill-in-the-blank
# --------------------------------------------------------------------------------------------------


def test_fill_ranks_the_models_own_probabilities():
    words = ["SENTENCE_START", "SENTENCE_END", "the", "cat", "dog", "sat", "on", "mat", "UNKNOWN_TOKEN"]
    vocab = Vocabulary(words)
    cfg = ModelConfig(vocab_size=len(words), hidden_dim=6, cell="gru", bidirectional=True)
    model = LanguageModel(cfg, seed=3, linker=LINKER)
    got = sample.fill(model, vocab, "the ___ sat on the mat", top_k=4)
    assert len(got) == 4
    probs = [p for _, p in got]
    assert probs == sorted(probs, reverse=True)
    assert not {w for w, _ in got} & {"SENTENCE_START", "SENTENCE_END", "UNKNOWN_TOKEN"}
    # Each probability is exactly what evaluate gives the sentence with that word in the blank.
    for w, p in got:
        sent = vocab.encode(["SENTENCE_START", "the", w, "sat", "on", "the", "mat", "SENTENCE_END"])
        L = 8
        nll = model.evaluate(sent[:, None], sent[:, None], np.ones((L, 1), "float32"))[2]
        assert p == pytest.approx(math.exp(-nll[1, 0]), rel=1e-4)  # row t-1 for the word at t = 2
    # All candidates: the distribution sums to 1 with START/END/UNK added back.
    full = np.exp(
        sample.fill_distribution(
            model, vocab.encode(["SENTENCE_START", "the", "UNKNOWN_TOKEN", "sat", "SENTENCE_END"]), 2
        )
    )
    assert full.sum() == pytest.approx(1.0, abs=1e-5)
    for bad in ("no blank here", "___ and ___"):
        with pytest.raises(ConfigError, match="exactly one blank"):
            sample.fill(model, vocab, bad)
    with pytest.raises(ConfigError, match="bidirectional"):
        sample.fill(
            LanguageModel(ModelConfig(vocab_size=len(words), hidden_dim=4), seed=0, linker=LINKER),
            vocab,
            "the ___",
        )


# --------------------------------------------------------------------------------------------------
# tied input/output embeddings: gradients against finite differences
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell,D,H", [("rnn", 6, 6), ("gru", 4, 6)], ids=["D=H", "D!=H-projection"])
def test_tied_embeddings_gradients_equal_finite_differences(cell, D, H):
    Cv = 11
    cfg = ModelConfig(vocab_size=Cv, hidden_dim=H, cell=cell, embedding_dim=D, tie_embeddings=True)
    rng = np.random.default_rng(4)
    params = {k: (v + rng.normal(0, 0.2, v.shape)).astype("float32") for k, v in init_params(cfg, 1).items()}
    assert "V" not in params and (("P" in params) == (D != H))
    model = LanguageModel(cfg, params=params, linker=LINKER)
    x = rng.integers(0, Cv, (5, 2)).astype("int32")
    y = rng.integers(0, Cv, (5, 2)).astype("int32")
    mask = np.ones((5, 2), "float32")
    mask[3:, 1] = 0
    grads = model.gradients(x, y, mask)
    h = 1e-2
    for name, value in params.items():
        g = grads[name]
        flat = np.argsort(-np.abs(g).ravel())[:3]  # the largest entries: well above float32 noise
        for f in flat:
            idx = np.unravel_index(f, g.shape)
            p = {k: v.copy() for k, v in params.items()}
            p[name][idx] = value[idx] + h
            model.set_params(p)
            up = model.evaluate(x, y, mask)[0]
            p[name][idx] = value[idx] - h
            model.set_params(p)
            down = model.evaluate(x, y, mask)[0]
            num = (up - down) / (2 * h)
            assert g[idx] == pytest.approx(num, rel=2e-2, abs=2e-3), (name, idx)
    model.set_params(params)
    # E gets gradient from both the input and the output layer: its untouched-by-input columns too.
    unseen = sorted(set(range(Cv)) - set(x.ravel()))
    assert unseen and np.abs(grads["E"][:, unseen]).max() > 0
