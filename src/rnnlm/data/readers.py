"""Reading corpus files: formats, format detection, and the one streaming read path.

Formats (``format=``)
    ``csv``    one document per row of column ``column`` (default ``body``, the tutorial's reddit CSV;
               quoted multi-line fields; a last row cut mid-field is dropped with a warning).
    ``jsonl``  one JSON object per line; the document is its string field ``field`` (default ``text``).
    ``text``   plain text; at word level with the ``nltk`` tokenizer the documents are its paragraphs
               (blank-line separated), with ``whitespace`` every non-empty line is a sentence.
    ``lines``  pre-tokenized corpora (Penn Treebank, WikiText): every non-empty line is one sentence.
    ``auto``   by extension (``.csv``, ``.jsonl``/``.ndjson``/``.json``, ``.tokens`` -> lines), else by
               content (JSON objects -> jsonl, a ``<unk>`` token -> lines, otherwise text); see
               :func:`detect_format`.

Every reader streams: a file is read one line at a time (bytes split at ``b"\\n"``, then decoded as
UTF-8 with the BOM stripped), so memory holds one line (one CSV record) at a time, never the whole
file. Decoding a line on its own gives exactly what decoding the whole file would: ``"\\n"`` is ASCII,
so it ends any invalid UTF-8 sequence, and the replacement characters (U+FFFD) come out the same.
The readers are generators of ``str`` (documents, lines or paragraphs); the ``info`` dict they are given
is filled in while they run: ``replacement_chars`` (undecodable byte sequences replaced with U+FFFD),
``bytes_read``, and for CSV ``rows``/``truncated_rows``/``skipped_rows``. :func:`report` turns it into
:class:`CorpusWarning`\\ s. :func:`stream_units` picks the reader for a format and tokenizer; the
convenience readers (:func:`read_reddit_csv`, :func:`read_text`, :func:`read_lines`, :func:`read_jsonl`)
collect a stream into a list and report it.

Binary files are refused (:class:`~rnnlm.errors.CorpusError` naming the file): a file of at least
:data:`BINARY_MIN_BYTES` whose first :data:`BINARY_SAMPLE_BYTES` hold a NUL byte, or more than
:data:`BINARY_INVALID_FRACTION` of bytes that are not valid UTF-8. Text with a few bad bytes loads, and
the replaced sequences are counted and reported.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

from rnnlm.errors import CorpusError

__all__ = [
    "FORMATS",
    "KNOWN_UNK_MARKERS",
    "CorpusWarning",
    "TextLines",
    "check_not_binary",
    "detect_format",
    "join_blank_lines",
    "read_jsonl",
    "read_lines",
    "read_reddit_csv",
    "read_text",
    "report",
    "require_content",
    "shorten",
    "split_paragraphs",
    "stream_csv",
    "stream_jsonl",
    "stream_lines",
    "stream_paragraphs",
    "stream_text",
    "stream_units",
]

FORMATS = ("auto", "text", "lines", "csv", "jsonl")
#: Unknown-word markers that pre-tokenized corpora (PTB, WikiText) already contain; when ``unk_token`` is
#: not given and the corpus contains one of these, it becomes the vocabulary's unknown token.
KNOWN_UNK_MARKERS = ("<unk>", "<UNK>")

#: Binary-file check: the first this many bytes are examined ...
BINARY_SAMPLE_BYTES = 1 << 16
#: ... of files at least this long (a shorter sample cannot tell binary data from a short mis-encoded
#: text) ...
BINARY_MIN_BYTES = 1024
#: ... which are binary when they hold a NUL byte or more than this fraction of invalid UTF-8 bytes.
BINARY_INVALID_FRACTION = 0.10

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


def shorten(items: Iterable[str], limit: int = 8) -> str:
    """``items`` for a one-line message: the first ``limit`` reprs (long ones cut), then the count."""
    items = [repr(x if len(x) <= 30 else x[:27] + "...") for x in items]
    more = f", ... ({len(items)} in all)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


# --------------------------------------------------------------------------------------------------
# The file: checks and decoded lines
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


def _open(p: Path):
    try:
        return open(p, "rb")
    except OSError as e:
        raise CorpusError(f"{p}: cannot read ({e.strerror or e})") from None


_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # an undecodable byte, as the surrogateescape handler gives it


def check_not_binary(path) -> None:
    """Raise :class:`CorpusError` when the file looks binary (see the module docstring)."""
    p = _check_path(path)
    with _open(p) as f:
        try:
            head = f.read(BINARY_SAMPLE_BYTES)
        except OSError as e:
            raise CorpusError(f"{p}: cannot read ({e.strerror or e})") from None
    if len(head) < BINARY_MIN_BYTES:
        return
    if b"\x00" in head:
        why = f"NUL bytes in its first {len(head):,} bytes"
    else:
        # final=False: a character cut at the end of the sample is not counted as invalid
        text = codecs.getincrementaldecoder("utf-8")("surrogateescape").decode(head, final=False)
        invalid = len(_ESCAPED_BYTE.findall(text))
        if invalid <= BINARY_INVALID_FRACTION * len(head):
            return
        why = f"{invalid / len(head):.0%} of its first {len(head):,} bytes are not valid UTF-8"
    raise CorpusError(f"{p}: looks binary, not a text corpus ({why}); a corpus must be UTF-8 text")


class TextLines:
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
        with _open(p) as f:
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


def require_content(path) -> None:
    """Raise :class:`CorpusError` for a file that is binary or empty (no non-whitespace character;
    reads up to the first one)."""
    check_not_binary(path)
    for line in TextLines(path):
        if line.strip():
            return
    raise CorpusError(f"{Path(path)}: file is empty")


def report(path, info: dict) -> None:
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


# --------------------------------------------------------------------------------------------------
# Streaming readers
# --------------------------------------------------------------------------------------------------


def stream_text(path, info: dict | None = None, *, checked: bool = False) -> Iterator[str]:
    """The decoded lines of a file, each with its terminator: joined, they are the whole text.

    Every other reader is built on this one. ``checked``: :func:`require_content` was already called.
    """
    if not checked:
        require_content(path)
    info = {} if info is None else info
    source = TextLines(path)
    info.update(replacement_chars=0, bytes_read=0)
    for line in source:
        info["replacement_chars"] = source.replaced
        info["bytes_read"] = source.bytes_read
        yield line


def stream_lines(path, info: dict | None = None, *, checked: bool = False) -> Iterator[str]:
    """The non-empty lines of a file without their terminator (``\\n`` or ``\\r\\n``)."""
    for line in stream_text(path, info, checked=checked):
        line = line.removesuffix("\n").removesuffix("\r")
        if line.strip():
            yield line


_PARAGRAPH_RE = re.compile(r"\n[ \t\r\f\v]*\n")
_BLANK_LINE_RE = re.compile(r"[ \t\r\f\v]*\n")


def split_paragraphs(text: str) -> list[str]:
    """``text`` cut at blank lines (a line holding only whitespace counts as blank)."""
    return _PARAGRAPH_RE.split(text)


def stream_paragraphs(path, info: dict | None = None, *, checked: bool = False) -> Iterator[str]:
    """The text cut at blank lines exactly as :func:`split_paragraphs` cuts the whole text.

    Lines are buffered until a whitespace-only line arrives (only such a line can complete a
    separator); the buffer is then split and everything before its last separator is final. A match
    never spans an unread line, so the pieces equal those of splitting the whole text at once.
    """
    buf: list[str] = []
    for line in stream_text(path, info, checked=checked):
        buf.append(line)
        if len(buf) > 1 and _BLANK_LINE_RE.fullmatch(line):
            parts = split_paragraphs("".join(buf))
            if len(parts) > 1:
                yield from parts[:-1]
                buf = [parts[-1]]
    if buf:
        yield from split_paragraphs("".join(buf))


def join_blank_lines(lines: Iterable[str]) -> Iterator[str]:
    """Char-level "sentences" of text given as lines with terminators: each line with the blank lines
    after it (blank lines before the first text line go with it), so that the pieces joined are the text."""
    cur = ""
    for line in lines:
        for ln in line.splitlines(keepends=True):
            if ln.strip() and cur.strip():
                yield cur
                cur = ""
            cur += ln
    if cur:
        yield cur


# The csv module wants lines split the way open(newline="") splits them: at "\r\n", "\r" or "\n".
_CSV_LINE_RE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


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


def _csv_column(path, header: list[str], column: str) -> int:
    names = [h.strip() for h in header]
    if column in names:
        return names.index(column)
    lowered = [h.lower() for h in names]
    if column.lower() not in lowered:
        raise CorpusError(
            f"{path}: no column {column!r} in the CSV header (columns: {shorten(names)}); "
            f"choose one with --column"
        )
    return lowered.index(column.lower())


def _csv_value(row: list[str], col: int, info: dict) -> str | None:
    info["rows"] += 1
    if not row:
        return None  # blank line
    if len(row) <= col:
        info["skipped_rows"] += 1
        return None
    return row[col] if row[col].strip() else None


def stream_csv(
    path, column: str = "body", info: dict | None = None, *, checked: bool = False
) -> Iterator[str]:
    """The non-empty ``column`` values of a CSV file with a header row (the column name is matched
    exactly, else case-insensitively).

    Fills ``info`` (replacement_chars, rows, truncated_rows, skipped_rows). A last record cut off
    inside a quoted field is left out (one record of look-ahead decides which record is the last).
    """
    info = {} if info is None else info
    record: list[str] = []  # the raw lines of the record being read

    def pieces():
        for line in stream_text(path, info, checked=checked):
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
        except StopIteration:  # pragma: no cover - require_content rejects empty files
            raise CorpusError(f"{path}: file is empty") from None
        except csv.Error as e:
            raise CorpusError(f"{path}: line {reader.line_num}: malformed CSV header ({e})") from None
        col = _csv_column(path, header, column)
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


def stream_jsonl(
    path, field: str = "text", info: dict | None = None, *, checked: bool = False
) -> Iterator[str]:
    """The non-empty string values of ``field`` in a JSON-lines file (``null`` values are skipped).

    A line that is not valid JSON, not an object, lacks the field or holds a non-string raises
    :class:`CorpusError` naming the file and the line number.
    """
    info = {} if info is None else info
    info["rows"] = 0
    found = 0
    for lineno, line in enumerate(stream_text(path, info, checked=checked), 1):
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
                f"{path}: line {lineno}: no field {field!r} (fields: {shorten(obj)}); choose one with --field"
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


def stream_units(
    path,
    format: str,
    info: dict,
    *,
    level: str = "word",
    tokenizer: str = "whitespace",
    lowercase: bool = False,
    column: str = "body",
    field: str = "text",
    checked: bool = False,
) -> tuple[Iterator[str], bool]:
    """``(units, presplit)``: the file as a stream of documents to split into sentences (``presplit``
    False: CSV/JSONL records, or the paragraphs of text for the nltk tokenizer) or of sentence texts
    already (True, lowercased if asked): lines, or at char level lines ending in ``"\\n"`` (for text,
    with the blank lines after them, see :func:`join_blank_lines`). ``format`` is not ``auto``."""
    kw = {"checked": checked}
    if format == "csv":
        return stream_csv(path, column, info, **kw), False
    if format == "jsonl":
        return stream_jsonl(path, field, info, **kw), False
    if level == "char" and format == "text":
        lines = stream_text(path, info, **kw)
        return join_blank_lines(ln.lower() for ln in lines) if lowercase else join_blank_lines(lines), True
    if level == "char" or format == "lines" or tokenizer == "whitespace":
        end = "\n" if level == "char" else ""
        lines = stream_lines(path, info, **kw)
        return ((ln.lower() if lowercase else ln) + end for ln in lines), True
    return stream_paragraphs(path, info, **kw), False


# --------------------------------------------------------------------------------------------------
# Convenience readers: a stream collected into memory, its repairs reported
# --------------------------------------------------------------------------------------------------


def _collect(path, stream: Iterator[str], info: dict) -> list[str]:
    out = list(stream)
    report(path, info)
    return out


def read_reddit_csv(path, column: str = "body") -> list[str]:
    """The non-empty values of ``column`` in a CSV file with a header row (the tutorial's reddit file).

    Quoted multi-line fields are supported (``csv`` module, ``skipinitialspace=True`` as in the
    tutorial). A last row cut off inside a quoted field (the shared sample) is dropped with a
    :class:`CorpusWarning`. Raises :class:`CorpusError` for a missing/empty/binary file, a directory or a
    missing column.
    """
    info: dict = {}
    return _collect(path, stream_csv(path, column, info), info)


def read_text(path) -> str:
    """The whole file as text (UTF-8; undecodable bytes replaced and reported by a warning)."""
    info: dict = {}
    return "".join(_collect(path, stream_text(path, info), info))


def read_lines(path) -> list[str]:
    """The non-empty lines of a file, without line terminators, otherwise unchanged."""
    info: dict = {}
    return _collect(path, stream_lines(path, info), info)


def read_jsonl(path, field: str = "text") -> list[str]:
    """The non-empty string values of ``field`` in a JSON-lines file; see :func:`stream_jsonl`."""
    info: dict = {}
    return _collect(path, stream_jsonl(path, field, info), info)


def detect_format(path) -> tuple[str, str]:
    """Guess the format of a corpus file: ``(format, reason)``; see the module docstring."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext in _EXTENSION_FORMATS:
        return _EXTENSION_FORMATS[ext], f"extension {ext}"
    try:
        with open(p, "rb") as f:
            head = f.read(BINARY_SAMPLE_BYTES).decode("utf-8", errors="replace")
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
