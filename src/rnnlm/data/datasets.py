"""Known data files: where to find them locally and how to download them (verified, atomically).

Lookup order (:func:`data_dirs`): every folder in ``$RNNLM_DATA`` (``os.pathsep``-separated), then the
repository's ``data/`` folder (for a source checkout), then ``./data``. Downloads go to the repository's
``data/`` (or ``./data``) unless a destination is given. Nothing here touches the network except
:func:`download` (and :func:`find_or_download`, which calls it when a file is missing).

The package ships one stand-in (:data:`PACKAGED_DIR`, package data): the tutorial's reddit file's first
212 comments (``reddit-comments-2015-08-sample.csv``, 110 KB; its last row is cut mid-comment, so 211
load). It is used, with one :class:`DataWarning`, when the full reddit file is in no data folder (and, for
:func:`find_or_download`, cannot be downloaded either), so ``rnnlm demo`` works offline on a fresh clone.
Origin and licence: ``data/README.md``.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from rnnlm.data.readers import stream_csv
from rnnlm.errors import CorpusError, DataUnavailableError
from rnnlm.fileio import atomic_write

__all__ = [
    "DEFAULT_CORPUS",
    "KNOWN",
    "DataWarning",
    "KnownFile",
    "data_dirs",
    "default_download_dir",
    "download",
    "find",
    "find_or_download",
    "known_names",
    "packaged",
    "resolve",
    "sha256_file",
    "verify",
]

DEFAULT_CORPUS = "reddit"
DOWNLOAD_TIMEOUT_S = 60
#: Stand-ins shipped inside the package (declared as package data in setup.cfg).
PACKAGED_DIR = Path(__file__).resolve().parent / "samples"


class DataWarning(UserWarning):
    """A substitute data file is used (e.g. the reddit sample instead of the full file)."""


@dataclass(frozen=True)
class KnownFile:
    name: str
    filename: str
    url: str
    sha256: str | None  # None: verified by parsing (the full reddit file)
    kind: str  # "corpus" or "model"
    description: str
    substitute: str | None = None  # a local stand-in used when the file itself is absent
    substitute_sha256: str | None = None  # the stand-in's checksum (a copy ships in PACKAGED_DIR)


KNOWN: dict[str, KnownFile] = {
    "reddit": KnownFile(
        "reddit",
        "reddit-comments-2015-08.csv",
        "https://raw.githubusercontent.com/dennybritz/rnn-tutorial-rnnlm/master/data/reddit-comments-2015-08.csv",
        None,
        "corpus",
        "the tutorial's reddit comments (August 2015), CSV with a 'body' column",
        substitute="reddit-comments-2015-08-sample.csv",
        substitute_sha256="fb6df088415f15c49a188fab4b4ebd3ea6ae3699cfb549049bde6524a2263fbb",
    ),
    "tinyshakespeare": KnownFile(
        "tinyshakespeare",
        "tinyshakespeare.txt",
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        "corpus",
        "char-rnn's tiny Shakespeare (1.1 MB of plain text)",
    ),
    "tutorial-model": KnownFile(
        "tutorial-model",
        "trained-model-theano.npz",
        "https://raw.githubusercontent.com/dennybritz/rnn-tutorial-rnnlm/master/data/trained-model-theano.npz",
        "4c6fd11e93d1ac009878b9c40e8fa5eba36f704352725ce96cc91368271ccd99",
        "model",
        "the tutorial's pretrained Theano RNN (U, V, W; H=50, vocabulary 8000)",
    ),
}

#: The full reddit file is verified by parsing: at least this many complete comments.
REDDIT_MIN_ROWS = 1000


def known_names(kind: str | None = None) -> list[str]:
    return [n for n, k in KNOWN.items() if kind is None or k.kind == kind]


def _repo_data_dir() -> Path | None:
    """``<checkout>/data`` when rnnlm runs from a source checkout (editable install), else None."""
    root = Path(__file__).resolve().parents[2]
    if (root / "setup.cfg").is_file() and (root / "src" / "rnnlm").is_dir():
        return root / "data"
    return None


def data_dirs() -> list[Path]:
    """Folders searched for data files, in order: ``$RNNLM_DATA`` entries, ``<repo>/data``, ``./data``."""
    dirs: list[Path] = []
    env = os.environ.get("RNNLM_DATA", "")
    dirs += [Path(d).expanduser() for d in env.split(os.pathsep) if d.strip()]
    repo = _repo_data_dir()
    if repo is not None:
        dirs.append(repo)
    dirs.append(Path.cwd() / "data")
    out, seen = [], set()
    for d in dirs:
        key = os.path.abspath(d)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def default_download_dir() -> Path:
    """Where :func:`download` writes by default: ``<repo>/data`` for a checkout, else ``./data``."""
    return _repo_data_dir() or Path.cwd() / "data"


def _known(name: str) -> KnownFile:
    try:
        return KNOWN[name]
    except KeyError:
        raise CorpusError(f"unknown data name {name!r} (known: {', '.join(KNOWN)})") from None


def _missing_message(item: KnownFile, dirs: list[Path]) -> str:
    where = ", ".join(str(d) for d in dirs)
    return (
        f"{item.name}: {item.filename} not found (looked in {where}); run `rnnlm data download {item.name}`, "
        f"or download {item.url} manually into a folder and set RNNLM_DATA to that folder"
    )


def packaged(name: str) -> Path | None:
    """The copy of ``name``'s stand-in shipped inside the package (:data:`PACKAGED_DIR`), or None."""
    item = _known(name)
    if not item.substitute:
        return None
    p = PACKAGED_DIR / item.substitute
    return p if p.is_file() else None


