"""The registry of training schemes (see bench/registry.py): `@register_scheme("name", ...)` on a
subclass of `schemes.base.Scheme`, `get_scheme(name)`, `list_schemes(pattern)`. Built-in schemes are
imported on first use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.registry import NoParams, Part, Registry

SCHEMES = Registry("scheme", plural="schemes", base="schemes.base:Scheme", builtins={
    "plain": "schemes.plain", "swa": "schemes.swa",
})


def register_scheme(name: str, *, description: str, params: type = NoParams, label: str | None = None,
                    aliases: tuple[str, ...] = ()) -> Callable[[Any], Any]:
    """Class decorator adding a training scheme to the registry."""
    return SCHEMES.register(name, description=description, params=params, label=label, aliases=aliases)


def get_scheme(name: str) -> Part:
    return SCHEMES.get(name)


def list_schemes(pattern: str = "*") -> list[Part]:
    return SCHEMES.list(pattern)
