"""Tests of the n-gram baselines (rnnlm.models.ngram): NLTK parity, hand-computed numbers, a brute-force
reference, normalisation, the perplexity definition, files and argument checks."""

from __future__ import annotations

import math
import pickle
from collections import Counter
from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlm.errors import CheckpointError, ConfigError
from rnnlm.models.ngram import KneserNey, Unigram

S, E = 0, 1  # START and END ids of the word-level corpora below


def _sents(rows):
    return [np.array(r, np.int32) for r in rows]


def _random_corpus(seed, vocab_size=9, n_sents=25, max_len=8):
    rng = np.random.default_rng(seed)
    return [
        np.array([S, *rng.integers(2, vocab_size, rng.integers(0, max_len)), E], np.int32)
        for _ in range(n_sents)
    ]


def _histories(sents, order, vocab_size):
    """Every history the model can meet in ``sents``, plus unseen, empty and over-long ones."""
    hs = {tuple(s[max(0, i - order + 1) : i]) for s in sents for i in range(1, len(s))}
    top = vocab_size - 1
    hs |= {(), (S,), (E,), (S, top), (top,) * 6, (S, *(min(w, top) for w in range(2, 8)))}
    return [np.array(h, np.int64) for h in sorted(hs)]


# -- NLTK ------------------------------------------------------------------------------------------------
# NLTK's KneserNeyInterpolated differs from ours (Chen & Goodman's definition, as in KenLM) in two known ways:
#  1. Its lowest order, KneserNey.unigram_score, is the undiscounted continuation probability
#     N1+(.w) / N1+(..) with no interpolation with a uniform distribution, so a word never seen after
#     another gets probability 0.  Ours discounts the continuation counts too and gives the freed mass to a
#     uniform distribution over the predictable ids.  We replace NLTK's unigram_score by that lowest order,
#     computed by hand below from Python sets; every higher order is NLTK's own code.
#  2. Its padding pipeline pads each sentence with n-1 "<s>" (and "</s>"); ours has one START and shorter
#     histories near it, where a k-gram beginning with START keeps its raw count at the lower orders (it has
#     no left neighbour).  We give NLTK our n-grams instead: everygrams of each sentence prefixed by a token
#     BOS_i unique to the sentence, so NLTK's continuation count of a START-initial k-gram (distinct left
#     neighbours) is the number of sentences it begins, i.e. its raw count.  For a stream, one BOS before
#     the stream plays the same role for the k-grams at its left edge.
# NLTK has one fixed discount for every order and count, so the comparison uses discount=<number>.


def _hand_lowest_order(seqs, vocab_size, discount, start_id):
    """Lowest KN order: max(N1+(.w) - D, 0) / N1+(..) + D * |{w: N1+(.w) > 0}| / N1+(..) * uniform(w)."""
    bigram_types = {(int(s[i - 1]), int(s[i])) for s in seqs for i in range(1, len(s))}
    cont = Counter(w for _, w in bigram_types)
    total = len(bigram_types)
    n_predictable = vocab_size - (start_id is not None)
    gamma = discount * len(cont) / total
    return {
        w: max(cont[w] - discount, 0) / total + (0.0 if w == start_id else gamma / n_predictable)
        for w in range(vocab_size)
    }


