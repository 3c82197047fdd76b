"""Atomic writes: a file or folder appears complete or not at all, never half-written.

Each writer fills a temporary sibling and renames it into place (`os.replace`), which is atomic on
a POSIX file system, so an interrupted run or two workers racing leave no partial file behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

_UMASK = os.umask(0)  # read once (setting is the only way to read it), then restored
os.umask(_UMASK)


@contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator:
    """Open a temporary file next to `path`; on success it is renamed to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # what open() would give; mkstemp makes the file private (0600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, data: dict) -> None:
    with atomic_file(path) as handle:
        json.dump(data, handle, indent=2, sort_keys=False, default=str)
        handle.write("\n")


def save_array(path: str | Path, array: np.ndarray) -> None:
    with atomic_file(path, "wb") as handle:
        np.save(handle, array)


def temporary_directory(path: str | Path) -> Path:
    """A new empty folder next to `path`, to fill and then publish as `path` (`publish_directory`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial"))
    os.chmod(tmp, 0o777 & ~_UMASK)  # what mkdir would give; mkdtemp makes the folder private (0700)
    return tmp


def publish_directory(tmp: str | Path, path: str | Path) -> None:
    """Rename a finished folder into place; if another process published the same cache entry
    first, keep theirs (both hold the same content by construction of the cache key)."""
    try:
        os.rename(tmp, path)
    except OSError:
        if not Path(path).is_dir():
            raise
        shutil.rmtree(tmp)
