"""Corpus pipeline: readers, tokenization, :class:`Vocabulary` and the prepared :class:`Corpus`.

This is the tutorial's part 2 preprocessing (and part 4's filtering), made robust::

    comments = read_reddit_csv("reddit-comments-2015-08.csv")          # column "body"
    sentences = [s for c in comments for s in sent_tokenize(c.lower())]
    tokens = [[SENTENCE_START] + word_tokenize(s) + [SENTENCE_END] for s in sentences]
    vocab = the vocab_size-1 most frequent tokens + UNKNOWN_TOKEN
    X, Y = s[:-1], s[1:]                                                  # int32 arrays

:func:`prepare` does all of it for any of the supported formats and returns a :class:`Corpus`.
This module never imports a graph engine; NLTK is imported lazily (only the ``nltk`` tokenizer
needs it).

Formats (``format=``)
    ``csv``    one document per row of column ``column`` (default ``body``, the tutorial's reddit CSV;
               quoted multi-line fields; a last row cut mid-field is dropped with a warning).
    ``jsonl``  one JSON object per line; the document is its string field ``field`` (default ``text``).
    ``text``   plain text; at word level with the ``nltk`` tokenizer the documents are its paragraphs
               (blank-line separated), with ``whitespace`` every non-empty line is a sentence.
    ``lines``  pre-tokenized corpora (Penn Treebank, WikiText): every non-empty line is one sentence.
    ``auto``   by extension (``.csv``, ``.jsonl``/``.ndjson``/``.json``, ``.tokens`` -> lines), else by
               content (JSON objects -> jsonl, a ``<unk>`` token -> lines, otherwise text). What was picked
               and why is recorded in ``stats["format"]`` and ``stats["format_reason"]``.

Tokenizers (``tokenizer=``)
    ``nltk``       sentences by NLTK Punkt (see :class:`SentenceSplitter`; not used for ``lines``, where a line
                   is a sentence), words by ``nltk.word_tokenize(s, preserve_line=True)`` (Treebank style).
                   Default for word level with text/csv/jsonl.
    ``whitespace`` every non-empty line is one sentence, tokens are ``line.split()``: tokens are never split
                   or rewritten (``<unk>`` stays one token). Default for ``lines``.
    ``char``       character level (``level="char"``): tokens are characters.

Lowercasing (``lowercase=``): ``None`` means the tutorial's default, which depends on the tokenizer:
``True`` with ``nltk`` (the tutorial lowercases every comment before ``sent_tokenize``), ``False`` with
``whitespace`` (pre-tokenized corpora are used as they are) and at char level.

Sentences at word level are wrapped as ``[SENTENCE_START, w1, ..., wn, SENTENCE_END]``. At char level
there are no start/end tokens: a "sentence" is a line including its ``"\\n"`` (for ``text``, blank lines
are kept and joined to the line before them, so :meth:`Corpus.stream` reproduces the text exactly) or a
csv/jsonl record plus ``"\\n"``.

Large corpora: :func:`prepare` streams. It reads one line (or CSV record) at a time and encodes each
sentence at once into a flat int32 array, so peak memory is the encoded corpus (4 bytes a token, 8 a
sentence) plus an entry per distinct token -- never the text or its token strings (50M tokens: 51 s,
+400 MB; docs/benchmarks-corpus.md). ``workers=N`` tokenizes in N processes (same result).

Untrusted files: :meth:`Corpus.load` never unpickles (``allow_pickle=False``), checks array dtypes and
shapes, id ranges, offsets and the types of every JSON field, and recomputes the statistics that the
arrays determine; any damage is a :class:`CorpusError` naming the file.

Sentence splitting without network: if NLTK's ``punkt_tab`` data is installed it is used; otherwise a
:class:`nltk.tokenize.punkt.PunktTrainer` is trained on the corpus itself (its first
:data:`PUNKT_TRAIN_CHARS` characters). The trained parameters are saved with the corpus, so new text
(:meth:`Corpus.encode_text`) is split exactly as the training text was.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
import struct
import warnings
import zipfile
import zlib
from array import array
from collections import Counter, defaultdict, deque
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnlm.errors import ConfigError, CorpusError

__all__ = [
    "CHAR_UNKNOWN_TOKEN",
    "FORMATS",
    "LEVELS",
    "SENTENCE_END",
    "SENTENCE_START",
    "SPLITTERS",
    "TOKENIZERS",
    "UNKNOWN_TOKEN",
    "Corpus",
    "CorpusWarning",
    "EncodedText",
    "SentenceSplitter",
    "Vocabulary",
    "detect_format",
    "prepare",
    "read_jsonl",
    "read_lines",
    "read_reddit_csv",
    "read_text",
    "word_tokenize",
]

SENTENCE_START = "SENTENCE_START"
SENTENCE_END = "SENTENCE_END"
UNKNOWN_TOKEN = "UNKNOWN_TOKEN"
#: The unknown token at char level: one character (U+FFFD, the Unicode replacement character), so a
#: decoded id sequence joins back into a string.
CHAR_UNKNOWN_TOKEN = "\ufffd"
#: Unknown-word markers that pre-tokenized corpora (PTB, WikiText) already contain; when ``unk_token`` is
#: not given and the corpus contains one of these, it becomes the vocabulary's unknown token.
KNOWN_UNK_MARKERS = ("<unk>", "<UNK>")

FORMATS = ("auto", "text", "lines", "csv", "jsonl")
TOKENIZERS = ("nltk", "whitespace", "char")
LEVELS = ("word", "char")
SPLITTERS = ("auto", "installed", "trained")

#: Punkt is trained on at most this many characters of the corpus (speed; more adds little).
PUNKT_TRAIN_CHARS = 2_000_000

CORPUS_FILE_FORMAT = "rnnlm-corpus"
CORPUS_FILE_VERSION = 1

_EXTENSION_FORMATS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".tokens": "lines",
}


class CorpusWarning(UserWarning):
    """Something in a corpus file was repaired or skipped (a cut last row, undecodable bytes...)."""


def _warn(message: str) -> None:
    warnings.warn(message, CorpusWarning, stacklevel=3)


# --------------------------------------------------------------------------------------------------
# Readers
#
# Every reader streams: a file is read one line at a time (bytes split at b"\n", then decoded), so
# memory holds one line (one CSV record) at a time, never the whole file.  Decoding a line on its own
# gives exactly what decoding the whole file would: "\n" is ASCII, so it ends any invalid UTF-8
# sequence, and the replacement characters (U+FFFD) come out the same.
# --------------------------------------------------------------------------------------------------


def _check_path(path) -> Path:
    p = Path(path)
    if p.is_dir():
        raise CorpusError(f"{p}: is a directory, not a corpus file")
    if not p.exists():
        raise CorpusError(f"{p}: no such file")
    if not p.is_file():
        raise CorpusError(f"{p}: not a regular file")
    return p


class _TextLines:
    """The decoded lines of a UTF-8 file (BOM stripped), each with its ``"\\n"`` (the last may lack it).

    Undecodable bytes become U+FFFD; :attr:`replaced` counts them (U+FFFD characters genuinely in the
    file are not counted). :attr:`bytes_read` drives progress bars. Iterate once.
    """

    def __init__(self, path):
        self.path = _check_path(path)
        self.replaced = 0
        self.bytes_read = 0

    def __iter__(self) -> Iterator[str]:
        p = self.path
        try:
            f = open(p, "rb")
        except OSError as e:
            raise CorpusError(f"{p}: cannot read ({e.strerror or e})") from None
        with f:
            first = True
            while True:
                try:
                    raw = f.readline()
                except OSError as e:
                    raise CorpusError(f"{p}: cannot read ({e.strerror or e})") from None
                if not raw:
                    return
                self.bytes_read += len(raw)
                if first:
                    first = False
                    if raw.startswith(codecs.BOM_UTF8):
                        raw = raw[len(codecs.BOM_UTF8) :]
                line = raw.decode("utf-8", errors="replace")
                if "\ufffd" in line:
                    self.replaced += line.count("\ufffd") - raw.count(b"\xef\xbf\xbd")
                yield line


def _require_content(path) -> None:
    """Raise "file is empty" unless the file holds a non-whitespace character (reads up to the first)."""
    for line in _TextLines(path):
        if line.strip():
            return
    raise CorpusError(f"{Path(path)}: file is empty")


def _report(path, info: dict) -> None:
    """Warn about what a reader repaired or skipped (``info`` filled in while streaming)."""
    if info.get("replacement_chars"):
        _warn(f"{path}: {info['replacement_chars']} undecodable byte sequence(s) replaced with U+FFFD")
    if info.get("truncated_rows"):
        _warn(
            f"{path}: the last row (line {info['truncated_line']}) is cut off inside a quoted field; "
            f"loaded the {info['rows']} complete rows before it"
        )
    if info.get("skipped_rows"):
        _warn(f"{path}: skipped {info['skipped_rows']} row(s) without a {info['column']!r} field")


def _ends_inside_quotes(raw: str, quotechar: str = '"') -> bool:
    """True when CSV text ``raw`` (one record) ends inside a quoted field, i.e. the record was cut off."""
    in_quotes = False
    at_field_start = True
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if in_quotes:
            if c == quotechar:
                if i + 1 < n and raw[i + 1] == quotechar:
                    i += 1  # doubled quote: a literal quote inside the field
                else:
                    in_quotes = False
        elif c == quotechar and at_field_start:
            in_quotes = True
            at_field_start = False
        elif c in ",\r\n":
            at_field_start = True
        elif c == " " and at_field_start:
            pass  # skipinitialspace
        else:
            at_field_start = False
        i += 1
    return in_quotes


def _shorten(items: Iterable[str], limit: int = 8) -> str:
    items = [repr(x if len(x) <= 30 else x[:27] + "...") for x in items]
    more = f", ... ({len(items)} in all)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


# The csv module wants lines split the way open(newline="") splits them: at "\r\n", "\r" or "\n".
_CSV_LINE_RE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def _iter_csv(path, column: str, info: dict, checked: bool = False) -> Iterator[str]:
    """The non-empty ``column`` values of a CSV file with a header row, streamed.

    Fills ``info`` (replacement_chars, rows, truncated_rows, skipped_rows). A last record cut off
    inside a quoted field is left out (one record of look-ahead decides which record is the last).
    """
    if not checked:
        _require_content(path)
    source = info["_source"] = _TextLines(path)
    record: list[str] = []  # the raw lines of the record being read

    def pieces():
        for line in source:
            for piece in _CSV_LINE_RE.findall(line) if "\r" in line else (line,):
                record.append(piece)
                yield piece

    info.update(replacement_chars=0, rows=0, truncated_rows=0, skipped_rows=0, column=column)
    reader = csv.reader(pieces(), skipinitialspace=True)  # the tutorial's dialect
    old_limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)  # a huge field is data, not an error
    found = 0
    try:
        try:
            header = next(reader)
        except StopIteration:  # pragma: no cover - _require_content rejects empty files
            raise CorpusError(f"{path}: file is empty") from None
        except csv.Error as e:
            raise CorpusError(f"{path}: line {reader.line_num}: malformed CSV header ({e})") from None
        names = [h.strip() for h in header]
        if column in names:
            col = names.index(column)
        else:
            lowered = [h.lower() for h in names]
            if column.lower() not in lowered:
                raise CorpusError(
                    f"{path}: no column {column!r} in the CSV header (columns: {_shorten(names)}); "
                    f"choose one with --column"
                )
            col = lowered.index(column.lower())
        pending = None  # (first line number, row, raw lines): yielded once the next record is read
        while True:
            record = []
            start = reader.line_num
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                raise CorpusError(f"{path}: line {reader.line_num}: malformed CSV ({e})") from None
            finally:
                info["replacement_chars"] = source.replaced
            if pending is not None:
                value = _csv_value(pending[1], col, info)
                if value is not None:
                    found += 1
                    yield value
            pending = (start, row, record)
        if pending is not None:
            if _ends_inside_quotes("".join(pending[2])):
                info["truncated_rows"] = 1
                info["truncated_line"] = pending[0] + 1
            else:
                value = _csv_value(pending[1], col, info)
                if value is not None:
                    found += 1
                    yield value
    finally:
        csv.field_size_limit(old_limit)
    if not found:
        raise CorpusError(f"{path}: no non-empty {column!r} values in the CSV")


def _csv_value(row: list[str], col: int, info: dict) -> str | None:
    info["rows"] += 1
    if not row:
        return None  # blank line
    if len(row) <= col:
        info["skipped_rows"] += 1
        return None
    return row[col] if row[col].strip() else None


def _iter_jsonl(path, field: str, info: dict, checked: bool = False) -> Iterator[str]:
    """The non-empty string values of ``field`` in a JSON-lines file, streamed; fills ``info``."""
    if not checked:
        _require_content(path)
    source = info["_source"] = _TextLines(path)
    info.update(replacement_chars=0, rows=0)
    found = 0
    for lineno, line in enumerate(source, 1):
        info["replacement_chars"] = source.replaced
        line = line.removesuffix("\n")
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise CorpusError(f"{path}: line {lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
        except RecursionError:
            raise CorpusError(f"{path}: line {lineno}: invalid JSON (nested too deeply)") from None
        if not isinstance(obj, dict):
            raise CorpusError(f"{path}: line {lineno}: expected a JSON object, got {type(obj).__name__}")
        if field not in obj:
            raise CorpusError(
                f"{path}: line {lineno}: no field {field!r} (fields: {_shorten(obj)}); choose one with --field"
            )
        value = obj[field]
        info["rows"] += 1
        if value is None:
            continue
        if not isinstance(value, str):
            raise CorpusError(
                f"{path}: line {lineno}: field {field!r} is a {type(value).__name__}, not a string"
            )
        if value.strip():
            found += 1
            yield value
    if not found:
        raise CorpusError(f"{path}: no non-empty {field!r} values in the JSON lines")


def _iter_lines(path, info: dict, checked: bool = False) -> Iterator[str]:
    """The non-empty lines of a file without their terminator (``\\n`` or ``\\r\\n``), streamed."""
    if not checked:
        _require_content(path)
    source = info["_source"] = _TextLines(path)
    info["replacement_chars"] = 0
    for line in source:
        info["replacement_chars"] = source.replaced
        line = line.removesuffix("\n").removesuffix("\r")
        if line.strip():
            yield line


def _iter_paragraphs(path, info: dict, checked: bool = False) -> Iterator[str]:
    """The text cut at blank lines exactly as ``_PARAGRAPH_RE.split(whole_text)`` cuts it, streamed.

    Lines are buffered until a whitespace-only line arrives (only such a line can complete a
    separator); the buffer is then split and everything before its last separator is final. A match
    never spans an unread line, so the pieces equal those of splitting the whole text at once.
    """
    if not checked:
        _require_content(path)
    source = info["_source"] = _TextLines(path)
    info["replacement_chars"] = 0
    buf: list[str] = []
    for line in source:
        info["replacement_chars"] = source.replaced
        buf.append(line)
        if len(buf) > 1 and _BLANK_LINE_RE.fullmatch(line):
            parts = _PARAGRAPH_RE.split("".join(buf))
            if len(parts) > 1:
                yield from parts[:-1]
                buf = [parts[-1]]
    if buf:
        yield from _PARAGRAPH_RE.split("".join(buf))


def _iter_char_text(path, lowercase: bool, info: dict, checked: bool = False) -> Iterator[str]:
    """Char-level "sentences" of plain text: lines, with blank lines joined to the line before them,
    so that concatenating them reproduces the text exactly (see :func:`_sentence_texts`)."""
    if not checked:
        _require_content(path)
    source = info["_source"] = _TextLines(path)
    info["replacement_chars"] = 0
    cur = ""
    for line in source:
        info["replacement_chars"] = source.replaced
        if lowercase:
            line = line.lower()
        for ln in line.splitlines(keepends=True):
            if ln.strip() and cur.strip():
                yield cur
                cur = ""
            cur += ln
    if cur:
        yield cur


def _read_csv(path, column: str = "body") -> tuple[list[str], dict]:
    info: dict = {}
    docs = list(_iter_csv(path, column, info))
    _report(path, info)
    return docs, info


def _read_jsonl(path, field: str = "text") -> tuple[list[str], dict]:
    info: dict = {}
    docs = list(_iter_jsonl(path, field, info))
    _report(path, info)
    return docs, info


def _read_decoded(path) -> tuple[str, int]:
    """The whole file as text (UTF-8, BOM stripped, undecodable bytes replaced and reported)."""
    _require_content(path)
    source = _TextLines(path)
    text = "".join(source)
    _report(path, {"replacement_chars": source.replaced})
    return text, source.replaced


def _split_lines(text: str) -> list[str]:
    """Lines without their terminator (``\\n`` or ``\\r\\n``; nothing else counts as a line break)."""
    lines = text.split("\n")
    return [ln.removesuffix("\r") for ln in lines]


def _read_units(path, fmt: str, column: str, field: str) -> tuple[list[str], dict]:
    """The documents of a file, in memory: CSV/JSONL records, the whole text, or the non-empty lines.

    (For new text to encode; :func:`prepare` streams with :func:`_iter_units` instead.)
    """
    if fmt == "csv":
        return _read_csv(path, column)
    if fmt == "jsonl":
        return _read_jsonl(path, field)
    if fmt == "lines":
        info: dict = {}
        units = list(_iter_lines(path, info))
        _report(path, info)
        return units, info
    text, replaced = _read_decoded(path)
    return [text], {"replacement_chars": replaced}


def read_reddit_csv(path, column: str = "body") -> list[str]:
    """The non-empty values of ``column`` in a CSV file with a header row (the tutorial's reddit file).

    Quoted multi-line fields are supported (``csv`` module, ``skipinitialspace=True`` as in the
    tutorial). A last row cut off inside a quoted field (the shared sample) is dropped with a
    :class:`CorpusWarning`. Raises :class:`CorpusError` for a missing/empty file, a directory or a missing
    column.
    """
    return _read_csv(path, column)[0]


def read_text(path) -> str:
    """The whole file as text (UTF-8; undecodable bytes replaced and reported by a warning)."""
    return _read_decoded(path)[0]


def read_lines(path) -> list[str]:
    """The non-empty lines of a file, without line terminators, otherwise unchanged."""
    return _read_units(path, "lines", "body", "text")[0]


def read_jsonl(path, field: str = "text") -> list[str]:
    """The non-empty string values of ``field`` in a JSON-lines file (``null`` values are skipped).

    A line that is not valid JSON, not an object, lacks the field or holds a non-string raises
    :class:`CorpusError` naming the file and the line number.
    """
    return _read_jsonl(path, field)[0]


def detect_format(path) -> tuple[str, str]:
    """Guess the format of a corpus file: ``(format, reason)``; see the module docstring."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext in _EXTENSION_FORMATS:
        return _EXTENSION_FORMATS[ext], f"extension {ext}"
    try:
        with open(p, "rb") as f:
            head = f.read(65536).decode("utf-8", errors="replace")
    except OSError:
        return "text", "default"  # the reader reports the real problem
    first = next((ln.strip() for ln in head.split("\n") if ln.strip()), "")
    if first.startswith("{"):
        try:
            if isinstance(json.loads(first), dict):
                return "jsonl", "content: JSON objects, one per line"
        except json.JSONDecodeError:
            pass
    if any(tok in KNOWN_UNK_MARKERS for tok in head.split()):
        return "lines", "content: pre-tokenized, contains an <unk> token"
    return "text", "content: plain text"


# --------------------------------------------------------------------------------------------------
# Tokenization
# --------------------------------------------------------------------------------------------------


def word_tokenize(sentence: str) -> list[str]:
    """NLTK's Treebank-style word tokenizer on one sentence (``preserve_line=True``: needs no data files)."""
    import nltk

    return nltk.word_tokenize(sentence, preserve_line=True)


def _installed_punkt():
    """NLTK's installed English Punkt model (``punkt_tab``), or None when the data is not installed."""
    import nltk

    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
    except LookupError:
        return None
    try:
        from nltk.tokenize.punkt import PunktTokenizer
    except ImportError:  # pragma: no cover - nltk < 3.8.2 has no punkt_tab loader
        return None
    try:
        return PunktTokenizer("english")
    except (LookupError, OSError, ValueError):  # pragma: no cover - broken installation
        return None


class SentenceSplitter:
    """NLTK Punkt sentence splitter: the installed ``punkt_tab`` model or one trained on the corpus.

    ``kind`` is ``"installed"`` or ``"trained"``; a trained splitter's parameters round-trip through
    :meth:`to_json` / :meth:`from_json` (plain JSON, stored inside a saved corpus).
    """

    def __init__(self, tokenizer, kind: str, description: str, params: dict | None = None):
        self._tokenizer = tokenizer
        self.kind = kind
        self.description = description
        self._params = params

    @classmethod
    def installed(cls) -> SentenceSplitter | None:
        tok = _installed_punkt()
        if tok is None:
            return None
        return cls(tok, "installed", "NLTK punkt_tab (installed data)")

    @classmethod
    def train(cls, texts: Sequence[str], max_chars: int = PUNKT_TRAIN_CHARS) -> SentenceSplitter:
        """Train Punkt on (at most ``max_chars`` characters of) ``texts``."""
        from nltk.tokenize.punkt import PunktSentenceTokenizer, PunktTrainer

        parts, n = [], 0
        for t in texts:
            if n >= max_chars:
                break
            parts.append(t[: max_chars - n])
            n += len(parts[-1]) + 2
        sample = "\n\n".join(parts)
        trainer = PunktTrainer()
        trainer.train(sample, finalize=False)
        trainer.finalize_training()
        params = trainer.get_params()
        return cls(
            PunktSentenceTokenizer(params),
            "trained",
            f"NLTK Punkt trained on this corpus ({len(sample)} chars)",
            _params_to_json(params),
        )

    @classmethod
    def get(cls, texts: Sequence[str], mode: str = "auto") -> SentenceSplitter:
        """``mode``: ``auto`` (installed if available, else trained), ``installed`` or ``trained``."""
        if mode not in SPLITTERS:
            raise ConfigError(f"unknown sentence splitter {mode!r} (choose from {', '.join(SPLITTERS)})")
        if mode in ("auto", "installed"):
            found = cls.installed()
            if found is not None:
                return found
            if mode == "installed":
                raise ConfigError(
                    "NLTK's punkt_tab data is not installed (python -m nltk.downloader punkt_tab)"
                )
        return cls.train(texts)

    def split(self, text: str) -> list[str]:
        return self._tokenizer.tokenize(text)

    def to_json(self) -> dict:
        return {"kind": self.kind, "description": self.description, "params": self._params}

    @classmethod
    def from_json(cls, data: dict) -> SentenceSplitter:
        if not isinstance(data, dict):
            raise CorpusError("bad sentence-splitter data (expected a JSON object)")
        if data.get("kind") == "trained" and data.get("params") is not None:
            from nltk.tokenize.punkt import PunktSentenceTokenizer

            try:
                params = _params_from_json(data["params"])
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise CorpusError(f"bad trained sentence-splitter parameters ({type(e).__name__}: {e})") from None
            return cls(
                PunktSentenceTokenizer(params),
                "trained",
                str(data.get("description", "NLTK Punkt trained on the corpus")),
                data["params"],
            )
        found = cls.installed()
        if found is None:
            raise CorpusError(
                "this corpus was split with NLTK's installed punkt_tab data, which is missing here"
            )
        return found


def _params_to_json(params) -> dict:
    return {
        "abbrev_types": sorted(params.abbrev_types),
        "collocations": sorted([list(c) for c in params.collocations]),
        "sent_starters": sorted(params.sent_starters),
        "ortho_context": dict(sorted(params.ortho_context.items())),
    }


def _params_from_json(data: dict):
    from nltk.tokenize.punkt import PunktParameters

    strings = [data["abbrev_types"], data["sent_starters"], *data["collocations"], list(data["ortho_context"])]
    if not all(isinstance(s, list) and all(isinstance(x, str) for x in s) for s in strings):
        raise TypeError("token lists must hold strings")
    if not all(isinstance(v, int) for v in data["ortho_context"].values()):
        raise TypeError("ortho_context values must be integers")
    params = PunktParameters()
    params.abbrev_types = set(data["abbrev_types"])
    params.collocations = {tuple(c) for c in data["collocations"]}
    params.sent_starters = set(data["sent_starters"])
    params.ortho_context = defaultdict(int, data["ortho_context"])
    return params


_PARAGRAPH_RE = re.compile(r"\n[ \t\r\f\v]*\n")
_BLANK_LINE_RE = re.compile(r"[ \t\r\f\v]*\n")


@dataclass
class _Settings:
    """How raw text becomes token lists; saved with a corpus so new text is treated the same way."""

    format: str = "lines"
    level: str = "word"
    tokenizer: str = "whitespace"
    lowercase: bool = False
    column: str = "body"
    field: str = "text"
    drop_containing: str | None = None
    min_length: int | None = None

    def to_json(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict) -> _Settings:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def validate_settings(data) -> None:
    """Check corpus settings read from a file (a checkpoint or prepared corpus); ConfigError if bad."""
    if not isinstance(data, dict):
        raise ConfigError(f"corpus settings must be a JSON object, got {type(data).__name__}")
    choices = {"format": FORMATS, "level": LEVELS, "tokenizer": TOKENIZERS}
    for key, allowed in choices.items():
        if key in data and data[key] not in allowed:
            raise ConfigError(f"corpus setting {key}={data[key]!r} is not one of {', '.join(allowed)}")
    for key, kinds in (("lowercase", (bool,)), ("column", (str,)), ("field", (str,)),
                       ("drop_containing", (str, type(None))), ("min_length", (int, type(None)))):
        if key in data and (not isinstance(data[key], kinds) or (key != "lowercase" and isinstance(data[key], bool))
                            or (key == "min_length" and data[key] is not None and data[key] < 0)):
            raise ConfigError(f"corpus setting {key}={data[key]!r} has the wrong type")


def _sentence_texts(units: Sequence[str], s: _Settings, splitter: SentenceSplitter | None) -> list[str]:
    """The sentences (as strings, lowercased if asked) of a list of documents."""
    out: list[str] = []
    for unit in units:
        if s.lowercase:
            unit = unit.lower()
        if s.level == "char":
            if s.format == "text":  # lines, blank lines joined to the line before: stream() == the text
                cur = ""
                for ln in unit.splitlines(keepends=True):
                    if ln.strip() and cur.strip():
                        out.append(cur)
                        cur = ""
                    cur += ln
                if cur:
                    out.append(cur)
            elif s.format == "lines":
                out.extend(ln + "\n" for ln in _split_lines(unit) if ln.strip())
            else:  # one csv/jsonl record
                out.append(unit if unit.endswith("\n") else unit + "\n")
        elif s.tokenizer == "whitespace" or s.format == "lines":
            out.extend(ln for ln in _split_lines(unit) if ln.strip())
        else:  # nltk on documents
            assert splitter is not None
            parts = _PARAGRAPH_RE.split(unit) if s.format == "text" else [unit]
            for part in parts:
                if part.strip():
                    out.extend(sent for sent in splitter.split(part) if sent.strip())
    return out


def _tokenize_sentence(sentence: str, s: _Settings) -> list[str]:
    if s.level == "char":
        return list(sentence)
    if s.tokenizer == "whitespace":
        return sentence.split()
    return word_tokenize(sentence)


def _progress(iterable, enabled: bool, desc: str, total: int | None = None):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit="sent", disable=None, leave=False)