def _nltk_model(seqs, order, discount, vocab_size, start_id):
    from nltk.lm import KneserNeyInterpolated
    from nltk.util import everygrams

    names = [f"t{w}" for w in range(vocab_size)]
    padded = [[f"BOS{i}"] + [names[w] for w in s] for i, s in enumerate(seqs)]
    lm = KneserNeyInterpolated(order, discount=discount)
    lm.fit([list(everygrams(p, max_len=order)) for p in padded], names + [t for p in padded for t in p])
    low = _hand_lowest_order(seqs, vocab_size, discount, start_id)
    lm.estimator.unigram_score = lambda word: low[int(word[1:])]  # known difference 1 (see above)
    return lambda word, history: lm.unmasked_score(
        names[word], tuple(names[t] for t in history[-(order - 1) :])
    )


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("discount", [0.75, 0.3])
def test_matches_nltk_word_level(order, discount):
    sents = _random_corpus(seed=order, vocab_size=7, n_sents=12, max_len=6)
    ours = KneserNey(order, discount).fit(sents, 7, start_id=S)
    nltk_p = _nltk_model(sents, order, discount, 7, S)
    n_compared = 0
    for h in _histories(sents, order, 7):
        if len(h) == 0 or S in h[1:]:  # word-level histories begin at START or inside the sentence
            continue
        p = ours.distribution(h)
        for w in range(1, 7):  # every predictable word; START (0) is never predicted
            assert p[w] == pytest.approx(nltk_p(w, h), rel=1e-9, abs=1e-12), (h, w)
            n_compared += 1
    assert n_compared > 50


@pytest.mark.parametrize("order", [2, 3])
def test_matches_nltk_stream(order):
    stream = np.random.default_rng(7).integers(0, 5, 80).astype(np.int32)
    ours = KneserNey(order, 0.6).fit(stream, 5, stream=True)
    nltk_p = _nltk_model([stream], order, 0.6, 5, None)
    histories = {tuple(stream[max(0, i - order + 1) : i]) for i in range(1, len(stream))} | {(4, 4)}
    for h in map(np.array, histories):
        p = ours.distribution(h)
        for w in range(5):
            assert p[w] == pytest.approx(nltk_p(w, h), rel=1e-9, abs=1e-12), (h, w)


# -- hand-computed modified Kneser-Ney --------------------------------------------------------------------
HAND_V = 6  # S=0 E=1 a=2 b=3 c=4 d=5 (d never occurs)
HAND = _sents([[S, 4, 2, 3, E], [S, 2, 3, E], [S, 2, 3, 3, E], [S, 4, 3, 2, E], [S, 3, E]])
#   "S c a b E", "S a b E", "S a b b E", "S c b a E", "S b E"