def _in_dirs(filename: str | None, dirs: list[Path]) -> Path | None:
    """The first ``dirs / filename`` that exists, or None."""
    for d in dirs if filename else ():
        p = d / filename
        if p.is_file():
            return p
    return None


def _use_substitute(item: KnownFile, path: Path, why: str) -> Path:
    warnings.warn(
        f"using {path} (a sample) as the {item.name} corpus: {why}; "
        f"`rnnlm data download {item.name}` fetches the full file",
        DataWarning,
        stacklevel=3,
    )
    return path


def find(name: str, substitute: bool = True) -> Path:
    """Local path of a known file; :class:`DataUnavailableError` when it is nowhere in :func:`data_dirs`.

    For ``reddit``, when the full file is absent and ``substitute`` is true, the 212-comment sample
    ``reddit-comments-2015-08-sample.csv`` is used instead -- from a data folder, else the copy shipped in
    the package -- with one :class:`DataWarning` saying so. Never touches the network.
    """
    item = _known(name)
    dirs = data_dirs()
    full = _in_dirs(item.filename, dirs)
    if full is not None:
        return full
    if substitute:
        stand_in = _in_dirs(item.substitute, dirs) or packaged(name)
        if stand_in is not None:
            return _use_substitute(item, stand_in, f"{item.filename} was not found")
    raise DataUnavailableError(_missing_message(item, dirs))


def resolve(name_or_path, kind: str | None = None) -> Path:
    """A path to an existing file or folder as given, else the local file of a known name.

    ``kind`` (``"corpus"`` or ``"model"``) restricts the known names accepted. Raises
    :class:`CorpusError` for a path that does not exist / an unknown name, and
    :class:`DataUnavailableError` for a known name whose file is not present locally.
    """
    if isinstance(name_or_path, os.PathLike):
        p = Path(name_or_path)
        if not p.exists():
            raise CorpusError(f"{p}: no such file")
        return p
    s = str(name_or_path)
    p = Path(s).expanduser()
    if p.exists():
        return p
    if s in KNOWN:
        if kind is not None and KNOWN[s].kind != kind:
            raise CorpusError(f"{s!r} is a {KNOWN[s].kind}, not a {kind}")
        return find(s)
    if os.sep in s or (os.altsep and os.altsep in s) or p.suffix:
        raise CorpusError(f"{s}: no such file")
    what = kind or "data"
    raise CorpusError(
        f"{s!r} is neither a file nor a known {what} name (known: {', '.join(known_names(kind))})"
    )


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(name: str, path) -> None:
    """Check a local copy of a known file: its sha256, or for ``reddit`` that it parses as the tutorial's
    CSV (a ``body`` column, no cut-off last row, at least :data:`REDDIT_MIN_ROWS` comments).
    Raises :class:`DataUnavailableError` describing the mismatch."""
    item = _known(name)
    if item.sha256 is not None:
        got = sha256_file(path)
        if got != item.sha256:
            raise DataUnavailableError(
                f"{name}: checksum mismatch for {path} "
                f"(sha256 {got[:16]}..., expected {item.sha256[:16]}...); "
                f"download {item.url} manually and set RNNLM_DATA to its folder"
            )
        return
    info: dict = {}
    try:
        comments = sum(1 for _ in stream_csv(path, "body", info))
    except CorpusError as e:
        raise DataUnavailableError(
            f"{name}: the downloaded file does not parse as the tutorial's CSV ({e})"
        ) from None
    if info.get("truncated_rows"):
        raise DataUnavailableError(f"{name}: {path} is cut off (its last row is incomplete)")
    if comments < REDDIT_MIN_ROWS:
        raise DataUnavailableError(
            f"{name}: {path} holds only {comments} comments (expected at least {REDDIT_MIN_ROWS})"
        )