# --------------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------------


class Vocabulary:
    """Token <-> id mapping with the tutorial's semantics.

    ``index_to_word`` lists the kept tokens by decreasing training frequency (ties: first occurrence in
    the corpus first, which is what ``nltk.FreqDist.most_common`` gives on Python >= 3.7), and the
    unknown token last: ``unk_index == len(vocab) - 1`` for every vocabulary :meth:`build` makes.
    ``counts[i]`` is the training count of ``index_to_word[i]``; for the unknown token it is the number
    of training tokens that map to it.
    """

    def __init__(
        self,
        index_to_word: Sequence[str],
        unknown_token: str = UNKNOWN_TOKEN,
        counts: Sequence[int] | None = None,
    ):
        self.index_to_word: list[str] = list(index_to_word)
        self.word_to_index: dict[str, int] = {w: i for i, w in enumerate(self.index_to_word)}
        if len(self.word_to_index) != len(self.index_to_word):
            dup = [w for w, c in Counter(self.index_to_word).items() if c > 1]
            raise ConfigError(f"vocabulary has duplicate tokens: {_shorten(dup)}")
        if unknown_token not in self.word_to_index:
            raise ConfigError(f"the unknown token {unknown_token!r} is not in the vocabulary")
        self.unknown_token = unknown_token
        if counts is not None and len(counts) != len(self.index_to_word):
            raise ConfigError("vocabulary counts and tokens differ in length")
        self.counts: list[int] | None = None if counts is None else [int(c) for c in counts]

    @classmethod
    def build(
        cls,
        token_lists: Iterable[Sequence[str]],
        vocab_size: int | None,
        unknown_token: str = UNKNOWN_TOKEN,
        reserved: Sequence[str] = (SENTENCE_START, SENTENCE_END),
    ) -> Vocabulary:
        """The ``vocab_size - 1`` most frequent tokens plus ``unknown_token`` (the tutorial's vocabulary).

        ``vocab_size=None`` keeps every token. Ties in frequency are broken by first occurrence.
        ``reserved`` tokens are always kept (with count 0 if absent), still ordered by frequency. A
        corpus token equal to ``unknown_token`` (e.g. ``<unk>``) is not kept twice: its occurrences count
        towards the unknown token. Fewer distinct tokens than ``vocab_size - 1`` give a smaller
        vocabulary. ``vocab_size < 3`` raises :class:`ConfigError`.
        """
        counter: Counter = Counter()
        for tokens in token_lists:
            counter.update(tokens)
        return cls.from_counts(counter, vocab_size, unknown_token, reserved)

    @classmethod
    def from_counts(
        cls,
        counts: Mapping[str, int],
        vocab_size: int | None,
        unknown_token: str = UNKNOWN_TOKEN,
        reserved: Sequence[str] = (SENTENCE_START, SENTENCE_END),
    ) -> Vocabulary:
        """:meth:`build` from token counts whose iteration order is the order of first occurrence."""
        vocab_size = _check_vocab_size(vocab_size)
        reserved = [r for r in dict.fromkeys(reserved) if r != unknown_token]
        if vocab_size is not None and len(reserved) > vocab_size - 1:
            raise ConfigError(f"vocab_size {vocab_size} leaves no room for the reserved tokens {reserved}")
        counter = dict(counts)
        unk_in_corpus = counter.pop(unknown_token, 0)
        order = {w: i for i, w in enumerate(counter)}  # first occurrence
        for r in reserved:
            order.setdefault(r, len(order))
        ranked = sorted(counter, key=lambda w: -counter[w])  # stable: ties keep first-occurrence order
        limit = len(ranked) + len(reserved) if vocab_size is None else vocab_size - 1
        kept = list(reserved)
        kept_set = set(kept)
        for w in ranked:
            if len(kept) >= limit:
                break
            if w not in kept_set:
                kept.append(w)
                kept_set.add(w)
        kept.sort(key=lambda w: (-counter.get(w, 0), order[w]))
        dropped = sum(c for w, c in counter.items() if w not in kept_set)
        counts = [counter.get(w, 0) for w in kept] + [unk_in_corpus + dropped]
        return cls(kept + [unknown_token], unknown_token, counts)

    def __len__(self) -> int:
        return len(self.index_to_word)

    def __contains__(self, token) -> bool:
        return token in self.word_to_index

    def __iter__(self):
        return iter(self.index_to_word)

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, Vocabulary)
            and self.index_to_word == other.index_to_word
            and self.unknown_token == other.unknown_token
        )

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)}, unknown_token={self.unknown_token!r})"

    @property
    def unk_index(self) -> int:
        return self.word_to_index[self.unknown_token]

    @property
    def start_index(self) -> int | None:
        return self.word_to_index.get(SENTENCE_START)

    @property
    def end_index(self) -> int | None:
        return self.word_to_index.get(SENTENCE_END)

    def count(self, token: str) -> int | None:
        """Training count of ``token`` (None when counts are unknown or the token is not kept)."""
        if self.counts is None or token not in self.word_to_index:
            return None
        return self.counts[self.word_to_index[token]]

    @property
    def least_frequent(self) -> tuple[str, int] | None:
        """The least frequent kept token other than the unknown token and its count (the tutorial's
        "least frequent word in our vocabulary"); the last one in vocabulary order on ties."""
        if self.counts is None:
            return None
        best = None
        for i, (w, c) in enumerate(zip(self.index_to_word, self.counts)):
            if i != self.unk_index and (best is None or c <= best[1]):
                best = (w, c)
        return best

    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        """Token ids as an int32 array; tokens not in the vocabulary map to :attr:`unk_index`."""
        get, unk = self.word_to_index.get, self.unk_index
        return np.array([get(t, unk) for t in tokens], dtype=np.int32)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens for ids; an id outside ``[0, len(self))`` raises :class:`ConfigError`."""
        out = []
        n = len(self.index_to_word)
        for i in np.asarray(ids).reshape(-1).tolist():
            if not 0 <= i < n:
                raise ConfigError(f"token id {i} is out of range for a vocabulary of {n}")
            out.append(self.index_to_word[i])
        return out

    def is_oov(self, token: str) -> bool:
        """True for a token that is not in the vocabulary (a literal unknown token is not OOV)."""
        return token not in self.word_to_index

    def to_json(self) -> dict:
        return {
            "index_to_word": list(self.index_to_word),
            "unknown_token": self.unknown_token,
            "counts": None if self.counts is None else list(self.counts),
        }

    @classmethod
    def from_json(cls, data: dict) -> Vocabulary:
        """The inverse of :meth:`to_json`; types are checked (the JSON may come from any file)."""
        if not isinstance(data, dict) or "index_to_word" not in data:
            raise ConfigError("not a vocabulary (expected an object with index_to_word)")
        words, unk, counts = data["index_to_word"], data.get("unknown_token", UNKNOWN_TOKEN), data.get("counts")
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise ConfigError("not a vocabulary: index_to_word must be a list of strings")
        if not isinstance(unk, str):
            raise ConfigError("not a vocabulary: unknown_token must be a string")
        if counts is not None and (
            not isinstance(counts, list)
            or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)
        ):
            raise ConfigError("not a vocabulary: counts must be a list of non-negative integers")
        return cls(words, unk, counts)


# --------------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------------


@dataclass
class EncodedText:
    """New text encoded with a corpus's vocabulary (see :meth:`Corpus.encode`).

    ``n_words`` counts tokens other than SENTENCE_START/SENTENCE_END; ``n_oov`` those not in the
    vocabulary (mapped to the unknown token; a literal unknown token such as ``<unk>`` in the text is
    in the vocabulary and is not counted); ``n_predicted`` is ``sum(len(s) - 1)``: every token after the
    first of a sentence, i.e. the words plus SENTENCE_END at word level -- the count that perplexity
    averages over.
    """

    sentences: list[np.ndarray]
    n_words: int
    n_oov: int
    oov_counts: dict[str, int]
    n_predicted: int
    replacement_chars: int = 0

    @property
    def oov_rate(self) -> float:
        return self.n_oov / self.n_words if self.n_words else 0.0

    def summary(self) -> dict:
        """JSON-ready counts (the sentences themselves left out)."""
        return {
            "sentences": len(self.sentences),
            "words": self.n_words,
            "oov": self.n_oov,
            "oov_rate": self.oov_rate,
            "oov_types": len(self.oov_counts),
            "predicted_tokens": self.n_predicted,
            "replacement_chars": self.replacement_chars,
        }


def _as_int32_list(sentences: Iterable) -> list[np.ndarray]:
    return [np.asarray(s, dtype=np.int32).reshape(-1) for s in sentences]


#: Whole-corpus array work is done in slices of this many tokens, so temporaries stay small.
_SLICE = 1 << 20


def _id_counts(ids: np.ndarray, n: int) -> np.ndarray:
    """``np.bincount(ids, minlength=n)`` (n,) int64, in slices: bincount copies its input to int64."""
    counts = np.zeros(n, dtype=np.int64)
    for i in range(0, len(ids), _SLICE):
        counts += np.bincount(ids[i : i + _SLICE], minlength=n)[:n]
    return counts


@dataclass
class _Flat:
    """Sentences stored flat: ``ids`` (N,) int32 and ``offsets`` (S + 1,) int64 (see :class:`Corpus`)."""

    ids: np.ndarray
    offsets: np.ndarray


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
        self._sentences: list[np.ndarray] | None = None  # ... or a list of sentences
        if isinstance(sentences, _Flat):
            self._ids, self._offsets = sentences.ids, sentences.offsets
            self._ids.flags.writeable = False  # the sentence views share it
        else:
            self._sentences = _as_int32_list(sentences)
        self.stats: dict = dict(stats or {})
        validate_settings(settings or {})
        self.settings: dict = _Settings.from_json({"level": level, **(settings or {})}).to_json()
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
        lists = [list(t) for t in token_lists]
        if wrap:
            lists = [[SENTENCE_START, *t, SENTENCE_END] for t in lists]
        unk = unk_token or _detect_unk(lists)
        vocab = Vocabulary.build(lists, vocab_size, unk)
        corpus = cls(
            vocab,
            [vocab.encode(t) for t in lists],
            "word",
            settings={"format": "lines", "tokenizer": "whitespace", "lowercase": False},
        )
        corpus.stats = corpus._subset_stats(
            {
                "source": None,
                "format": "lines",
                "tokenizer": "whitespace",
                "level": "word",
                **_vocab_stats(vocab, len({t for tokens in lists for t in tokens}), vocab_size),
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
            ids, offsets = self._ids, self._offsets
            self._sentences = [ids[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
        return self._sentences

    @sentences.setter
    def sentences(self, value) -> None:
        self._sentences = _as_int32_list(value)
        self._ids = self._offsets = None

    def _flat(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, offsets)``; computed (not kept) for a list-backed corpus, whose list may change."""
        if self._ids is not None and self._offsets is not None:
            return self._ids, self._offsets
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
            return len(self._ids)
        return int(sum(len(s) for s in self._sentences))

    def xy(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The tutorial's training pairs: ``x = s[:-1]``, ``y = s[1:]`` per sentence (int32)."""
        return [s[:-1] for s in self.sentences], [s[1:] for s in self.sentences]

    def stream(self) -> np.ndarray:
        """All sentences concatenated into one int32 array (at char level: the text's characters).

        For a flat-stored corpus this is its (read-only) id array itself, not a copy.
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
        ids, offsets = self._flat()
        lengths = np.diff(offsets)
        out = {}
        for name, idx in parts.items():
            chosen = np.zeros(n, dtype=bool)
            chosen[idx] = True  # sentences keep corpus order
            sub = Corpus.from_arrays(
                self.vocab,
                ids[np.repeat(chosen, lengths)],
                np.concatenate([[0], np.cumsum(lengths[chosen])]),
                self.level,
                settings=self.settings,
                splitter=self._splitter,
            )
            sub.stats = sub._subset_stats({**self.stats, "split": name, "split_seed": seed})
            out[name] = sub
        return out

    def _subset_stats(self, base: dict) -> dict:
        stats = dict(base)
        ids = self.stream()
        special = [i for i in (self.vocab.start_index, self.vocab.end_index) if i is not None]
        counts = _id_counts(ids, len(self.vocab))
        words = int(len(ids) - counts[special].sum())
        unknown = int(counts[self.vocab.unk_index])
        stats.update(
            sentences=len(self),
            tokens=len(ids),
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

    def _settings(self, **overrides) -> _Settings:
        s = _Settings.from_json(self.settings)
        for k, v in overrides.items():
            if v is not None:
                setattr(s, k, v)
        return s

    def _encode_units(self, units: Sequence[str], s: _Settings, replaced: int = 0) -> EncodedText:
        splitter = None
        if s.level == "word" and s.tokenizer == "nltk" and s.format != "lines":
            splitter = self._get_splitter() or SentenceSplitter.get(units)
        token_lists = [_tokenize_sentence(t, s) for t in _sentence_texts(units, s, splitter)]
        token_lists = [t for t in token_lists if t]
        if s.level == "word":
            token_lists = [[SENTENCE_START, *t, SENTENCE_END] for t in token_lists]
        special = {SENTENCE_START, SENTENCE_END} if s.level == "word" else set()
        oov: Counter = Counter()
        n_words = 0
        for tokens in token_lists:
            for t in tokens:
                if t not in special:
                    n_words += 1
                    if t not in self.vocab.word_to_index:
                        oov[t] += 1
        sentences = [self.vocab.encode(t) for t in token_lists]
        return EncodedText(
            sentences,
            n_words,
            int(sum(oov.values())),
            dict(oov.most_common()),
            int(sum(max(len(x) - 1, 0) for x in sentences)),
            replaced,
        )

    def encode(self, text_or_lines: str | Sequence[str]) -> EncodedText:
        """Encode new text with this corpus's vocabulary and tokenization; counts OOV words.

        A string is one document (for a ``lines`` corpus: its lines are sentences); a list holds one
        document (or line) per item. Filters used at preparation (``drop_containing``, ``min_length``)
        are not applied: evaluation text is scored as it is.
        """
        units = [text_or_lines] if isinstance(text_or_lines, str) else list(text_or_lines)
        return self._encode_units(units, self._settings())

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
        from rnnlm.data import datasets as datasets

        path = datasets.resolve(path, kind="corpus")
        s = self._settings(column=column, field=field)
        if format is not None:
            if format not in FORMATS:
                raise ConfigError(f"unknown format {format!r} (choose from {', '.join(FORMATS)})")
            s.format = detect_format(path)[0] if format == "auto" else format
        units, info = _read_units(path, s.format, s.column, s.field)
        encoded = self._encode_units(units, s, info.get("replacement_chars", 0))
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
        """Write an ``.npz`` (``ids`` int32, ``offsets`` int64, ``meta`` UTF-8 JSON as uint8): no pickle.

        Written to a temporary file in the same folder and moved into place, so a failure never leaves
        a partial file at ``path``.
        """
        path = Path(path)
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
        """Load a corpus written by :meth:`save` (``allow_pickle=False``); :class:`CorpusError` otherwise."""
        p = Path(path)
        if p.is_dir():
            raise CorpusError(f"{p}: is a directory, not a prepared corpus")
        if not p.exists():
            raise CorpusError(f"{p}: no such file")
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
        if not isinstance(meta, dict) or meta.get("format") != CORPUS_FILE_FORMAT:
            raise CorpusError(f"{p}: not a prepared rnnlm corpus")
        version = meta.get("version", 0)
        if not isinstance(version, int) or version > CORPUS_FILE_VERSION:
            raise CorpusError(f"{p}: corpus file version {version!r} is not one this rnnlm supports")
        if meta.get("level", "word") not in LEVELS:
            raise CorpusError(f"{p}: unknown level {meta.get('level')!r}")
        for key in ("stats", "settings", "splitter"):
            if meta.get(key) is not None and not isinstance(meta[key], dict):
                raise CorpusError(f"{p}: bad {key!r} entry in the corpus metadata")
        try:
            vocab = Vocabulary.from_json(meta["vocab"])
        except (ConfigError, KeyError, TypeError, AttributeError) as e:
            raise CorpusError(f"{p}: bad vocabulary ({e})") from None
        if (
            offsets.ndim != 1
            or len(offsets) < 1
            or offsets[0] != 0
            or offsets[-1] != len(ids)
            or np.any(np.diff(offsets) < 0)
        ):
            raise CorpusError(f"{p}: inconsistent offsets")
        if len(ids) and (ids.min() < 0 or ids.max() >= len(vocab)):
            raise CorpusError(f"{p}: token ids out of range for its vocabulary of {len(vocab)}")
        try:
            corpus = cls(
                vocab, _Flat(ids, offsets), meta.get("level", "word"), None, meta.get("settings"), meta.get("splitter")
            )
        except (ConfigError, TypeError) as e:
            raise CorpusError(f"{p}: bad corpus metadata ({e})") from None
        corpus.stats = corpus._loaded_stats(meta.get("stats") or {})
        return corpus

    def _loaded_stats(self, stats: dict) -> dict:
        """A file's stats, kept where they are plain values of the right type; the ones the arrays and
        vocabulary determine are recomputed, so a damaged or hand-made file cannot lie about them."""
        clean = {k: v for k, v in stats.items() if isinstance(v, (str, int, float, bool, type(None)))}
        unique = clean.get("unique_tokens")
        if not isinstance(unique, int) or isinstance(unique, bool):
            unique = int(len(np.unique(self.stream())))
        requested = clean.get("requested_vocab_size")
        if requested is not None and (not isinstance(requested, int) or isinstance(requested, bool)):
            requested = None
        return self._subset_stats({**clean, **_vocab_stats(self.vocab, unique, requested)})


#: What reading a damaged or hostile .npz can raise: zipfile and zlib errors, an unknown compression
#: method (NotImplementedError), "encrypted" (RuntimeError), a header claiming an absurd shape
#: (MemoryError), a pickled object array (ValueError)...
_NPZ_READ_ERRORS = (OSError, ValueError, KeyError, EOFError, UnicodeDecodeError, RecursionError, zipfile.BadZipFile,
                    zlib.error, NotImplementedError, RuntimeError, struct.error, OverflowError, MemoryError)


def _atomic_savez(path: Path, **arrays) -> None:
    from rnnlm.fileio import atomic_savez

    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise CorpusError(f"{path}: folder {folder} does not exist")
    atomic_savez(path, compress=True, **arrays)


# --------------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------------


def _detect_unk(token_lists: Sequence[Sequence[str]]) -> str:
    found = set()
    for tokens in token_lists:
        for marker in KNOWN_UNK_MARKERS:
            if marker in tokens:
                found.add(marker)
        if found:
            break
    for marker in KNOWN_UNK_MARKERS:
        if marker in found:
            return marker
    return UNKNOWN_TOKEN


def _detect_unk_flat(index: Mapping[str, int], ids: np.ndarray, offsets: np.ndarray) -> str:
    """:func:`_detect_unk` on flat provisional ids: the marker of the first sentence holding one."""
    present = [m for m in KNOWN_UNK_MARKERS if m in index]
    if len(present) < 2:
        return present[0] if present else UNKNOWN_TOKEN
    first = {}
    for m in present:
        pos = int(np.argmax(ids == index[m]))
        first[m] = int(np.searchsorted(offsets, pos, side="right")) - 1  # its sentence
    return min(present, key=lambda m: (first[m], KNOWN_UNK_MARKERS.index(m)))


def _vocab_stats(vocab: Vocabulary, unique: int, requested: int | None) -> dict:
    least = vocab.least_frequent
    return {
        "unique_tokens": unique,
        "vocab_size": len(vocab),
        "requested_vocab_size": requested,
        "least_frequent_word": least[0] if least else None,
        "least_frequent_count": least[1] if least else None,
        "unknown_token": vocab.unknown_token,
    }


def _check_vocab_size(vocab_size):
    """None (keep every token) or an int >= 3 (start, end and unknown tokens); returns it as int."""
    if vocab_size is None:
        return None
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)):
        raise ConfigError(f"vocab_size must be an integer, got {vocab_size!r}")
    if vocab_size < 3:
        raise ConfigError(f"vocab_size must be at least 3 (start, end and unknown tokens), got {vocab_size}")
    return int(vocab_size)


def _check_int(name: str, value, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _iter_units(path, s: _Settings, info: dict) -> tuple[Iterator[str], bool]:
    """``(units, presplit)``: a stream of documents to split into sentences (``presplit`` False) or
    of sentence texts already (True; lowercased if asked), read as :func:`_read_units` +
    :func:`_sentence_texts` would read them, one line or record at a time."""
    fmt = s.format
    if fmt == "csv":
        return _iter_csv(path, s.column, info, checked=True), False
    if fmt == "jsonl":
        return _iter_jsonl(path, s.field, info, checked=True), False
    if s.level == "char":
        if fmt == "text":
            return _iter_char_text(path, s.lowercase, info, checked=True), True
        lines = _iter_lines(path, info, checked=True)
        return ((ln.lower() if s.lowercase else ln) + "\n" for ln in lines), True
    if fmt == "lines" or s.tokenizer == "whitespace":
        lines = _iter_lines(path, info, checked=True)
        return ((ln.lower() if s.lowercase else ln) for ln in lines), True
    return _iter_paragraphs(path, info, checked=True), False


def _punkt_sample(path, s: _Settings) -> Iterator[str]:
    """The (lowercased) documents Punkt trains on, lazily: :meth:`SentenceSplitter.train` reads only
    its first :data:`PUNKT_TRAIN_CHARS` characters. Plain text is one document (its beginning)."""
    if s.format == "text":
        parts, n = [], 0
        for line in _TextLines(path):
            parts.append(line.lower() if s.lowercase else line)
            n += len(parts[-1])
            if n >= PUNKT_TRAIN_CHARS:
                break
        yield "".join(parts)
        return
    info: dict = {}
    docs = _iter_csv(path, s.column, info) if s.format == "csv" else _iter_jsonl(path, s.field, info)
    with closing(docs):
        for doc in docs:
            yield doc.lower() if s.lowercase else doc


def _verdicts(units, presplit, s: _Settings, splitter, drop_containing, min_length):
    """Per sentence of ``units``, in order: its tokens, or None when a filter drops it (sentences
    without tokens are skipped silently, as they were never sentences)."""
    tokenize = str.split if s.level == "word" and s.tokenizer == "whitespace" else None
    for unit in units:
        for text in (unit,) if presplit else _sentence_texts([unit], s, splitter):
            if drop_containing is not None and drop_containing in text:
                yield None
                continue
            tokens = tokenize(text) if tokenize is not None else _tokenize_sentence(text, s)
            if not tokens:
                continue
            if min_length is not None and len(tokens) < min_length:
                yield None
                continue
            yield tokens


# Parallel tokenization: each worker process holds the settings and splitter (sent once), gets
# chunks of documents and returns their verdicts; the parent consumes them in order, so the result
# is identical to a serial run.
_WORKER: dict = {}


def _worker_init(settings: dict, splitter: dict | None, drop_containing, min_length) -> None:
    _WORKER.update(
        s=_Settings.from_json(settings),
        splitter=SentenceSplitter.from_json(splitter) if splitter is not None else None,
        drop=drop_containing,
        min_length=min_length,
    )


def _worker_verdicts(units: list[str], presplit: bool) -> list:
    w = _WORKER
    return list(_verdicts(units, presplit, w["s"], w["splitter"], w["drop"], w["min_length"]))


#: Characters of text per task sent to a tokenizer worker.
WORKER_CHUNK_CHARS = 1 << 18


def _parallel_verdicts(pool, units, presplit: bool, workers: int):
    """Verdicts computed by ``pool``, in input order; at most ``4 * workers`` chunks in flight, so
    memory stays bounded however large the input (``Pool.imap`` would read all input at once)."""
    pending: deque = deque()

    def chunks():
        chunk, n = [], 0
        for unit in units:
            chunk.append(unit)
            n += len(unit)
            if n >= WORKER_CHUNK_CHARS:
                yield chunk
                chunk, n = [], 0
        if chunk:
            yield chunk

    for chunk in chunks():
        pending.append(pool.apply_async(_worker_verdicts, (chunk, presplit)))
        if len(pending) >= 4 * workers:
            yield from pending.popleft().get()
    while pending:
        yield from pending.popleft().get()


def _vocab_from_ids(
    index: Mapping[str, int], counts: np.ndarray, vocab_size: int | None, unknown_token: str, reserved
) -> tuple[Vocabulary, np.ndarray]:
    """``Vocabulary.from_counts`` for tokens numbered by first occurrence (``index``: token -> id,
    ``counts`` (K,) by id), ranked with NumPy so that only the kept tokens become Python objects:
    a corpus with millions of distinct tokens costs a few bytes each here, not a few dicts' worth.

    Returns ``(vocab, lookup)``: ``lookup`` (K,) int32 maps a provisional id to its vocabulary id.
    """
    n = len(counts)
    tokens = list(index)  # by provisional id
    reserved = [r for r in dict.fromkeys(reserved) if r != unknown_token]
    if vocab_size is not None and len(reserved) > vocab_size - 1:
        raise ConfigError(f"vocab_size {vocab_size} leaves no room for the reserved tokens {reserved}")
    unk_id = index.get(unknown_token)
    unk_in_corpus = int(counts[unk_id]) if unk_id is not None else 0
    present = [(r, index[r]) for r in reserved if r in index]
    absent = [r for r in reserved if r not in index]
    candidate = np.ones(n, dtype=bool)
    if unk_id is not None:
        candidate[unk_id] = False
    for _, i in present:
        candidate[i] = False
    cand = np.flatnonzero(candidate)
    ranked = cand[np.lexsort((cand, -counts[cand]))]  # count descending, ties by first occurrence
    take = len(ranked) if vocab_size is None else max(int(vocab_size) - 1 - len(reserved), 0)
    kept_ids = [i for _, i in present] + ranked[:take].tolist()
    entries = [(tokens[i], int(counts[i]), i) for i in kept_ids]
    entries += [(r, 0, n + j) for j, r in enumerate(absent)]  # reserved but unseen: last
    entries.sort(key=lambda e: (-e[1], e[2]))
    dropped = int(counts.sum()) - unk_in_corpus - sum(e[1] for e in entries)
    vocab = Vocabulary(
        [e[0] for e in entries] + [unknown_token],
        unknown_token,
        [e[1] for e in entries] + [unk_in_corpus + dropped],
    )
    lookup = np.full(n, vocab.unk_index, dtype=np.int32)
    for new_id, (_, _, i) in enumerate(entries):
        if i < n:
            lookup[i] = new_id
    return vocab, lookup


class _TokenIndex(dict):
    """token -> provisional id, given in order of first occurrence (``index[token]`` adds it)."""

    def __missing__(self, token):
        i = self[token] = len(self)
        return i


def prepare(
    source,
    level: str = "word",
    vocab_size: int | None = 8000,
    lowercase: bool | None = None,
    format: str = "auto",
    tokenizer: str | None = None,
    column: str = "body",
    field: str = "text",
    unk_token: str | None = None,
    max_sentences: int | None = None,
    drop_containing: str | None = None,
    min_length: int | None = None,
    splitter: str = "auto",
    progress: bool = False,
    workers: int = 1,
) -> Corpus:
    """Read, tokenize and encode a corpus file or a known corpus name (see :mod:`rnnlm.data.datasets`).

    Args:
        source: a path, or a known corpus name (``"reddit"``, ``"tinyshakespeare"``).
        level: ``"word"`` or ``"char"``.
        vocab_size: keep the ``vocab_size - 1`` most frequent tokens plus the unknown token (``None``:
            all). At char level the default 8000 keeps every character of ordinary text.
        lowercase: ``None`` = the tutorial's default (True with the nltk tokenizer, else False).
        format: ``auto|text|lines|csv|jsonl`` (module docstring).
        tokenizer: ``nltk|whitespace|char``; ``None`` = ``nltk`` at word level except ``whitespace`` for
            ``lines``, ``char`` at char level.
        column / field: the CSV column / JSONL field holding the text.
        unk_token: the unknown token; ``None`` = ``<unk>`` if the corpus contains it, else
            ``UNKNOWN_TOKEN`` (``U+FFFD`` at char level).
        max_sentences: keep only the first N sentences (after filtering); reading stops there.
        drop_containing: drop sentences containing this substring (the tutorial's part 4 drops
            ``"http"``); tested on the (lowercased) sentence text.
        min_length: drop sentences with fewer than this many tokens (words, or characters at char level;
            SENTENCE_START/END not counted).
        splitter: Punkt model: ``auto`` (installed punkt_tab if present, else trained on the corpus),
            ``installed`` or ``trained``.
        progress: show a progress bar (stderr, only on a terminal) while reading.
        workers: tokenize in this many processes (worth it for the nltk tokenizer, which is slow; the
            whitespace and char tokenizers are faster than the inter-process traffic). The corpus is
            identical to a serial run's.

    Streaming: the file is read once, one line (or CSV record) at a time, and each sentence is encoded
    at once into a growing int32 array of provisional ids (in order of first occurrence); the
    vocabulary is built from the counts of those ids and the array is then renumbered in place. Peak
    memory is the encoded corpus (4 bytes a token, 8 a sentence) plus one entry per distinct token --
    not the text, not the token strings (docs/benchmarks-corpus.md). A trained Punkt model reads the
    first :data:`PUNKT_TRAIN_CHARS` characters once more.

    ``stats`` holds: source, format, format_reason, level, tokenizer, lowercase, sentence_splitter,
    documents (read), sentences, dropped_sentences, tokens (including START/END), words (excluding them),
    unique_tokens (the tutorial's "unique words tokens", START/END included), vocab_size,
    requested_vocab_size, least_frequent_word, least_frequent_count, unknown_token, unknown_tokens,
    unknown_rate (= unknown_tokens / words), replacement_chars, and for CSV rows/truncated_rows/skipped_rows.
    """
    from rnnlm.data import datasets as datasets

    if level not in LEVELS:
        raise ConfigError(f"unknown level {level!r} (choose from {', '.join(LEVELS)})")
    if format not in FORMATS:
        raise ConfigError(f"unknown format {format!r} (choose from {', '.join(FORMATS)})")
    if tokenizer is not None and tokenizer not in TOKENIZERS:
        raise ConfigError(f"unknown tokenizer {tokenizer!r} (choose from {', '.join(TOKENIZERS)})")
    if splitter not in SPLITTERS:
        raise ConfigError(f"unknown sentence splitter {splitter!r} (choose from {', '.join(SPLITTERS)})")
    _check_vocab_size(vocab_size)
    _check_int("max_sentences", max_sentences, 1)
    _check_int("min_length", min_length, 0)
    _check_int("workers", workers, 1)
    if drop_containing == "":
        raise ConfigError("drop_containing must not be empty")
    if level == "char":
        if tokenizer not in (None, "char"):
            raise ConfigError(f"level 'char' needs tokenizer 'char', not {tokenizer!r}")
        tokenizer = "char"
        if unk_token is not None and len(unk_token) != 1:
            raise ConfigError(f"at char level the unknown token must be one character, got {unk_token!r}")
    elif tokenizer == "char":
        raise ConfigError("tokenizer 'char' needs level 'char' (--level char)")
    if unk_token is not None and unk_token in (SENTENCE_START, SENTENCE_END):
        raise ConfigError(f"the unknown token cannot be {unk_token!r}")

    path = datasets.resolve(source, kind="corpus")
    if format == "auto":
        fmt, reason = detect_format(path)
    else:
        fmt, reason = format, "given"
    if tokenizer is None:
        tokenizer = "whitespace" if fmt == "lines" else "nltk"
    if lowercase is None:
        lowercase = tokenizer == "nltk"
    settings = _Settings(
        format=fmt,
        level=level,
        tokenizer=tokenizer,
        lowercase=bool(lowercase),
        column=column,
        field=field,
        drop_containing=drop_containing,
        min_length=min_length,
    )
    _require_content(path)

    split = None
    if level == "word" and tokenizer == "nltk" and fmt != "lines":
        sample = _punkt_sample(path, settings)
        with closing(sample):
            split = SentenceSplitter.get(sample, splitter)

    info: dict = {}
    units, presplit = _iter_units(path, settings, info)
    counted = _count(units, info)
    index = _TokenIndex()
    get = index.__getitem__
    ids = array("i")  # provisional ids, 4 bytes a token
    offsets = array("q", [0])
    word = level == "word"
    start_id = get(SENTENCE_START) if word else None
    n_sentences = dropped = 0
    bar = _byte_progress(progress, path)
    with ExitStack() as stack:
        stack.callback(counted.close)
        if workers > 1:
            import multiprocessing
            import sys

            # fork (no __main__ guard needed in a user's script) unless JAX is loaded: its threads
            # would be copied half-alive into the children; then spawn.
            method = "spawn" if "jax" in sys.modules else "fork"
            pool = stack.enter_context(
                multiprocessing.get_context(method).Pool(
                    workers,
                    initializer=_worker_init,
                    initargs=(
                        settings.to_json(),
                        split.to_json() if split is not None else None,
                        drop_containing,
                        min_length,
                    ),
                )
            )
            verdicts = _parallel_verdicts(pool, counted, presplit, workers)
        else:
            verdicts = _verdicts(counted, presplit, settings, split, drop_containing, min_length)
        for tokens in verdicts:
            if tokens is None:
                dropped += 1
                continue
            if word:
                ids.append(start_id)
                ids.extend(map(get, tokens))
                ids.append(get(SENTENCE_END))
            else:
                ids.extend(map(get, tokens))
            offsets.append(len(ids))
            n_sentences += 1
            if bar is not None and n_sentences % 4096 == 0:
                bar.update(info["_source"].bytes_read - bar.n)
            if max_sentences is not None and n_sentences >= max_sentences:
                break
    if bar is not None:
        bar.close()
    info.pop("_source", None)
    _report(path, info)
    if not n_sentences:
        why = f" (all {dropped} were dropped by the filters)" if dropped else ""
        raise CorpusError(f"{path}: no sentences found{why}")

    assert ids.itemsize == 4, "array('i') is not 32-bit on this platform"
    pids = np.frombuffer(ids, dtype=np.int32)  # no copy: the array's own buffer
    offsets_np = np.frombuffer(offsets, dtype=np.int64)
    counts = _id_counts(pids, len(index))
    step = _SLICE
    if word:
        unk = unk_token or _detect_unk_flat(index, pids, offsets_np)
        vocab, lookup = _vocab_from_ids(index, counts, vocab_size, unk, (SENTENCE_START, SENTENCE_END))
    else:
        vocab, lookup = _vocab_from_ids(index, counts, vocab_size, unk_token or CHAR_UNKNOWN_TOKEN, ())
    n_distinct = len(index)
    del index
    for i in range(0, len(pids), step):  # renumber in place, in slices: no second full-size array
        pids[i : i + step] = lookup[pids[i : i + step]]

    corpus = Corpus(vocab, _Flat(pids, offsets_np), level, settings=settings.to_json(), splitter=split)
    base = {
        "source": str(path),
        "format": fmt,
        "format_reason": reason,
        "level": level,
        "tokenizer": tokenizer,
        "lowercase": bool(lowercase),
        "sentence_splitter": split.description if split is not None else None,
        "documents": 1 if fmt == "text" else info.get("documents", 0),
        "dropped_sentences": dropped,
        **_vocab_stats(vocab, n_distinct, vocab_size),
        "replacement_chars": info.get("replacement_chars", 0),
    }
    for key in ("rows", "truncated_rows", "skipped_rows"):
        if key in info:
            base[key] = info[key]
    corpus.stats = corpus._subset_stats(base)
    return corpus


def _count(units: Iterator[str], info: dict) -> Generator[str, None, None]:
    """Pass ``units`` through, counting them in ``info["documents"]``; closing it closes ``units``."""
    info["documents"] = 0
    with closing(units):
        for unit in units:
            info["documents"] += 1
            yield unit


def _byte_progress(enabled: bool, path: Path):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(
        total=path.stat().st_size, desc="reading", unit="B", unit_scale=True, disable=None, leave=False
    )