def test_hand_computed_modified_kneser_ney_order2():
    m = KneserNey(2).fit(HAND, HAND_V, start_id=S)
    # Order 2 (raw bigram counts): Sc 2, Sa 2, Sb 1, ca 1, cb 1, ab 3, aE 1, bE 4, bb 1, ba 1  (17 bigrams).
    # n1 = 6 (Sb ca cb aE bb ba), n2 = 2 (Sc Sa), n3 = 1 (ab), n4 = 1 (bE);  Y = 6 / (6 + 2*2) = 0.6
    # D1 = 1 - 2*0.6*2/6 = 0.6,  D2 = 2 - 3*0.6*1/2 = 1.1,  D3+ = 3 - 4*0.6*1/1 = 0.6
    # Order 1 (continuation counts N1+(.w)): a 3 (ca Sa ba), b 4 (ab Sb cb bb), c 1 (Sc), E 2 (bE aE);
    #   total 10.
    # n1 = n2 = n3 = n4 = 1;  Y = 1/3;  D1 = 1 - 2/3 = 1/3,  D2 = 2 - 3*(1/3) = 1,  D3+ = 3 - 4*(1/3) = 5/3
    np.testing.assert_allclose(m.discounts, [[1 / 3, 1, 5 / 3], [0.6, 1.1, 0.6]], rtol=1e-12)
    # Lowest order: gamma = (1/3 + 1 + 2 * 5/3) / 10 = 7/15, shared uniformly by the 5 predictable ids
    # E a b c d.
    u = F(7, 15) / 5
    p1 = {
        S: F(0),
        E: (2 - 1) / F(10) + u,
        2: (3 - F(5, 3)) / 10 + u,
        3: (4 - F(5, 3)) / 10 + u,
        4: (1 - F(1, 3)) / 10 + u,
        5: u,
    }
    assert p1[2] == F(17, 75) and p1[3] == F(49, 150) and p1[E] == F(29, 150) and sum(p1.values()) == 1
    np.testing.assert_allclose(m.distribution([]), [float(p1[w]) for w in range(6)], rtol=1e-12)
    # History a: ab 3, aE 1; A = 4, gamma = (D3+ + D1) / 4 = 1.2 / 4 = 0.3
    pa = {w: 0.3 * float(p1[w]) for w in range(6)}
    pa[3] += (3 - 0.6) / 4  # P(b|a) = 0.6 + 0.3 * 49/150 = 0.698
    pa[E] += (1 - 0.6) / 4  # P(E|a) = 0.1 + 0.3 * 29/150 = 0.158
    assert pa[3] == pytest.approx(0.698) and pa[E] == pytest.approx(0.158)
    np.testing.assert_allclose(m.distribution([S, 2]), [pa[w] for w in range(6)], rtol=1e-12)
    # History S: Sc 2, Sa 2, Sb 1; A = 5, gamma = (1.1 + 1.1 + 0.6) / 5 = 0.56
    ps = {w: 0.56 * float(p1[w]) for w in range(6)}
    ps[4] += (2 - 1.1) / 5
    ps[2] += (2 - 1.1) / 5
    ps[3] += (1 - 0.6) / 5
    np.testing.assert_allclose(m.distribution([S]), [ps[w] for w in range(6)], rtol=1e-12)
    # History b: bE 4, bb 1, ba 1; A = 6, gamma = (0.6 + 0.6 + 0.6) / 6 = 0.3;  P(E|b) = 3.4/6 + 0.3 * 29/150
    p_e_b = 3.4 / 6 + 0.3 * 29 / 150
    # Unseen history d, and E (never followed by anything): everything backs off to the lowest order.
    np.testing.assert_allclose(m.distribution([5]), [float(p1[w]) for w in range(6)], rtol=1e-12)
    np.testing.assert_allclose(m.distribution([E]), [float(p1[w]) for w in range(6)], rtol=1e-12)
    # "S a b E" predicts a, b, E: log P(a|S) + log P(b|a) + log P(E|b)
    total, n = m.score(_sents([[S, 2, 3, E]]))
    assert n == 3
    assert total == pytest.approx(math.log(ps[2]) + math.log(pa[3]) + math.log(p_e_b), rel=1e-12)


def test_hand_computed_start_histories_order3():
    # Order 3, fixed D = 0.5, corpus "S a b E", "S a a E", "S b E" (S=0 E=1 a=2 b=3, V = 4).
    m = KneserNey(3, 0.5).fit(_sents([[S, 2, 3, E], [S, 2, 2, E], [S, 3, E]]), 4, start_id=S)
    # P(a | S) uses order 2 with history (S); "S a" begins a sentence, so it keeps its raw count 2, "S b" 1.
    # A = 3, gamma = 0.5 * 2 / 3 = 1/3.
    # Order 1 (continuation): bigram types Sa ab bE aa aE Sb -> a 2 (Sa aa), b 2 (ab Sb), E 2 (bE aE);
    #   total 6, gamma = 0.5 * 3 / 6 = 1/4 over the 3 predictable ids:
    #   P1(a) = (2 - 0.5)/6 + 1/12 = 1/3 = P1(b) = P1(E).
    assert m.distribution([S])[2] == pytest.approx((2 - 0.5) / 3 + 1 / 3 * 1 / 3, rel=1e-12)
    # P(b | S a) at order 3: trigrams after "S a": "S a b" 1, "S a a" 1; A = 2, gamma = 0.5 * 2 / 2 = 0.5.
    # Its order 2, history (a): continuation counts "a b" = |{S}| = 1, "a a" = |{S}| = 1, "a E" = |{a}| = 1;
    #   A = 3, gamma = 0.5 * 3 / 3 = 0.5;  P2(b | a) = (1 - 0.5)/3 + 0.5 * 1/3 = 1/3.
    assert m.distribution([S, 2])[3] == pytest.approx((1 - 0.5) / 2 + 0.5 * (1 / 3), rel=1e-12)


