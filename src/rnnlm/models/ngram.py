"""Count-based n-gram baselines in NumPy: interpolated Kneser-Ney (orders 1..5) and an add-one unigram.

They are trained on the token ids the RNNs see and use the project's one definition of perplexity (exp of
the mean negative log-likelihood over every predicted token), so they are a yardstick next to an RNN.

Data.  Word level: a list of sentences, each a 1-D int array ``[START, w1, ..., wn, END]``; the tokens
``s[1:]`` are predicted and the history of ``s[i]`` is ``s[max(0, i - order + 1):i]`` (a shorter history
that begins at START near the sentence start, as standard toolkits treat ``<s>``).  Character level
(``stream=True``): one 1-D array; every token after the first is predicted from up to ``order - 1``
previous tokens.  Ids are ``0..V-1``; START (``start_id``), when given, is never predicted: it gets
probability 0 and may only begin a sentence.

Kneser-Ney (Chen & Goodman 1998, interpolated, "modified" discounts D1, D2, D3+ per order unless one
fixed discount is given).  With ``a_k`` the count used at order k::

    P_k(w | h) = (a_k(hw) - D_k(a_k(hw))) / A_k(h) + gamma_k(h) P_{k-1}(w | h[1:]),
    A_k(h) = sum_w a_k(hw),  gamma_k(h) = (D_k1 N1(h.) + D_k2 N2(h.) + D_k3 N3+(h.)) / A_k(h),
    P_0(w) = 1 / (number of predictable ids)  (uniform; 0 for START),

and ``P_k = P_{k-1}`` when ``A_k(h) = 0`` (a history never seen with a follower).  ``a_k`` is the raw
count at the highest order and the continuation count N1+(. g) below it, plus, for an occurrence at the
left edge of a sequence (a k-gram beginning with START, or the stream's first k tokens), which has no left
neighbour, its raw count (KenLM's rule for ``<s>``; it makes the short START histories above meaningful).
Modified-KN discounts are estimated per order from the counts ``a_k`` (see ``_modified_kn_discounts``).

Counting without a Python loop per n-gram: the k-gram that ends at each position gets an integer id, the
rank of ``id(its (k-1)-gram prefix) * V + last token`` among the distinct values of that key, so one
``np.unique`` per order counts everything and every key fits in int64 whatever V and the order are.
Look-ups use ``np.searchsorted`` on the same sorted keys; -1 means "never seen" and indexes a sentinel
that makes the order contribute nothing (weight 0, back-off weight 1).

Files: ``.npz`` (never pickle) with the JSON ``meta`` (format ``rnnlm-ngram``, version 1) as uint8 bytes,
the sorted keys and counts per order; written atomically and validated on load.
"""

from __future__ import annotations

import json
import math
import struct
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import CheckpointError, ConfigError
from ..fileio import atomic_savez

__all__ = ["FORMAT", "MAX_ORDER", "MIN_DISCOUNT", "VERSION", "KneserNey", "Unigram"]

FORMAT = "rnnlm-ngram"
VERSION = 1
MAX_ORDER = 5
# Floor for estimated modified-KN discounts: a zero discount at an order would leave no mass for unseen
# words (tiny corpora can make the Chen & Goodman estimates of D2, D3+ negative).
MIN_DISCOUNT = 0.01
_DISCOUNT_CAPS = (1.0, 2.0, 3.0)  # D(c) <= c keeps every count non-negative and the mass exact


class _Corpus(NamedTuple):
    tokens: np.ndarray   # (T,) int64: all sequences concatenated
    pos: np.ndarray      # (T,) int64: position of each token inside its sequence
    lengths: np.ndarray  # (S,) int64: length of each sequence


