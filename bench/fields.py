"""Dataclass fields as typed options: shared by the CLI's options and the methods' parameters."""

from __future__ import annotations

import types
import typing


def base_type(annotation) -> type:
    """The type a field's value is parsed as: `int | None` -> int, `bool` -> bool, ..."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation
