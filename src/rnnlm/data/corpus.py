"""The prepared corpus: :class:`Corpus` (encoded sentences, split, save/load) and :class:`EncodedText`.

A corpus holds its sentences as token ids of its :class:`~rnnlm.data.vocab.Vocabulary`: at word level
each sentence is ``[SENTENCE_START, w1, ..., wn, SENTENCE_END]``, at char level the characters of a
line. The tutorial's training pairs are ``X, Y = s[:-1], s[1:]`` (int32 arrays, :meth:`Corpus.xy`).

Storage: one flat ``ids`` (N,) int32 array for N tokens and ``offsets`` (S + 1,) int64 for S sentences
(sentence ``i`` is ``ids[offsets[i]:offsets[i + 1]]``); a corpus built from a list of arrays keeps the
list. ``stream()`` is the flat (N,) array.

Saved files (:meth:`Corpus.save`): ``NAME.npz`` holds ``ids`` (N,) int32, ``offsets`` (S + 1,) int64 and
``meta`` (M,) uint8 -- UTF-8 JSON of :meth:`Corpus.metadata` (file format ``rnnlm-corpus`` version 1:
level, vocabulary, statistics, settings, Punkt parameters). No pickle. ``NAME.json`` is the memory-mapped
format (version 2, :mod:`rnnlm.data.mapped`): the metadata, with the ids (uint16/uint32) and offsets in
``.npy`` files beside it; a loaded mapped corpus, and its splits, read their ids from the map.

Untrusted files: :meth:`Corpus.load` never unpickles (``allow_pickle=False``), checks array dtypes and
shapes, id ranges, offsets and the types of every JSON field, and recomputes the statistics that the
arrays determine; any damage is a :class:`~rnnlm.errors.CorpusError` naming the file.

New text is read and tokenized with the corpus's saved settings and Punkt parameters
(:meth:`Corpus.encode`, :meth:`Corpus.encode_file`), through the same streaming readers as
:func:`~rnnlm.data.pipeline.prepare`.
"""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnlm.data import mapped
from rnnlm.data.encoded import EncodedText
from rnnlm.data.readers import FORMATS, detect_format, report, require_content
from rnnlm.data.tokenize import LEVELS, SentenceSplitter, Settings, sentence_tokens, validate_settings
from rnnlm.data.vocab import SENTENCE_END, SENTENCE_START, TokenIds, Vocabulary, id_counts
from rnnlm.errors import ConfigError, CorpusError
from rnnlm.fileio import atomic_savez

__all__ = ["CORPUS_FILE_FORMAT", "CORPUS_FILE_VERSION", "Corpus", "EncodedText"]

CORPUS_FILE_FORMAT = "rnnlm-corpus"
CORPUS_FILE_VERSION = 1


def _as_int32_list(sentences: Iterable) -> list[np.ndarray]:
    return [np.asarray(s, dtype=np.int32).reshape(-1) for s in sentences]


def _views(ids: np.ndarray, offsets: np.ndarray, starts: np.ndarray | None = None) -> list[np.ndarray]:
    """The sentences of flat ``ids`` (N,) and ``offsets`` (S + 1,): S views into ``ids`` (int32 copies when
    ``ids`` is a map of another dtype); ``starts``: where each begins in ``ids`` (default: ``offsets``)."""
    begin = offsets[:-1] if starts is None else starts
    end = begin + np.diff(offsets)
    if ids.dtype == np.int32:
        return [ids[a:b] for a, b in zip(begin.tolist(), end.tolist(), strict=True)]
    return [np.array(ids[a:b], np.int32) for a, b in zip(begin.tolist(), end.tolist(), strict=True)]


@dataclass
class _Flat:
    """Sentences stored flat: ``ids`` (N,) int32 (or a read-only map, uint16/uint32) and ``offsets`` (S + 1,)
    int64 (see :class:`Corpus`); ``starts`` (S,) int64 where each sentence begins in ``ids`` when they are
    a selection (a split of a mapped corpus), None when sentence i begins at ``offsets[i]``."""

    ids: np.ndarray
    offsets: np.ndarray
    starts: np.ndarray | None = None


