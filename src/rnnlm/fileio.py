"""Atomic file writes: a temporary file in the target's folder, fsync, then ``os.replace``.

A crash, a full disk or Ctrl-C at any point leaves either the old file or the new one at the
path, never half of one; the temporary file is removed on failure.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


def atomic_write(path, write, mode="wb", check=None) -> Path:
    """Call ``write(fileobj)`` on a temporary file and move it to ``path`` when complete.

    ``check``, if given, is called with the temporary file's path once it is written and closed, before
    it is moved into place: an exception from it (a failed verification) leaves ``path`` as it was.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if check is not None:
            check(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def atomic_savez(path, compress: bool = False, **arrays) -> Path:
    """``np.savez`` (or ``savez_compressed``) to ``path`` atomically."""
    saver = np.savez_compressed if compress else np.savez
    return atomic_write(path, lambda f: saver(f, **arrays))


def atomic_savefig(fig, path, **kwargs) -> Path:
    """Save a matplotlib figure as PNG atomically."""
    return atomic_write(path, lambda f: fig.savefig(f, format="png", **kwargs))


def remove_stale_temps(folder, name: str) -> int:
    """Delete leftover ``.NAME.*.tmp`` files of an earlier killed run; returns how many."""
    n = 0
    for p in Path(folder).glob(f".{name}.*.tmp"):
        try:
            p.unlink()
            n += 1
        except OSError:
            pass
    return n
