"""What `kdbench list` shows of the built-in parts, read without importing them.

A part's module imports torch and its own libraries (nlpaug, transformers), which takes seconds, but
a listing should start at once. So the listings of the built-in parts are kept in `catalogue.json`
beside this module, with a hash of the source files they were made from. When those files change (a
part edited in a checkout), the listing is made by importing the parts, as before: it is never stale,
only slower. `python -m bench.catalogue` rewrites the file; tests/test_catalogue.py fails until the
file matches the parts.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

from bench.parts.errors import UnknownNameError
from bench.parts.registry import Registry, matches, resolve
from bench.roles import LISTED

FILE = Path(__file__).with_name("catalogue.json")
SHARED_SOURCES = ("bench.parts.registry", "bench.parts.fields")  # how every part's listing is made


def listing(registry: Registry, pattern: str = "*") -> list[dict[str, Any]]:
    """The listings (`Part.listing`) of the registry's parts matching `pattern`: the built-ins in their
    declared order, from the catalogue when it was made from their present sources, then plugins."""
    builtins = _catalogued(registry)
    if builtins is None:  # the sources changed since the catalogue was written: import the parts
        builtins = [part.listing() for part in registry.list() if part.name in registry.builtins]
    entries = builtins + [part.listing() for part in registry.plugins()]
    return [entry for entry in entries if matches((entry["name"], *entry["aliases"]), pattern)]


def declared(plural: str, name: str) -> dict[str, Any] | None:
    """The listing of the part of kind `plural` called `name` (or an alias), read as `listing` reads it;
    None for a name no part has (the run's checks say so, with the nearest names)."""
    registry = resolve(LISTED[plural])
    for entry in _catalogued(registry) or []:
        if name == entry["name"] or name in entry["aliases"]:
            return entry
    try:
        return registry.get(name).listing()
    except UnknownNameError:
        return None


def sources_hash(registry: Registry) -> str:
    """A hash of the source files the built-in parts' listings are made from."""
    h = hashlib.blake2b(digest_size=12)
    for module in sorted({*registry.builtins.values(), *SHARED_SOURCES}):
        h.update(module.encode())
        h.update(Path(importlib.util.find_spec(module).origin).read_bytes())
    return h.hexdigest()


def make() -> dict[str, Any]:
    """The catalogue of every kind's built-in parts, made by importing them."""
    catalogue = {}
    for plural, path in LISTED.items():
        registry = resolve(path)
        catalogue[plural] = {"sources": sources_hash(registry),
                             "parts": [part.listing() for part in registry.list() if part.name in registry.builtins]}
    return catalogue


def _catalogued(registry: Registry) -> list[dict[str, Any]] | None:
    try:
        entry = json.loads(FILE.read_text())[registry.plural]
    except (OSError, ValueError, KeyError):
        return None
    return entry["parts"] if entry["sources"] == sources_hash(registry) else None


if __name__ == "__main__":
    FILE.write_text(json.dumps(make(), indent=1) + "\n")
    print(f"wrote {FILE}")