# -- a brute-force reference (dicts, Python loops) of the documented definition ---------------------------
def _reference_kn(seqs, vocab_size, order, discount, start_id):
    """P(w | h) for the definition in the module docstring, computed the slow, obvious way."""
    a = [Counter() for _ in range(order + 1)]  # a[k][k-gram]
    for s in map(list, seqs):
        for i in range(1, len(s)):  # predicted position i
            for k in range(1, min(order, i + 1) + 1):
                g = tuple(s[i - k + 1 : i + 1])
                if k == order or i - k + 1 == 0:  # raw count at the top order and at the left edge
                    a[k][g] += 1
    for k in range(1, order):  # continuation counts: distinct left neighbours
        for g in {tuple(s[j : j + k + 1]) for s in map(list, seqs) for j in range(len(s) - k)}:
            a[k][g[1:]] += 1
    disc = []
    for k in range(1, order + 1):
        if discount is not None:
            disc.append((discount,) * 3)
            continue
        n = [sum(1 for c in a[k].values() if c == j) for j in (1, 2, 3, 4)]
        y = n[0] / (n[0] + 2 * n[1]) if n[0] else 0.5
        raw = [j - (j + 1) * y * n[j] / n[j - 1] if n[j - 1] else y for j in (1, 2, 3)]
        disc.append(tuple(min(max(d, 0.01), cap) for d, cap in zip(raw, (1, 2, 3), strict=True)))

    def prob(w, h):
        if w == start_id:
            return 0.0
        p = 1 / (vocab_size - (start_id is not None))
        for k in range(1, min(order, len(h) + 1) + 1):
            hist = tuple(h[len(h) - k + 1 :]) if k > 1 else ()
            followers = {g[-1]: c for g, c in a[k].items() if g[:-1] == hist and c > 0}
            total = sum(followers.values())
            if total == 0:
                continue
            dk = disc[k - 1]
            gamma = sum(dk[min(c, 3) - 1] for c in followers.values()) / total
            c = followers.get(w, 0)
            p = (c - dk[min(c, 3) - 1] if c else 0) / total + gamma * p
        return p

    return prob


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("discount", [None, 0.5])
def test_matches_brute_force_reference(order, discount):
    sents = _random_corpus(seed=10 + order, vocab_size=6, n_sents=20, max_len=7)
    m = KneserNey(order, discount).fit(sents, 6, start_id=S)
    ref = _reference_kn(sents, 6, order, discount, S)
    for h in _histories(sents, order, 6)[:40]:
        np.testing.assert_allclose(m.distribution(h), [ref(w, list(h)) for w in range(6)], rtol=1e-10, atol=0)
    # Sentences without a START id: histories must still stop at each sentence's first token.
    rng = np.random.default_rng(order)
    plain = [rng.integers(0, 4, rng.integers(1, 6)) for _ in range(15)]
    m = KneserNey(order, discount).fit(plain, 4)
    ref = _reference_kn(plain, 4, order, discount, None)
    for s, lp in zip(plain, m.token_logprobs(plain), strict=True):
        np.testing.assert_allclose(
            lp,
            [math.log(ref(s[i], list(s[max(0, i - order + 1) : i]))) for i in range(1, len(s))],
            rtol=1e-10,
        )
    stream = rng.integers(0, 4, 60)
    m = KneserNey(order, discount).fit(stream, 4, stream=True)
    ref = _reference_kn([stream], 4, order, discount, None)
    for i in range(0, 60, 7):
        h = list(stream[:i])
        np.testing.assert_allclose(m.distribution(h), [ref(w, h) for w in range(4)], rtol=1e-10, atol=0)


# -- normalisation, token_logprobs, perplexity ------------------------------------------------------------
@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("discount", [None, 0.8])
def test_distribution_sums_to_one(order, discount):
    sents = _random_corpus(seed=order, vocab_size=12, n_sents=40)
    m = KneserNey(order, discount).fit(sents, 12, start_id=S)
    for h in _histories(sents, order, 12):
        p = m.distribution(h)
        assert p.shape == (12,) and p.dtype == np.float64
        assert abs(p.sum() - 1) < 1e-9 and p[S] == 0.0 and np.all(p[1:] > 0), h
    if order > 1:  # only the last order-1 ids matter
        long = [S, 2, 3, 4, 5, 6]
        np.testing.assert_array_equal(m.distribution(long), m.distribution(long[-(order - 1) :]))