def _int_arg(name, value, lo, hi=None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise ConfigError(f"{name} must be in {lo}..{hi if hi is not None else 'inf'}, got {value}")
    return int(value)


def _as_ids(x, what) -> np.ndarray:
    try:
        a = np.asarray(x)
    except (ValueError, TypeError) as e:  # e.g. a ragged list of lists
        raise ConfigError(f"{what} is not an array of token ids ({e})") from None
    if a.ndim != 1:
        raise ConfigError(f"{what} must be a 1-D array of token ids, got shape {a.shape}")
    if a.size == 0:
        return np.zeros(0, np.int64)
    if a.dtype.kind not in "iu":
        raise ConfigError(f"{what} must hold integer token ids, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


def _flatten(sequences, stream, vocab_size, start_id) -> _Corpus:
    """Validate sentences (or one stream) and concatenate them; see the module docstring."""
    if not isinstance(stream, bool):
        raise ConfigError(f"stream must be True or False, got {stream!r}")
    if stream:
        arrays = [_as_ids(sequences, "the stream")]
    else:
        if isinstance(sequences, np.ndarray) and sequences.ndim == 1:
            raise ConfigError("sequences is one 1-D array: pass a list of sentences, or stream=True")
        arrays = [_as_ids(s, f"sentence {i}") for i, s in enumerate(sequences)]
    lengths = np.array([len(a) for a in arrays], np.int64)
    tokens = np.concatenate(arrays) if arrays else np.zeros(0, np.int64)
    starts = np.cumsum(lengths) - lengths
    pos = np.arange(len(tokens), dtype=np.int64) - np.repeat(starts, lengths)
    if len(tokens) and (tokens.min() < 0 or tokens.max() >= vocab_size):
        bad = tokens[(tokens < 0) | (tokens >= vocab_size)][0]
        raise ConfigError(f"token id {bad} out of range 0..{vocab_size - 1}")
    if start_id is not None:
        inside = np.flatnonzero((tokens == start_id) & (pos >= 1))
        if len(inside):
            seq = int(np.searchsorted(starts, inside[0], side="right") - 1)
            raise ConfigError(f"start_id {start_id} is predicted at position {pos[inside[0]]} of sequence "
                              f"{seq}; START may only begin a sentence")
        if not stream and len(tokens):
            wrong = np.flatnonzero((lengths > 0) & (tokens[np.minimum(starts, len(tokens) - 1)] != start_id))
            if len(wrong):
                raise ConfigError(f"sentence {wrong[0]} does not begin with start_id {start_id}")
    return _Corpus(tokens, pos, lengths)


def _lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Index of each of ``keys`` in the strictly increasing ``sorted_keys``; -1 where absent."""
    if len(sorted_keys) == 0:
        return np.full(keys.shape, -1, np.int64)
    idx = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return np.where(sorted_keys[idx] == keys, idx, -1)


def _modified_kn_discounts(counts: np.ndarray) -> tuple[float, float, float]:
    """Chen & Goodman's D1, D2, D3+ from n1..n4, the numbers of n-grams counted exactly 1..4 times.

    Y = n1 / (n1 + 2 n2), D1 = 1 - 2Y n2/n1, D2 = 2 - 3Y n3/n2, D3+ = 3 - 4Y n4/n3.  An estimate with a
    zero denominator falls back to Y (0.5 when n1 = 0); each is clipped to [MIN_DISCOUNT, 1 | 2 | 3].
    """
    n = np.bincount(np.minimum(counts, 5), minlength=6)[1:5].astype(np.float64)  # n[j - 1] = n_j
    y = n[0] / (n[0] + 2 * n[1]) if n[0] > 0 else 0.5
    raw = [j - (j + 1) * y * n[j] / n[j - 1] if n[j - 1] else y for j in (1, 2, 3)]
    return tuple(float(min(max(d, MIN_DISCOUNT), cap)) for d, cap in zip(raw, _DISCOUNT_CAPS, strict=True))


class _Order(NamedTuple):
    """Look-up tables of one KN order k; history arrays end with the "unseen history" sentinel."""
    keys: np.ndarray       # (N_k,) int64 sorted: id of the (k-1)-gram prefix * V + last token
    weight: np.ndarray     # (N_k + 1,) (a - D(a)) / A(prefix); last entry 0 for an absent k-gram
    gamma: np.ndarray      # (N_{k-1} + 1,) back-off weight per history; 1 where A = 0 and for unseen


class _NgramModel:
    """Shared data handling, scoring and file I/O of the count models."""

    _KIND = ""
    order = 1

    def __init__(self):
        self.vocab_size: int | None = None
        self.start_id: int | None = None
        #: the training corpus's metadata (vocabulary, tokenization), saved with the model when set
        self.corpus_meta: dict | None = None

    def _check_fitted(self):
        if self.vocab_size is None:
            raise ConfigError(f"{type(self).__name__} is not fitted: call fit() or load() first")

    def _fit_args(self, sequences, vocab_size, stream, start_id) -> _Corpus:
        self.vocab_size = None  # a failed fit leaves an unfitted model, not a half-updated one
        v = _int_arg("vocab_size", vocab_size, 2)
        start = None if start_id is None else _int_arg("start_id", start_id, 0, v - 1)
        corpus = _flatten(sequences, stream, v, start)
        if not np.any(corpus.pos >= 1):
            raise ConfigError("empty training data: no predicted tokens (every sequence is shorter than 2)")
        return corpus

    def _uniform(self) -> np.ndarray:
        """(V,) uniform distribution over the predictable ids (START excluded)."""
        u = np.full(self.vocab_size, 1.0 / (self.vocab_size - (self.start_id is not None)))
        if self.start_id is not None:
            u[self.start_id] = 0.0
        return u

    def _probs(self, corpus: _Corpus) -> np.ndarray:
        """(T,) probability of every token of ``corpus`` given its history (meaningful where pos >= 1)."""
        raise NotImplementedError

    def _predicted_logprobs(self, sequences, stream):
        self._check_fitted()
        corpus = _flatten(sequences, stream, self.vocab_size, self.start_id)
        lp = np.log(self._probs(corpus)[corpus.pos >= 1])
        return lp, corpus

    def token_logprobs(self, sequences, *, stream: bool = False) -> list[np.ndarray]:
        """Natural-log probability (float64) of every predicted token.

        Returns one array per sentence, of length ``len(s) - 1`` (0 for an empty sentence), or, with
        ``stream=True``, a one-element list holding the ``(len(stream) - 1,)`` array of the stream.
        """
        lp, corpus = self._predicted_logprobs(sequences, stream)
        n_pred = np.maximum(corpus.lengths - 1, 0)
        return np.split(lp, np.cumsum(n_pred)[:-1])

    def score(self, sequences, *, stream: bool = False) -> tuple[float, int]:
        """``(sum of the natural-log probabilities, number of predicted tokens)``."""
        lp, _ = self._predicted_logprobs(sequences, stream)
        return float(lp.sum()), int(lp.size)

    def perplexity(self, sequences, *, stream: bool = False) -> float:
        """exp(mean negative log-likelihood over the predicted tokens, END included, START excluded)."""
        total, n = self.score(sequences, stream=stream)
        if n == 0:
            raise ConfigError("perplexity of no predicted tokens: every sequence is shorter than 2")
        return math.exp(-total / n)

    def _history(self, history) -> np.ndarray:
        self._check_fitted()
        h = _as_ids(history, "history")
        if len(h) and (h.min() < 0 or h.max() >= self.vocab_size):
            raise ConfigError(f"history holds an id out of range 0..{self.vocab_size - 1}")
        return h

    # -- files ------------------------------------------------------------------------------------------
    def _meta(self) -> dict:
        meta = {"format": FORMAT, "version": VERSION, "model": self._KIND, "order": self.order,
                "vocab_size": self.vocab_size, "special_ids": {"start": self.start_id}}
        if self.corpus_meta is not None:  # vocabulary and tokenization: new text is read as the training text
            meta["corpus"] = self.corpus_meta
        return meta

    def save(self, path) -> Path:
        """Write the model to ``path`` (``.npz``, JSON metadata, no pickle), atomically."""
        self._check_fitted()
        meta = np.frombuffer(json.dumps(self._meta()).encode("utf-8"), dtype=np.uint8)
        try:
            return atomic_savez(path, meta=meta, **self._arrays())
        except OSError as e:
            raise CheckpointError(f"{path}: cannot write n-gram model ({e.strerror or e})") from None

    @classmethod
    def _read(cls, path) -> tuple[dict, dict]:
        """Read ``path`` and check its metadata header; raises CheckpointError on anything else."""
        p = Path(path)
        if not p.is_file():
            raise CheckpointError(f"{p}: no such file")
        try:
            with np.load(p, allow_pickle=False) as z:
                if not hasattr(z, "files"):
                    raise CheckpointError(f"{p}: a single .npy array, not an n-gram model")
                data = {k: z[k] for k in z.files}
            m = data.get("meta")
            if m is None or m.dtype != np.uint8 or m.ndim != 1:
                raise CheckpointError(f"{p}: not an rnnlm n-gram model (no uint8 meta)")
            meta = json.loads(m.tobytes().decode("utf-8"))
        except CheckpointError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError, NotImplementedError,
                RuntimeError, struct.error, OverflowError, UnicodeDecodeError, RecursionError) as e:
            why = "it holds pickled objects, refused" if "allow_pickle" in str(e) else f"{e}"
            raise CheckpointError(f"{p}: not a readable n-gram model ({why})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise CheckpointError(f"{p}: not an rnnlm n-gram model")
        if meta.get("version") != VERSION or meta.get("model") != cls._KIND:
            raise CheckpointError(f"{p}: holds {meta.get('model')!r} version {meta.get('version')!r}, "
                                  f"expected {cls._KIND!r} version {VERSION}")
        return meta, data

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save`; every array and setting is checked first."""
        meta, data = cls._read(path)
        model = cls()
        corpus = meta.get("corpus")
        if corpus is not None and not isinstance(corpus, dict):
            raise CheckpointError(f"{path}: bad corpus entry in the n-gram model's metadata")
        model.corpus_meta = corpus
        try:
            model._restore(meta, data)
        except (ConfigError, KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: inconsistent n-gram model ({e})") from None
        return model

    @staticmethod
    def _restore_ids(meta: dict) -> tuple[int, int | None]:
        v = _int_arg("vocab_size", meta["vocab_size"], 2)
        start = meta["special_ids"]["start"]
        return v, None if start is None else _int_arg("start_id", start, 0, v - 1)


def _int_array(data, key, shape=None) -> np.ndarray:
    a = data[key]
    if a.dtype.kind not in "iu" or a.ndim != 1 or (shape is not None and a.shape != shape):
        raise ValueError(f"{key} is {a.dtype} {a.shape}")
    a = a.astype(np.int64)
    if len(a) and a.min() < 0:
        raise ValueError(f"{key} holds negative values")
    return a


class KneserNey(_NgramModel):
    """Interpolated Kneser-Ney (Chen & Goodman 1998), orders 1..5.

    ``discount=None`` estimates modified-KN discounts D1, D2, D3+ per order from its count-of-counts;
    a number in (0, 1] is one absolute discount for every count and order.  After :meth:`fit`,
    ``discounts`` is the ``(order, 3)`` array of D1, D2, D3+ per order (lowest order first).
    """

    _KIND = "kneser-ney"

    def __init__(self, order: int = 3, discount: float | None = None):
        super().__init__()
        self.order = _int_arg("order", order, 1, MAX_ORDER)
        number = isinstance(discount, (int, float, np.number)) and not isinstance(discount, bool)
        ok = discount is None or (number and 0.0 < float(discount) <= 1.0)
        if not ok:
            raise ConfigError(f"discount must be None or a number in (0, 1], got {discount!r}")
        self.discount = None if discount is None else float(discount)
        self.discounts: np.ndarray | None = None
        self._keys: list[np.ndarray] = []    # per order: sorted k-gram keys
        self._counts: list[np.ndarray] = []  # per order: a_k of each key (int64)
        self._tables: list[_Order] = []

    def fit(self, sequences, vocab_size: int, *, stream: bool = False,
            start_id: int | None = None) -> KneserNey:
        """Count n-grams of ``sequences`` (list of 1-D int arrays, or one array with ``stream=True``)."""
        corpus = self._fit_args(sequences, vocab_size, stream, start_id)
        v = int(vocab_size)
        tokens, pos = corpus.tokens, corpus.pos
        pred = pos >= 1
        keys, ids, first = [], [], []  # per order: sorted keys; id of the k-gram ending at each position
        for k in range(1, self.order + 1):
            valid = pos >= k - 1
            key = tokens.copy()
            if k > 1:
                key[1:] = ids[-1][:-1] * v + tokens[1:]
            uniq, first_idx, inv = np.unique(key[valid], return_index=True, return_inverse=True)
            ids_k = np.full(len(tokens), -1, np.int64)
            ids_k[valid] = inv.reshape(-1)
            keys.append(uniq)
            ids.append(ids_k)
            first.append(np.flatnonzero(valid)[first_idx])  # one position where each k-gram ends
        counts = []
        for k in range(1, self.order + 1):
            ids_k, n_k = ids[k - 1], len(keys[k - 1])
            if k == self.order:  # raw counts of the predicted occurrences
                a = np.bincount(ids_k[pred & (ids_k >= 0)], minlength=n_k)
            else:  # N1+(. g): distinct (k+1)-grams ending in g, + raw count at the sequence's left edge
                a = np.bincount(ids_k[first[k]], minlength=n_k)
                a += np.bincount(ids_k[(pos == k - 1) & pred], minlength=n_k)
            counts.append(a.astype(np.int64))
        if self.discount is None:
            discounts = np.array([_modified_kn_discounts(a) for a in counts])
        else:
            discounts = np.full((self.order, 3), self.discount)
        self._set(v, None if start_id is None else int(start_id), keys, counts, discounts)
        return self

    def _set(self, vocab_size, start_id, keys, counts, discounts):
        """Install counts and discounts and build the look-up tables of every order."""
        self.vocab_size, self.start_id = vocab_size, start_id
        self._keys, self._counts, self.discounts = keys, counts, np.asarray(discounts, np.float64)
        self._tables = []
        for k in range(1, self.order + 1):
            a, key = counts[k - 1], keys[k - 1]
            d = np.concatenate([[0.0], self.discounts[k - 1]])[np.minimum(a, 3)]  # D(0) = 0
            prefix = key // vocab_size  # 0 for k = 1: the empty history
            n_hist = len(keys[k - 2]) if k > 1 else 1
            total = np.bincount(prefix, weights=a, minlength=n_hist)
            mass = np.bincount(prefix, weights=d, minlength=n_hist)
            seen = total > 0
            safe = np.where(seen, total, 1.0)
            gamma = np.append(np.where(seen, mass / safe, 1.0), 1.0)
            weight = np.append((a - d) / safe[prefix], 0.0)
            self._tables.append(_Order(key, weight, gamma))

    def _probs(self, corpus: _Corpus) -> np.ndarray:
        tokens, pos = corpus.tokens, corpus.pos
        p = self._uniform()[tokens]
        prev = None
        for k, tab in enumerate(self._tables, start=1):
            hist = np.zeros(len(tokens), np.int64)  # order 1: the empty history, id 0
            if k > 1:  # the (k-1)-gram ending just before; -1 (adds nothing) when the history is shorter
                hist = np.where(pos >= k - 1, np.roll(prev, 1), -1)
            gid = _lookup(tab.keys, np.where(hist >= 0, hist * self.vocab_size + tokens, -1))
            hid = np.where(hist >= 0, hist, len(tab.gamma) - 1)
            p = tab.weight[gid] + tab.gamma[hid] * p
            prev = gid
        return p

    def _window_id(self, window: np.ndarray) -> int:
        """Id of the n-gram ``window`` (1-D, up to order - 1 ids) in the training tables; -1 if never seen.
        The empty window is the empty history, id 0."""
        wid = 0
        for j, t in enumerate(window):  # extend to the right: key = id(prefix) * V + token (= token for j=0)
            wid = int(_lookup(self._keys[j], np.array([wid * self.vocab_size + t]))[0])
            if wid < 0:
                return -1
        return wid

    def distribution(self, history) -> np.ndarray:
        """``(V,)`` probabilities of the next token after ``history`` (1-D int array; only its last
        ``order - 1`` ids matter).  Sums to 1; 0 exactly for START."""
        h = self._history(history)
        v = self.vocab_size
        p = self._uniform()
        for k, tab in enumerate(self._tables, start=1):
            m = k - 1  # history length at this order
            if m > len(h):
                break
            hid = self._window_id(h[len(h) - m:])
            if hid < 0:
                break  # unseen history: so are all longer ones
            lo, hi = np.searchsorted(tab.keys, [hid * v, hid * v + v])
            num = np.zeros(v)
            num[tab.keys[lo:hi] - hid * v] = tab.weight[lo:hi]
            p = num + tab.gamma[hid] * p
        return p

    def _meta(self) -> dict:
        return {**super()._meta(), "discount": self.discount, "discounts": self.discounts.tolist()}

    def _arrays(self) -> dict:
        return {**{f"keys/{k}": a for k, a in enumerate(self._keys, 1)},
                **{f"counts/{k}": a for k, a in enumerate(self._counts, 1)}}

    def _restore(self, meta, data):
        self.order = _int_arg("order", meta["order"], 1, MAX_ORDER)
        v, start = self._restore_ids(meta)
        d = meta["discount"]
        self.discount = None if d is None else float(d)
        discounts = np.array(meta["discounts"], dtype=np.float64)
        if discounts.shape != (self.order, 3) or not np.all((discounts > 0) & (discounts <= _DISCOUNT_CAPS)):
            raise ValueError(f"discounts must be ({self.order}, 3) within (0, 1|2|3]")
        keys, counts = [], []
        for k in range(1, self.order + 1):
            key = _int_array(data, f"keys/{k}")
            counts.append(_int_array(data, f"counts/{k}", key.shape))
            limit = v * (len(keys[-1]) if k > 1 else 1)
            if np.any(np.diff(key) <= 0) or (len(key) and key[-1] >= limit):
                raise ValueError(f"keys/{k} are not strictly increasing in 0..{limit - 1}")
            if start is not None and np.any(counts[-1][key % v == start]):
                raise ValueError(f"counts/{k} predict START")
            keys.append(key)
        self._set(v, start, keys, counts, discounts)


class Unigram(_NgramModel):
    """Add-one (Laplace) unigram over the V ids: P(w) = (c(w) + 1) / (N + V'), where c counts the
    predicted tokens of the training data, N = sum c and V' = V (V - 1 with a START, which gets 0)."""

    _KIND = "unigram"

    def __init__(self):
        super().__init__()
        self.counts: np.ndarray | None = None  # (V,) int64

    def fit(self, sequences, vocab_size: int, *, stream: bool = False,
            start_id: int | None = None) -> Unigram:
        """Count the predicted tokens of ``sequences`` (as :meth:`KneserNey.fit`)."""
        corpus = self._fit_args(sequences, vocab_size, stream, start_id)
        counts = np.bincount(corpus.tokens[corpus.pos >= 1], minlength=int(vocab_size)).astype(np.int64)
        self._set(int(vocab_size), None if start_id is None else int(start_id), counts)
        return self

    def _set(self, vocab_size, start_id, counts):
        self.vocab_size, self.start_id, self.counts = vocab_size, start_id, counts
        n_pred = vocab_size - (start_id is not None)
        self._p = (counts + 1.0) / (counts.sum() + n_pred)
        if start_id is not None:
            self._p[start_id] = 0.0

    def _probs(self, corpus: _Corpus) -> np.ndarray:
        return self._p[corpus.tokens]

    def distribution(self, history=()) -> np.ndarray:
        """``(V,)`` add-one probabilities (the history is checked, then ignored)."""
        self._history(history)
        return self._p.copy()

    def _arrays(self) -> dict:
        return {"counts": self.counts}

    def _restore(self, meta, data):
        v, start = self._restore_ids(meta)
        counts = _int_array(data, "counts", (v,))
        if start is not None and counts[start]:
            raise ValueError("START has a non-zero count")
        self._set(v, start, counts)