class Corpus:
    """A prepared, encoded corpus.

    Attributes:
        vocab: the :class:`Vocabulary`.
        level: ``"word"`` or ``"char"``.
        sentences: list of int32 arrays; at word level each is ``[START, w1, ..., wn, END]``. A corpus
            from :func:`prepare` or :meth:`load` keeps one flat id array (N,) and offsets (S + 1,)
            instead -- a 50-million-token corpus is then 200 MB, not millions of small arrays -- and
            makes ``sentences`` (read-only views into the flat array) on first use.
        stats: the preparation statistics (see :func:`prepare`).
        settings: how text was read and tokenized (format, tokenizer, lowercase, column, field, ...),
            reused by :meth:`encode_text` / :meth:`encode_file`.
    """

    def __init__(
        self,
        vocab: Vocabulary,
        sentences: Sequence,
        level: str = "word",
        stats: dict | None = None,
        settings: dict | None = None,
        splitter: SentenceSplitter | dict | None = None,
    ):
        if level not in LEVELS:
            raise ConfigError(f"unknown level {level!r} (choose from {', '.join(LEVELS)})")
        self.vocab = vocab
        self.level = level
        self._ids: np.ndarray | None = None  # flat storage (N,) int32 and offsets (S + 1,) int64 ...
        self._offsets: np.ndarray | None = None
        self._starts: np.ndarray | None = None  # ... (S,) where each sentence begins (a mapped selection)
        self._sentences: list[np.ndarray] | None = None  # ... or a list of sentences
        self._counts: np.ndarray | None = None  # token counts, when a load already counted them
        if isinstance(sentences, _Flat):
            self._ids, self._offsets, self._starts = sentences.ids, sentences.offsets, sentences.starts
            if self._ids.flags.writeable:
                self._ids.flags.writeable = False  # the sentence views share it
        else:
            self._sentences = _as_int32_list(sentences)
        self.stats: dict = dict(stats or {})
        validate_settings(settings or {})
        self.settings: dict = Settings.from_json({"level": level, **(settings or {})}).to_json()
        self._splitter = splitter  # SentenceSplitter, its JSON (lazily rebuilt) or None

    # -- construction --------------------------------------------------------------------------------
    @classmethod
    def encoder(cls, vocab: Vocabulary, meta: dict | None = None, format: str | None = None) -> Corpus:
        """An empty corpus that tokenizes new text like the one ``meta`` describes (the ``corpus`` entry
        of a checkpoint, or :meth:`metadata`): its level, settings and Punkt parameters; ``format``
        overrides how files are read. Without ``meta``: whitespace-separated lines."""
        meta = meta or {}
        level = meta.get("level") or ("char" if vocab.start_index is None else "word")
        settings = dict(meta.get("settings") or {})
        if format is not None:
            settings["format"] = format
        return cls(vocab, [], level, settings=settings, splitter=meta.get("splitter"))

    @classmethod
    def from_tokens(
        cls,
        token_lists: Iterable[Sequence[str]],
        vocab_size: int | None = None,
        unk_token: str | None = None,
        wrap: bool = True,
    ) -> Corpus:
        """A word-level corpus from in-memory token lists (tests, small experiments).

        Each list is one sentence; with ``wrap`` it is wrapped in SENTENCE_START/SENTENCE_END. New text
        for :meth:`encode_text` is then read as whitespace-separated lines.
        """
        tokens = TokenIds(wrap=wrap)
        for t in token_lists:
            tokens.add(t)
        vocab, ids, offsets, n_distinct = tokens.vocabulary(
            vocab_size, unk_token or tokens.detect_unk(), (SENTENCE_START, SENTENCE_END)
        )
        corpus = cls(
            vocab,
            _views(ids, offsets),
            "word",
            settings={"format": "lines", "tokenizer": "whitespace", "lowercase": False},
        )
        corpus.stats = corpus.count_stats(
            {
                "source": None,
                "format": "lines",
                "tokenizer": "whitespace",
                "level": "word",
                **vocab.stats(n_distinct, vocab_size),
            }
        )
        return corpus

    @classmethod
    def from_arrays(cls, vocab: Vocabulary, ids, offsets, level: str = "word", **kwargs) -> Corpus:
        """A corpus over flat ``ids`` (N,) int32: sentence ``i`` is ``ids[offsets[i]:offsets[i + 1]]``."""
        ids = np.ascontiguousarray(ids, dtype=np.int32).reshape(-1)
        offsets = np.ascontiguousarray(offsets, dtype=np.int64).reshape(-1)
        if len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(ids) or np.any(np.diff(offsets) < 0):
            raise ConfigError("offsets must rise from 0 to len(ids)")
        return cls(vocab, _Flat(ids, offsets), level, **kwargs)

    # -- views ---------------------------------------------------------------------------------------
    @property
    def sentences(self) -> list[np.ndarray]:
        if self._sentences is None:
            self._sentences = _views(self._ids, self._offsets, self._starts)
        return self._sentences

    @property
    def mapped(self) -> bool:
        """Whether the ids are read from a memory map (a ``.json`` corpus or one of its splits)."""
        return self._ids is not None and isinstance(self._ids, np.memmap)

    def segments(self) -> mapped.Segments:
        """``(ids, starts, lengths)``: sentence i is ``ids[starts[i]:starts[i] + lengths[i]]``, not copying
        a mapped corpus's ids (batching reads them a batch at a time, :mod:`rnnlm.data.batching`)."""
        ids, offsets = (self._ids, self._offsets) if self._ids is not None else self._flat()
        lengths = np.diff(offsets)
        return mapped.Segments(ids, offsets[:-1] if self._starts is None else self._starts, lengths)

    def token_counts(self) -> np.ndarray:
        """How often each vocabulary id occurs, (V,) int64 (a mapped corpus is read a slice at a time)."""
        if self._counts is None:
            if self._ids is not None:
                self._counts = mapped.counts(*self.segments(), len(self.vocab))
            else:
                return id_counts(self.stream(), len(self.vocab))
        return self._counts

    def subset(self, indices, stats: dict | None = None, counts=None) -> Corpus:
        """The sentences ``indices`` (in that order), sharing this corpus's ids when they are a map (no copy;
        less than an eighth of a map is read into memory instead, without touching the map) and copied
        otherwise; same vocabulary and settings; statistics: ``stats`` (default this corpus's) with the
        counts of the subset (``counts``: its token counts, when known)."""
        indices = np.asarray(indices, np.int64)
        ids, starts, lengths = self.segments()
        chosen = lengths[indices]
        offsets = np.concatenate([[0], np.cumsum(chosen)]).astype(np.int64)
        # a small share of a mapped corpus (a validation split) is read into memory, the rest stays mapped
        small = mapped.read_segments(ids, starts[indices], chosen) if 8 * len(indices) < len(self) else None
        if self.mapped and small is None:
            sub = Corpus(self.vocab, _Flat(ids, offsets, starts[indices]), self.level, settings=self.settings,
                         splitter=self._splitter)
        elif small is not None:
            sub = Corpus.from_arrays(self.vocab, small, offsets, self.level, settings=self.settings,
                                     splitter=self._splitter)
        else:
            sub = Corpus.from_arrays(self.vocab, mapped.iter_concat(ids, starts[indices], chosen), offsets,
                                     self.level, settings=self.settings, splitter=self._splitter)
        sub._counts = None if counts is None else np.asarray(counts, np.int64)
        sub.stats = sub.count_stats(dict(self.stats if stats is None else stats))
        return sub

    @sentences.setter
    def sentences(self, value) -> None:
        self._sentences = _as_int32_list(value)
        self._ids = self._offsets = self._starts = self._counts = None

    def _flat(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, offsets)``; computed (not kept) for a list-backed corpus, whose list may change, and as an
        int32 copy for a mapped one (whole-corpus operations; batching reads :meth:`segments` instead)."""
        if self._ids is not None and self._offsets is not None:
            if self._starts is None and self._ids.dtype == np.int32:
                return self._ids, self._offsets
            ids, starts, lengths = self.segments()
            return mapped.iter_concat(ids, starts, lengths), self._offsets
        offsets = np.zeros(len(self._sentences) + 1, dtype=np.int64)
        np.cumsum([len(s) for s in self._sentences], out=offsets[1:])
        if not self._sentences:
            return np.zeros(0, dtype=np.int32), offsets
        return np.concatenate(self._sentences).astype(np.int32, copy=False), offsets

    def __len__(self) -> int:
        if self._sentences is None:
            return len(self._offsets) - 1
        return len(self._sentences)

    def __repr__(self) -> str:
        return (
            f"Corpus(level={self.level!r}, sentences={len(self)}, tokens={self.n_tokens}, "
            f"vocab={len(self.vocab)})"
        )

    @property
    def n_tokens(self) -> int:
        if self._ids is not None:
            return int(self._offsets[-1])
        return int(sum(len(s) for s in self._sentences))

    def xy(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The tutorial's training pairs: ``x = s[:-1]``, ``y = s[1:]`` per sentence (int32)."""
        return [s[:-1] for s in self.sentences], [s[1:] for s in self.sentences]

    def stream(self) -> np.ndarray:
        """All sentences concatenated into one int32 array (at char level: the text's characters).

        For a flat-stored corpus this is its (read-only) id array itself, not a copy; for a mapped corpus
        (other than int32) a copy: batching reads :meth:`segments` instead.
        """
        return self._flat()[0]

    def decode(self, ids) -> str:
        """Ids back to text: characters joined at char level, tokens joined by spaces at word level."""
        tokens = self.vocab.decode(ids)
        return "".join(tokens) if self.level == "char" else " ".join(tokens)

    # -- splitting -----------------------------------------------------------------------------------
    def split(
        self, valid: float = 0.05, test: float = 0.05, seed: int = 0, shuffle: bool | None = None
    ) -> dict[str, Corpus]:
        """Deterministic train/valid/test split sharing this vocabulary.

        ``shuffle=None`` shuffles sentences (with ``seed``) at word level and keeps them contiguous at
        char level (train = the first part, then valid, then test, as char-rnn does). A fraction > 0
        gets at least one sentence when the corpus has at least three.
        """
        for name, frac in (("valid", valid), ("test", test)):
            if not 0 <= frac < 1:
                raise ConfigError(f"{name} fraction must be in [0, 1), got {frac}")
        if valid + test >= 1:
            raise ConfigError(f"valid + test fractions must be < 1, got {valid + test}")
        n = len(self)
        if shuffle is None:
            shuffle = self.level == "word"
        order = np.random.RandomState(seed).permutation(n) if shuffle else np.arange(n)

        def size(frac):
            k = int(round(frac * n))
            return 1 if frac > 0 and k == 0 and n >= 3 else k

        n_valid, n_test = size(valid), size(test)
        n_train = n - n_valid - n_test
        parts = {
            "train": order[:n_train],
            "valid": order[n_train : n_train + n_valid],
            "test": order[n_train + n_valid :],
        }
        # sentences keep corpus order; a mapped corpus's splits read its map (no copy), and the training
        # split's counts are the whole's minus the others' (no pass over the map)
        out = {k: self.subset(np.sort(parts[k]), {**self.stats, "split": k, "split_seed": seed})
               for k in ("valid", "test")}
        rest = None
        if self.mapped and self._counts is not None:
            rest = self._counts - out["valid"].token_counts() - out["test"].token_counts()
        stats = {**self.stats, "split": "train", "split_seed": seed}
        return {"train": self.subset(np.sort(parts["train"]), stats, rest), **out}

    def count_stats(self, base: dict) -> dict:
        """``base`` plus the statistics the ids determine: sentences, tokens, words (tokens other than
        SENTENCE_START/END), unknown_tokens and unknown_rate (= unknown_tokens / words)."""
        stats = dict(base)
        special = [i for i in (self.vocab.start_index, self.vocab.end_index) if i is not None]
        counts = self.token_counts()
        n_tokens = self.n_tokens
        words = int(n_tokens - counts[special].sum())
        unknown = int(counts[self.vocab.unk_index])
        stats.update(
            sentences=len(self),
            tokens=n_tokens,
            words=words,
            unknown_tokens=unknown,
            unknown_rate=unknown / words if words else 0.0,
        )
        return stats

    # -- encoding new text ---------------------------------------------------------------------------
    def _get_splitter(self) -> SentenceSplitter | None:
        if isinstance(self._splitter, dict):
            self._splitter = SentenceSplitter.from_json(self._splitter)
        return self._splitter

    def _settings(self, **overrides) -> Settings:
        s = Settings.from_json(self.settings)
        for k, v in overrides.items():
            if v is not None:
                setattr(s, k, v)
        return s

    def _splitter_for(self, s: Settings, sample: Iterable[str]) -> SentenceSplitter | None:
        """The corpus's Punkt splitter when ``s`` needs one (trained on ``sample`` when it has none)."""
        if not s.needs_splitter:
            return None
        return self._get_splitter() or SentenceSplitter.get(sample)

    def _encode_tokens(self, token_lists: Iterable[list[str]], s: Settings) -> EncodedText:
        """Encode token lists (wrapped in SENTENCE_START/END at word level), counting OOV words."""
        word = s.level == "word"
        special = {SENTENCE_START, SENTENCE_END} if word else set()
        known = self.vocab.word_to_index
        oov: Counter = Counter()
        n_words = 0
        sentences = []
        for tokens in token_lists:
            for t in tokens:
                if t not in special:
                    n_words += 1
                    if t not in known:
                        oov[t] += 1
            sentences.append(self.vocab.encode([SENTENCE_START, *tokens, SENTENCE_END] if word else tokens))
        return EncodedText(
            sentences,
            n_words,
            int(sum(oov.values())),
            dict(oov.most_common()),
            int(sum(max(len(x) - 1, 0) for x in sentences)),
        )

    def encode(self, text_or_lines: str | Sequence[str]) -> EncodedText:
        """Encode new text with this corpus's vocabulary and tokenization; counts OOV words.

        A string is one document (for a ``lines`` corpus: its lines are sentences); a list holds one
        document (or line) per item. Filters used at preparation (``drop_containing``, ``min_length``)
        are not applied: evaluation text is scored as it is.
        """
        units = [text_or_lines] if isinstance(text_or_lines, str) else list(text_or_lines)
        s = self._settings()
        return self._encode_tokens(sentence_tokens(units, False, s, self._splitter_for(s, units)), s)

    def encode_text(self, text_or_lines: str | Sequence[str]) -> list[np.ndarray]:
        """Encoded sentences (int32 arrays, wrapped at word level) of new text; see :meth:`encode`."""
        return self.encode(text_or_lines).sentences

    def encode_file(
        self, path, format: str | None = None, column: str | None = None, field: str | None = None
    ) -> EncodedText:
        """Encode a file (e.g. a test set) the way the training corpus was read.

        ``format=None`` reads it in the training corpus's format (``"auto"`` detects it anew); the
        tokenizer, lowercasing and level are always the training corpus's.
        """
        from rnnlm.data import datasets

        path = datasets.resolve(path, kind="corpus")
        s = self._settings(column=column, field=field)
        if format is not None:
            if format not in FORMATS:
                raise ConfigError(f"unknown format {format!r} (choose from {', '.join(FORMATS)})")
            s.format = format
        if s.format == "auto":
            s.format = detect_format(path)[0]
        require_content(path)
        with closing(s.punkt_sample(path)) as sample:
            splitter = self._splitter_for(s, sample)
        info: dict = {}
        units, presplit = s.stream(path, info, checked=True)
        encoded = self._encode_tokens(sentence_tokens(units, presplit, s, splitter), s)
        report(path, info)
        encoded.replacement_chars = info.get("replacement_chars", 0)
        if not encoded.sentences:
            raise CorpusError(f"{path}: no sentences found")
        return encoded

    # -- persistence ---------------------------------------------------------------------------------
    def metadata(self) -> dict:
        """Everything but the ids: format, level, vocabulary, statistics, settings and Punkt parameters
        (what a checkpoint stores so new text is tokenized like this corpus)."""
        splitter = self._splitter
        if isinstance(splitter, SentenceSplitter):
            splitter = splitter.to_json()
        return {
            "format": CORPUS_FILE_FORMAT,
            "version": CORPUS_FILE_VERSION,
            "level": self.level,
            "vocab": self.vocab.to_json(),
            "stats": self.stats,
            "settings": self.settings,
            "splitter": splitter,
        }

    def save(self, path) -> Path:
        """Write an ``.npz`` (``ids`` int32, ``offsets`` int64, ``meta`` UTF-8 JSON as uint8): no pickle; or,
        for a name ending in ``.json``, the memory-mapped format (:mod:`rnnlm.data.mapped`).

        Written to a temporary file in the same folder and moved into place, so a failure never leaves
        a partial file at ``path``.
        """
        path = Path(path)
        if mapped.is_mapped(path):
            return mapped.write(path, self.metadata(), *self.segments(), len(self.vocab))
        ids, offsets = self._flat()
        meta = np.frombuffer(json.dumps(self.metadata(), ensure_ascii=False).encode("utf-8"), dtype=np.uint8)
        try:
            _atomic_savez(path, ids=ids, offsets=offsets, meta=meta)
        except OSError as e:
            if e.filename is not None:
                raise
            raise OSError(e.errno, e.strerror or str(e), str(path)) from None  # say which file
        return path

    @classmethod
    def load(cls, path) -> Corpus:
        """Load a corpus written by :meth:`save` (``allow_pickle=False``); :class:`CorpusError` otherwise. A
        ``.json`` corpus keeps its ids in a read-only memory map."""
        p = Path(path)
        if p.is_dir():
            raise CorpusError(f"{p}: is a directory, not a prepared corpus")
        if not p.exists():
            raise CorpusError(f"{p}: no such file")
        if mapped.is_mapped(p):
            meta, ids, offsets, counts = mapped.read(p, lambda m: len(_vocabulary(p, m)))
            return cls._from_file(p, meta, ids, offsets, counts)
        try:
            # allow_pickle=False: an object array (a pickle) raises ValueError instead of running code.
            with np.load(p, allow_pickle=False) as z:
                if not {"ids", "offsets", "meta"} <= set(z.files):
                    raise CorpusError(f"{p}: not a prepared rnnlm corpus (no ids/offsets/meta arrays)")
                raw = {k: z[k] for k in ("ids", "offsets", "meta")}
            for k, want in (("ids", "i"), ("offsets", "i"), ("meta", "u")):
                if raw[k].dtype.kind not in (want, "u") or raw[k].ndim != 1:
                    raise CorpusError(
                        f"{p}: array {k!r} is {raw[k].dtype} with shape {raw[k].shape}; expected a 1-D "
                        f"{'uint8' if k == 'meta' else 'integer'} array"
                    )
            ids = raw["ids"].astype(np.int32, copy=False)
            offsets = raw["offsets"].astype(np.int64, copy=False)
            meta = json.loads(raw["meta"].astype(np.uint8, copy=False).tobytes().decode("utf-8"))
        except CorpusError:
            raise
        except _NPZ_READ_ERRORS as e:
            raise CorpusError(f"{p}: not a readable prepared corpus ({type(e).__name__}: {e})") from None
        return cls._from_file(p, meta, ids, offsets)

    @classmethod
    def _from_file(cls, p: Path, meta, ids, offsets, counts=None) -> Corpus:
        """A loaded file's corpus, every metadata field checked (``counts``: of every id, when counted)."""
        if not isinstance(meta, dict) or meta.get("format") != CORPUS_FILE_FORMAT:
            raise CorpusError(f"{p}: not a prepared rnnlm corpus")
        version = meta.get("version", 0)
        if not isinstance(version, int) or version > (mapped.MAPPED_VERSION if counts is not None else 1):
            raise CorpusError(f"{p}: corpus file version {version!r} is not one this rnnlm supports")
        if meta.get("level", "word") not in LEVELS:
            raise CorpusError(f"{p}: unknown level {meta.get('level')!r}")
        for key in ("stats", "settings", "splitter"):
            if meta.get(key) is not None and not isinstance(meta[key], dict):
                raise CorpusError(f"{p}: bad {key!r} entry in the corpus metadata")
        vocab = _vocabulary(p, meta)
        if (
            offsets.ndim != 1
            or len(offsets) < 1
            or offsets[0] != 0
            or offsets[-1] != len(ids)
            or np.any(np.diff(offsets) < 0)
        ):
            raise CorpusError(f"{p}: inconsistent offsets")
        if counts is None and len(ids) and (ids.min() < 0 or ids.max() >= len(vocab)):
            raise CorpusError(f"{p}: token ids out of range for its vocabulary of {len(vocab)}")
        try:
            corpus = cls(
                vocab,
                _Flat(ids, offsets),
                meta.get("level", "word"),
                None,
                meta.get("settings"),
                meta.get("splitter"),
            )
        except (ConfigError, TypeError) as e:
            raise CorpusError(f"{p}: bad corpus metadata ({e})") from None
        corpus._counts = counts
        corpus.stats = corpus._loaded_stats(meta.get("stats") or {})
        return corpus

    def _loaded_stats(self, stats: dict) -> dict:
        """A file's stats, kept where they are plain values of the right type; the ones the arrays and
        vocabulary determine are recomputed, so a damaged or hand-made file cannot lie about them."""
        clean = {k: v for k, v in stats.items() if isinstance(v, (str, int, float, bool, type(None)))}
        unique = clean.get("unique_tokens")
        if not isinstance(unique, int) or isinstance(unique, bool):
            unique = int(np.count_nonzero(self.token_counts()))
        requested = clean.get("requested_vocab_size")
        if requested is not None and (not isinstance(requested, int) or isinstance(requested, bool)):
            requested = None
        return self.count_stats({**clean, **self.vocab.stats(unique, requested)})


def _vocabulary(p: Path, meta) -> Vocabulary:
    """The vocabulary of a corpus file's metadata; :class:`CorpusError` naming the file otherwise."""
    try:
        return Vocabulary.from_json(meta["vocab"])
    except (ConfigError, KeyError, TypeError, AttributeError) as e:
        raise CorpusError(f"{p}: bad vocabulary ({e})") from None


#: What reading a damaged or hostile .npz can raise: zipfile and zlib errors, an unknown compression
#: method (NotImplementedError), "encrypted" (RuntimeError), a header claiming an absurd shape
#: (MemoryError), a pickled object array (ValueError)...
_NPZ_READ_ERRORS = (OSError, ValueError, KeyError, EOFError, UnicodeDecodeError, RecursionError,
                    zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, struct.error,
                    OverflowError, MemoryError)


def _atomic_savez(path: Path, **arrays) -> None:
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise CorpusError(f"{path}: folder {folder} does not exist")
    atomic_savez(path, compress=True, **arrays)