@pytest.mark.parametrize("order", [1, 3, 5])
def test_token_logprobs_equal_distribution(order):
    sents = _random_corpus(seed=3, vocab_size=10, n_sents=30)
    m = KneserNey(order).fit(sents[:20], 10, start_id=S)
    lps = m.token_logprobs(sents)  # includes sentences the model never saw
    assert [len(lp) for lp in lps] == [len(s) - 1 for s in sents]
    for s, lp in zip(sents, lps, strict=True):
        want = [math.log(m.distribution(s[max(0, i - order + 1) : i])[s[i]]) for i in range(1, len(s))]
        np.testing.assert_allclose(lp, want, rtol=1e-12)
    stream = np.random.default_rng(1).integers(0, 6, 300).astype(np.int32)
    m = KneserNey(order).fit(stream[:200], 6, stream=True)
    (lp,) = m.token_logprobs(stream, stream=True)
    want = [math.log(m.distribution(stream[:i])[stream[i]]) for i in range(1, 300)]
    np.testing.assert_allclose(lp, want, rtol=1e-12)


def test_perplexity_definition():
    sents = _random_corpus(seed=5) + _sents([[S], []])  # a lone START and an empty sentence predict nothing
    for model in (KneserNey(3).fit(sents, 9, start_id=S), Unigram().fit(sents, 9, start_id=S)):
        lps = model.token_logprobs(sents)
        total, n = model.score(sents)
        assert n == sum(len(s) - 1 for s in sents[:-1]) == sum(map(len, lps))
        assert total == pytest.approx(sum(lp.sum() for lp in lps), rel=1e-12)
        assert model.perplexity(sents) == pytest.approx(math.exp(-total / n), rel=1e-12)
        assert model.distribution([S])[S] == 0.0  # START is never predicted...
        with pytest.raises(ConfigError, match="START may only begin"):  # ...so it may not appear inside
            model.score(_sents([[S, 2, S, E]]))
    stream = np.arange(50) % 7
    assert KneserNey(2).fit(stream, 7, stream=True).score(stream, stream=True)[1] == 49


def test_unigram_add_one_by_hand():
    # Predicted tokens of "S a b E", "S a E" (S=0 E=1 a=2 b=3, V=5, id 4 unseen): a 2, b 1, E 2; N = 5.
    # Predictable ids E a b 4 (START excluded): P(w) = (c(w) + 1) / (5 + 4).
    m = Unigram().fit(_sents([[S, 2, 3, E], [S, 2, E]]), 5, start_id=S)
    np.testing.assert_allclose(m.distribution([S, 2]), [0, 3 / 9, 3 / 9, 2 / 9, 1 / 9], rtol=1e-12)
    assert m.score(_sents([[S, 3, 4, E]])) == pytest.approx((math.log(2 / 9 * 1 / 9 * 3 / 9), 3), rel=1e-12)
    # Without START every id is predictable; a stream's first token is not predicted: 2 3 2 -> b 1, a 1, N 2.
    m = Unigram().fit(np.array([2, 3, 2]), 4, stream=True)
    np.testing.assert_allclose(m.distribution([]), [1 / 6, 1 / 6, 2 / 6, 2 / 6], rtol=1e-12)


