"""The memory-mapped corpus format, and reading token ids in pieces (never the whole corpus at once).

A prepared corpus saved under a name ending in ``.json`` is three files side by side::

    NAME.json         the metadata: format ``rnnlm-corpus`` version 2, level, vocabulary, statistics,
                      settings, Punkt parameters, and the sizes and dtype of the two arrays
    NAME.ids.npy      token ids (N,), uint16 when the vocabulary has at most 65,536 tokens, else uint32
    NAME.offsets.npy  sentence offsets (S + 1,) int64: sentence i is ids[offsets[i]:offsets[i + 1]]

:func:`read` opens the ids with ``np.load(mmap_mode="r")``: the operating system pages them in as
batches touch them, and they stay file-backed (never a private copy). The one full pass a load makes --
counting every token id, which also proves every id is in the vocabulary -- reads the file in slices
with ``read()`` rather than through the map. Old single-file ``.npz`` corpora (version 1) are read by
:meth:`rnnlm.data.corpus.Corpus.load` as before.

Sequences of a corpus are *segments* of one id array: ``starts`` (S,) and ``lengths`` (S,) int64. A split
of a mapped corpus is its own segments over the parent's map, not a copy; :func:`iter_ids`,
:func:`counts` and :func:`read_span` read them a slice at a time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rnnlm.errors import CorpusError
from rnnlm.fileio import atomic_write

__all__ = [
    "MAPPED_VERSION",
    "Segments",
    "counts",
    "ids_dtype",
    "is_mapped",
    "is_prepared",
    "iter_concat",
    "iter_ids",
    "read",
    "read_segments",
    "read_span",
    "write",
]

MAPPED_VERSION = 2
#: Token ids per slice when a corpus is read or written in pieces.
CHUNK = 1 << 20


class Segments(NamedTuple):
    """Sequences as segments of one id array: sequence i is ``ids[starts[i]:starts[i] + lengths[i]]``."""

    ids: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray


def is_mapped(path) -> bool:
    """Whether ``path`` names a memory-mapped corpus (its metadata file, ``NAME.json``)."""
    return Path(path).suffix.lower() == ".json"


def is_prepared(path) -> bool:
    """Whether ``path`` is a prepared corpus file (an ``.npz``, or a mapped corpus's ``NAME.json``)."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        head = f.read(64)
    if path.suffix.lower() == ".npz":
        return head.startswith(b"PK")
    return is_mapped(path) and head.replace(b" ", b"").startswith(b'{"format":"rnnlm-corpus"')


def ids_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id of a ``vocab_size`` vocabulary fits, else uint32."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def array_paths(path) -> tuple[Path, Path]:
    """``(NAME.ids.npy, NAME.offsets.npy)`` beside ``NAME.json``."""
    path = Path(path)
    stem = path.with_suffix("")
    return stem.with_name(stem.name + ".ids.npy"), stem.with_name(stem.name + ".offsets.npy")


def contiguous(starts: np.ndarray, lengths: np.ndarray) -> bool:
    """Whether the segments follow each other without gaps (one slice of the id array)."""
    return bool(len(starts) < 2 or np.array_equal(starts[1:], starts[:-1] + lengths[:-1]))


def iter_ids(ids, starts, lengths, chunk: int = CHUNK):
    """The tokens of the segments, in order, as arrays of about ``chunk`` tokens (views of ``ids`` where the
    segments are contiguous, so a slice is never copied twice)."""
    starts, lengths = np.asarray(starts, np.int64), np.asarray(lengths, np.int64)
    if not len(starts):
        return
    if contiguous(starts, lengths):
        a, b = int(starts[0]), int(starts[-1] + lengths[-1])
        for i in range(a, b, chunk):
            yield ids[i : min(i + chunk, b)]
        return
    ends = np.cumsum(lengths)
    first, chunk = 0, max(chunk // 4, 1)  # a gather holds a few index arrays of its size
    while first < len(starts):
        last = max(int(np.searchsorted(ends, ends[first] - lengths[first] + chunk, side="right")), first + 1)
        yield _gather(ids, starts[first:last], lengths[first:last])
        first = last


def _gather(ids, starts, lengths) -> np.ndarray:
    """The segments' tokens concatenated (a copy, in the dtype of ``ids``)."""
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, ids.dtype)
    base = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return np.asarray(ids[base + np.arange(total, dtype=np.int64)])


def iter_concat(ids, starts, lengths) -> np.ndarray:
    """The segments' tokens as one int32 array (a copy, filled a slice at a time)."""
    out = np.empty(int(np.sum(lengths)), np.int32)
    pos = 0
    for part in iter_ids(ids, starts, lengths):
        out[pos : pos + len(part)] = part
        pos += len(part)
    return out


def read_segments(ids, starts, lengths) -> np.ndarray | None:
    """The segments' tokens (int32) read from the file behind the memory map ``ids`` with ``pread``: the
    map's pages are not touched, so scattered sentences (a validation split) do not page in the whole file
    around them (read-ahead). None when ``ids`` is not a whole mapped ``.npy`` file."""
    name, size = getattr(ids, "filename", None), ids.dtype.itemsize
    if name is None or not os.path.isfile(name) or os.path.getsize(name) != ids.offset + len(ids) * size:
        return None
    out = np.empty(int(np.sum(lengths)), np.int32)
    pos = 0
    with open(name, "rb") as f:
        fd = f.fileno()
        for a, n in zip(np.asarray(starts).tolist(), np.asarray(lengths).tolist(), strict=True):
            out[pos : pos + n] = np.frombuffer(os.pread(fd, n * size, ids.offset + a * size), ids.dtype)
            pos += n
    return out


def counts(ids, starts, lengths, n: int) -> np.ndarray:
    """How often each id 0..n-1 occurs in the segments, (n,) int64, read a slice at a time."""
    out = np.zeros(n, np.int64)
    for part in iter_ids(ids, starts, lengths):
        out += np.bincount(part, minlength=n)[:n]
    return out


def read_span(ids, starts, ends, a: int, b: int) -> np.ndarray:
    """Tokens ``a`` to ``b`` (exclusive) of the stream the segments make (int32); ``ends`` is
    ``cumsum(lengths)``."""
    if a >= b:
        return np.zeros(0, np.int32)
    i = int(np.searchsorted(ends, a, side="right"))
    j = int(np.searchsorted(ends, b - 1, side="right"))
    begin = int(ends[i - 1]) if i else 0  # where segment i starts in the stream
    if i == j:  # the common case: inside one segment
        s = int(starts[i] + a - begin)
        return np.asarray(ids[s : s + b - a], np.int32)
    pieces, pos = [], a
    for k in range(i, j + 1):
        seg_begin = ends[k - 1] if k else 0
        lo, hi = max(pos, seg_begin), min(b, ends[k])
        s = int(starts[k] + lo - seg_begin)
        pieces.append(np.asarray(ids[s : s + hi - lo], np.int32))
        pos = hi
    return np.concatenate(pieces)


def _write_npy(path: Path, dtype, shape, parts) -> None:
    """An ``.npy`` file written from ``parts`` (arrays, in order), never holding the whole array."""

    def write(f):
        header = {
            "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
            "fortran_order": False,
            "shape": shape,
        }
        np.lib.format.write_array_header_1_0(f, header)
        for part in parts:
            f.write(np.ascontiguousarray(part, dtype=dtype).tobytes())

    atomic_write(path, write)


def _link_whole(ids, starts, lengths, dtype, target: Path) -> bool:
    """When the segments are all of a mapped ``.npy`` of ``dtype``, in order, hard-link that file to
    ``target`` (no copy, no read) and return True; False where that cannot be done (then copy)."""
    source = getattr(ids, "filename", None)
    if source is None or ids.dtype != dtype or not len(starts) or not contiguous(starts, lengths):
        return False
    whole = starts[0] == 0 and int(starts[-1] + lengths[-1]) == len(ids)
    if not whole or Path(source).resolve() == target.resolve():
        return False
    tmp = target.with_name(f".{target.name}.link.tmp")
    try:
        tmp.unlink(missing_ok=True)
        os.link(source, tmp)
        os.replace(tmp, target)
    except OSError:  # another file system, or links not allowed
        tmp.unlink(missing_ok=True)
        return False
    return True


def write(path, meta: dict, ids, starts, lengths, vocab_size: int, table=None) -> Path:
    """Save the segments of ``ids`` as a mapped corpus at ``path`` (``NAME.json``) with metadata ``meta``;
    ``table``: write ``table[id]`` for every id (a re-encoding), a slice at a time. The ids of a whole mapped
    corpus saved unchanged are hard-linked, not copied (``.npy`` files are never written in place)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise CorpusError(f"{path}: folder {folder} does not exist")
    ids_path, offsets_path = array_paths(path)
    lengths = np.asarray(lengths, np.int64)
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    dtype = ids_dtype(vocab_size)
    try:
        if table is not None or not _link_whole(ids, starts, lengths, dtype, ids_path):
            parts = iter_ids(ids, starts, lengths)
            shape = (int(offsets[-1]),)
            _write_npy(ids_path, dtype, shape, parts if table is None else (table[p] for p in parts))
        _write_npy(offsets_path, np.int64, (len(offsets),), [offsets])
        doc = {
            **meta,
            "version": MAPPED_VERSION,
            "arrays": {
                "ids": ids_path.name,
                "offsets": offsets_path.name,
                "dtype": dtype.name,
                "tokens": int(offsets[-1]),
                "sentences": len(lengths),
            },
        }
        atomic_write(path, lambda f: f.write(json.dumps(doc, ensure_ascii=False).encode("utf-8")))
    except OSError as e:
        if e.filename is not None:
            raise
        raise OSError(e.errno, e.strerror or str(e), str(path)) from None
    return path


def _open_array(p: Path, path: Path, what: str, want_len: int):
    """The ``.npy`` at ``p``, memory-mapped, checked to be 1-D of ``want_len`` without pickles."""
    if not p.is_file():
        raise CorpusError(f"{path}: its {what} file {p.name} is missing")
    try:
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise CorpusError(f"{path}: cannot read {p.name} ({type(e).__name__}: {e})") from None
    if not isinstance(arr, np.ndarray) or arr.ndim != 1 or len(arr) != want_len:
        raise CorpusError(f"{path}: {p.name} holds {getattr(arr, 'shape', '?')}, expected ({want_len},)")
    return arr


def _count_file(p: Path, dtype, n_tokens: int, n: int) -> np.ndarray:
    """Counts of ids 0..n-1 in an ``.npy`` file read with ``read()`` in slices (not through a map);
    ``len(result) > n`` means an id out of range."""
    out = np.zeros(n, np.int64)
    with open(p, "rb") as f:
        version = np.lib.format.read_magic(f)
        reader = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        reader(f)
        done = 0
        while done < n_tokens:
            part = np.fromfile(f, dtype=dtype, count=min(CHUNK, n_tokens - done))
            if not len(part):
                break
            c = np.bincount(part, minlength=n)
            if len(c) > n:
                out = np.concatenate([out, np.zeros(len(c) - n, np.int64)])
            out[: len(c)] += c
            done += len(part)
    return out


def read(path, vocab_size_of) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """``(meta, ids, offsets, counts)`` of the mapped corpus ``NAME.json``: ``ids`` memory-mapped (read-only),
    ``offsets`` in memory, ``counts`` of every id. ``vocab_size_of(meta)`` gives the vocabulary's size (the
    caller parses the vocabulary). Every id is checked to be in the vocabulary; :class:`CorpusError`
    names what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CorpusError(f"{path}: not a readable prepared corpus ({type(e).__name__}: {e})") from None
    arrays = meta.get("arrays") if isinstance(meta, dict) else None
    if not isinstance(arrays, dict):
        raise CorpusError(f"{path}: not a memory-mapped rnnlm corpus (no 'arrays' entry)")
    try:
        n_tokens, n_sentences = int(arrays["tokens"]), int(arrays["sentences"])
        dtype = np.dtype(str(arrays["dtype"]))
        names = str(arrays["ids"]), str(arrays["offsets"])
    except (KeyError, TypeError, ValueError):
        raise CorpusError(f"{path}: bad 'arrays' entry in the corpus metadata") from None
    if dtype not in (np.dtype(np.uint16), np.dtype(np.uint32)) or n_tokens < 0 or n_sentences < 0:
        raise CorpusError(f"{path}: bad 'arrays' entry in the corpus metadata")
    if any(Path(n).name != n for n in names):
        raise CorpusError(f"{path}: array files must lie beside it, got {names}")
    ids = _open_array(path.parent / names[0], path, "ids", n_tokens)
    if ids.dtype != dtype:
        raise CorpusError(f"{path}: {names[0]} is {ids.dtype}, expected {dtype}")
    offsets = np.array(_open_array(path.parent / names[1], path, "offsets", n_sentences + 1))
    if (
        offsets.dtype.kind not in "iu"
        or offsets[0] != 0
        or offsets[-1] != n_tokens
        or np.any(np.diff(offsets) < 0)
    ):
        raise CorpusError(f"{path}: inconsistent offsets")
    n = int(vocab_size_of(meta))
    found = _count_file(path.parent / names[0], dtype, n_tokens, n)
    if len(found) > n:
        raise CorpusError(f"{path}: token ids out of range for its vocabulary of {n}")
    return meta, ids, offsets.astype(np.int64, copy=False), found