def download(name: str, dest=None, force: bool = False, progress: bool = True) -> Path:
    """Download a known file into ``dest`` (a folder; default :func:`default_download_dir`).

    Without ``force`` an existing verified copy (in ``dest`` or any data folder) is returned as is.
    The file is written to a temporary name in ``dest``, verified, then renamed into place
    (:func:`rnnlm.fileio.atomic_write`): a failed or interrupted download never leaves a partial or
    unverified file. Network failures and checksum mismatches raise :class:`DataUnavailableError` with
    one line saying what to do.
    """
    item = _known(name)
    folder = Path(dest) if dest is not None else default_download_dir()
    target = folder / item.filename
    if not force:
        candidates = [target] + [d / item.filename for d in data_dirs()]
        for p in candidates:
            if p.is_file():
                try:
                    verify(name, p)
                    return p
                except DataUnavailableError as e:
                    if p == target:
                        warnings.warn(f"{e}; downloading it again", DataWarning, stacklevel=2)

    def fetch(out) -> None:
        try:
            with urllib.request.urlopen(item.url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                headers = getattr(response, "headers", None)
                total = headers.get("Content-Length") if headers else None
                size = int(total) if total and str(total).isdigit() else None
                _copy(response, out, size, item.filename, progress)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            error = DataUnavailableError(
                f"{name}: could not download {item.url} ({reason}); download it manually into a folder "
                f"and set RNNLM_DATA to that folder"
            )
            error.reason = str(reason)
            raise error from None

    try:
        folder.mkdir(parents=True, exist_ok=True)
        return atomic_write(target, fetch, check=lambda tmp: verify(name, tmp))
    except OSError as e:  # creating the folder or the temporary file, or moving it into place
        raise DataUnavailableError(
            f"{name}: cannot write to {folder} ({e.strerror or e}); "
            f"choose another folder with --dest or set RNNLM_DATA"
        ) from None


def _copy(src, dst, total: int | None, label: str, progress: bool) -> None:
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="B", unit_scale=True, desc=label, disable=None, leave=False)
    try:
        while True:
            block = src.read(1 << 16)
            if not block:
                break
            dst.write(block)
            if bar is not None:
                bar.update(len(block))
    finally:
        if bar is not None:
            bar.close()


def find_or_download(name: str, progress: bool = True) -> Path:
    """The local file of a known name, else download it; a stand-in when neither works.

    Order: the file in a data folder; the stand-in in a data folder (someone put it there on purpose:
    no network is used); a download; the stand-in shipped in the package. A stand-in comes with one
    :class:`DataWarning` (saying why the download failed, when it did); without one the download's
    :class:`DataUnavailableError` is raised.
    """
    item = _known(name)
    dirs = data_dirs()
    full = _in_dirs(item.filename, dirs)
    if full is not None:
        return full
    stand_in = _in_dirs(item.substitute, dirs)
    if stand_in is not None:
        return _use_substitute(item, stand_in, f"{item.filename} was not found")
    try:
        return download(name, progress=progress)
    except DataUnavailableError as e:
        stand_in = packaged(name)
        if stand_in is None:
            raise
        why = f"{item.filename} was not found and could not be downloaded ({getattr(e, 'reason', None) or e})"
        return _use_substitute(item, stand_in, why)
