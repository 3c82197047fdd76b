"""The registry of augmentation methods (see bench/registry.py): `@register_method("name", kind=...)` on
a class, `get_method(name)`, `list_methods(pattern)`.

A method's kind says where it acts: `none` (no augmentation), `in-loop` (inside the training step,
e.g. AD2) or `pool` (text generated before training). Built-in methods are imported on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.registry import NoParams, Param, Part, Registry, load_plugins, param, parse_assignment

__all__ = ["METHODS", "NoParams", "Param", "Part", "get_method", "list_methods", "load_plugins", "param",
           "parse_assignment", "register_method"]

KINDS = ("none", "in-loop", "pool")
METHODS = Registry("method", plural="methods", base="methods.base:Method", shapes=KINDS, builtins={
    "none": "methods.none", "ad2": "methods.ad2", "eda": "methods.eda", "backtranslation": "methods.back_translation",
    "back-translation": "methods.back_translation", "mlm": "methods.mlm"})
MethodSpec = Part  # the name plugins written before the generic registry use


def register_method(name: str, *, kind: str, description: str, params: type = NoParams, label: str | None = None,
                    aliases: tuple[str, ...] = ()) -> Callable[[Any], Any]:
    """Class decorator adding a method of `kind` (none, in-loop or pool) to the registry."""
    return METHODS.register(name, shape=kind, description=description, params=params, label=label, aliases=aliases)


def get_method(name: str) -> Part:
    return METHODS.get(name)


def list_methods(pattern: str = "*") -> list[Part]:
    """Registered methods matching `pattern`, `none` (the plain-KD baseline) first."""
    return METHODS.list(pattern)
