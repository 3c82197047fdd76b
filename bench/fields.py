"""Dataclass fields as typed options: shared by the CLI's options, the methods' parameters and the
tables of ablation specs."""

from __future__ import annotations

import types
import typing
from typing import Any

from bench.errors import KdbenchError


def base_type(annotation) -> type:
    """The type a field's value is parsed as: `int | None` -> int, `bool` -> bool, ..."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def check_type(value: Any, kind: type, what: str, *, optional: bool = False) -> Any:
    """`value` (already typed, e.g. from TOML) if it is a `kind` (an int is a float; None only when
    `optional`); otherwise one error naming `what` and the type it takes."""
    if value is None and optional:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value
    raise KdbenchError(f"{what} takes {a_type(kind)}, got {value!r} ({type(value).__name__})")


def a_type(kind: type) -> str:
    """'an int', 'a float', ...: a type's name for an error message."""
    return f"{'an' if kind.__name__[0] in 'aeiou' else 'a'} {kind.__name__}"