# -- files ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: KneserNey(4), lambda: KneserNey(2, 0.4), Unigram])
def test_save_load_round_trip(tmp_path, make):
    sents = _random_corpus(seed=2)
    m = make().fit(sents, 9, start_id=S)
    path = m.save(tmp_path / "lm.npz")
    back = type(m).load(path)
    for a, b in zip(m.token_logprobs(sents), back.token_logprobs(sents), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (back.order, back.vocab_size, back.start_id) == (m.order, 9, S)
    other = Unigram if isinstance(m, KneserNey) else KneserNey
    with pytest.raises(CheckpointError, match="expected"):
        other.load(path)


def test_bad_files_are_refused(tmp_path):
    (tmp_path / "pickled.npz").write_bytes(pickle.dumps({"meta": 1}))
    np.savez(tmp_path / "objects.npz", meta=np.array([{"a": 1}], dtype=object))
    (tmp_path / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip")
    np.savez(tmp_path / "nometa.npz", x=np.zeros(3))
    for name in ("pickled.npz", "objects.npz", "garbage.npz", "nometa.npz", "missing.npz"):
        with pytest.raises(CheckpointError):
            KneserNey.load(tmp_path / name)
    path = KneserNey(2).fit(_random_corpus(seed=1), 9, start_id=S).save(tmp_path / "ok.npz")
    with np.load(path) as z:
        arrays = dict(z)
    arrays["keys/2"] = arrays["keys/2"][::-1].copy()  # tampered: keys no longer sorted
    np.savez(tmp_path / "tampered.npz", **arrays)
    with pytest.raises(CheckpointError, match="strictly increasing"):
        KneserNey.load(tmp_path / "tampered.npz")


# -- argument checks --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs",
    [
        {"order": 0},
        {"order": 6},
        {"order": 2.0},
        {"order": True},
        {"discount": 0.0},
        {"discount": 1.5},
        {"discount": float("nan")},
        {"discount": "0.5"},
    ],
)
def test_bad_settings(kwargs):
    with pytest.raises(ConfigError):
        KneserNey(**kwargs)


def test_bad_data_and_unfitted():
    ok = _sents([[S, 2, E]])
    for model in (KneserNey(3), Unigram()):
        for method, arg in ((model.score, ok), (model.distribution, [S]), (model.save, "x.npz")):
            with pytest.raises(ConfigError, match="not fitted"):
                method(arg)
        for data, vocab, kw in [
            (ok, 1, {}),
            (ok, 3, {"start_id": 3}),
            (_sents([[S, 2, 9]]), 5, {}),
            (_sents([[S, -1]]), 5, {}),
            ([], 5, {}),
            (_sents([[S], [S]]), 5, {}),
            ([np.array([], int)], 5, {"start_id": S}),
            (_sents([[2, 3, E]]), 5, {"start_id": S}),
            ([np.array([0.0, 1.0])], 5, {}),
            (np.array([S, 2, E]), 5, {}),
            ([[S, 2], [S, 2, 3]], 5, {"stream": True}),
        ]:
            with pytest.raises(ConfigError):
                model.fit(data, vocab, **kw)
        model.fit(ok, 4, start_id=S)
        with pytest.raises(ConfigError, match="out of range"):
            model.score(_sents([[S, 4, E]]))
        with pytest.raises(ConfigError, match="out of range"):
            model.distribution([7])


# -- property ---------------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    order=st.integers(1, 5),
    discount=st.sampled_from([None, 0.1, 1.0]),
    vocab_size=st.integers(3, 8),
    data=st.data(),
)
def test_property_distribution_is_proper(order, discount, vocab_size, data):
    word = st.integers(2, vocab_size - 1)
    sents = data.draw(st.lists(st.lists(word, max_size=6), min_size=1, max_size=6))
    sents = [np.array([S, *s, E]) for s in sents]
    m = KneserNey(order, discount).fit(sents, vocab_size, start_id=S)
    history = data.draw(st.lists(st.integers(0, vocab_size - 1), max_size=6))
    for h in (history, [S, *history[:2]], *(s[:i] for s in sents[:2] for i in range(1, len(s)))):
        p = m.distribution(h)
        assert abs(p.sum() - 1) < 1e-9 and p[S] == 0 and np.all(p[1:] > 0)
    lp = np.concatenate(m.token_logprobs(sents))
    assert np.all(np.isfinite(lp)) and np.all(lp < 0)
