"""Checksums of cache entries: a damaged entry is found when read, reported, discarded and rebuilt.

A cache entry is trusted only if it is byte for byte what was written: a truncated or garbled file
would otherwise crash every later run, or worse, silently change its numbers. Two kinds of entry:

- a folder (fine-tuned teacher, pool, generator) is sealed by a manifest written last,
  `checksums.json`: `{"files": {RELATIVE_PATH: {"bytes": SIZE, "blake2b": HEX}, ...}}` for every
  file in the folder. On read, every listed file must be there with its size and digest (files
  added later are ignored).
- a single file (the teacher's outputs, `KEY.npy`) has its checksum file beside it,
  `KEY.checksum.json`: `{"bytes": SIZE, "blake2b": HEX, "shape": [...], "dtype": ...}`, written
  after the file. On read, size, digest and the shape and dtype the caller expects must match.

Sizes are compared before any digest, so a truncated file costs nothing to detect; a digest
streams the file in 1 MiB chunks (verifying the 92 MB MiniLM teacher folder takes 0.15 s on one
CPU core once it is in the page cache, against minutes to rebuild it). An entry without checksums
was written by an older kdbench and is rebuilt like a damaged one, by `usable`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.pipeline.storage import publish_directory, temporary_directory, write_json

MANIFEST = "checksums.json"
NO_CHECKSUM = "no checksum: written by an older kdbench"
_CHUNK = 1 << 20


def file_checksum(path: Path) -> dict[str, int | str]:
    """A file's size and blake2b digest, read in chunks (a model file need not fit in memory twice)."""
    h = hashlib.blake2b()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            h.update(chunk)
    return {"bytes": path.stat().st_size, "blake2b": h.hexdigest()}


def _size_damage(path: Path, name: str, expected: dict) -> str | None:
    """How the file at `path` differs in size from its checksum `expected` (or is missing), or None."""
    if not path.is_file():
        return f"{name}: missing"
    size = path.stat().st_size
    return None if size == expected["bytes"] else f"{name}: {size} bytes, expected {expected['bytes']}"


def _digest_damage(path: Path, name: str, expected: dict) -> str | None:
    """How the file at `path` differs in content from its checksum `expected`, or None."""
    same = file_checksum(path)["blake2b"] == expected["blake2b"]
    return None if same else f"{name}: content differs from its checksum"


def _is_checksum(value: object) -> bool:
    """Whether `value` has the form of a recorded checksum (a damaged manifest may not)."""
    return isinstance(value, dict) and isinstance(value.get("bytes"), int) and isinstance(value.get("blake2b"), str)


def _read_json(path: Path) -> dict | None:
    """The JSON object in `path`, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def seal(folder: Path) -> None:
    """Write `folder`'s manifest: the checksum of every file in it. Call it last, once the folder
    is complete; the manifest is what marks it finished."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p != folder / MANIFEST)
    write_json(folder / MANIFEST, {"files": {p.relative_to(folder).as_posix(): file_checksum(p) for p in files}})


def holds_entry(folder: Path, marker: str) -> bool:
    """Whether `folder` holds a finished folder entry, to verify before use: its manifest, or its
    `marker` file (the mark of a finished entry before manifests). Neither: an empty folder, or a
    foreign one that is not to be discarded."""
    return (folder / MANIFEST).is_file() or (folder / marker).is_file()


def folder_damage(folder: Path) -> str | None:
    """What is wrong with a sealed folder (the first listed file that is missing or differs), or
    None when it is intact."""
    if not (folder / MANIFEST).is_file():
        return NO_CHECKSUM
    manifest = _read_json(folder / MANIFEST)
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(listed, dict) or not all(map(_is_checksum, listed.values())):
        return f"{MANIFEST}: unreadable"
    for check in (_size_damage, _digest_damage):  # every size first: a truncated file is found without hashing
        for name, expected in listed.items():
            if problem := check(folder / name, name, expected):
                return problem
    return None


def checksum_file(path: Path) -> Path:
    """Where a single-file entry's checksum is kept: `KEY.npy` -> `KEY.checksum.json`."""
    return path.with_suffix(".checksum.json")


def write_file_checksum(path: Path, **content: object) -> None:
    """Record `path`'s size and digest, and what it holds (`content`, e.g. shape and dtype), in its
    checksum file. Call it once `path` is complete."""
    write_json(checksum_file(path), {**file_checksum(path), **content})


def file_damage(path: Path, **content: object) -> str | None:
    """What is wrong with a single-file entry: no checksum, recorded content other than the
    `content` expected (e.g. another shape), or a size or digest that differs; None when intact."""
    if not checksum_file(path).is_file():
        return NO_CHECKSUM
    recorded = _read_json(checksum_file(path))
    if not _is_checksum(recorded):
        return f"{checksum_file(path).name}: unreadable"
    for key, value in content.items():
        if recorded.get(key) != value:
            return f"{path.name}: {key} {recorded.get(key)}, expected {value}"
    return _size_damage(path, path.name, recorded) or _digest_damage(path, path.name, recorded)


def usable(entry: Path, damage: str | None) -> bool:
    """Whether the cache entry `entry` can be used, given what verification found wrong with it
    (`damage`, None when intact). A damaged entry is reported on stderr in one line and removed
    (a single file with its checksum file), so the caller rebuilds it as if it had never been."""
    if damage is None:
        return True
    print(f"kdbench: warning: damaged cache entry {entry} ({damage}): discarded, rebuilding", file=sys.stderr)
    try:
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
            checksum_file(entry).unlink(missing_ok=True)
    except FileNotFoundError:  # another process discarded it first
        pass
    return False


@contextmanager
def sealed_folder(folder: Path) -> Iterator[Path]:
    """A new temporary folder next to `folder` to fill; on success it is sealed and published as
    `folder` by one rename (`publish_directory`), on failure removed."""
    partial = temporary_directory(folder)
    try:
        yield partial
        seal(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    publish_directory(partial, folder)
