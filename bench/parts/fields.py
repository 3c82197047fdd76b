"""Dataclass fields as typed options: shared by the CLI's options, the methods' parameters and the
tables of ablation specs.

A field may declare the values it allows, in its metadata: `"range"` (a `Range`) for numbers,
`"choices"` for names. `check_ranges`, called from a config's `__post_init__`, checks them when the
config is built, so a bad value from the command line, a spec or Python stops with one line before
any data or model is loaded.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from bench.parts.errors import KdbenchError, UnknownNameError


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


@dataclass(frozen=True)
class Range:
    """The numbers a setting allows: an interval whose ends are inclusive, open or absent, plus the
    special values in `also` (such as -1 for "no limit"). `str()` is the constraint as an error
    message or a listing shows it: "> 0", ">= 1", "in [0, 1]", "-1 or >= 1"."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    also: tuple[float, ...] = ()

    def __contains__(self, value: Any) -> bool:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        if value in self.also:
            return True
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below  # nan is neither, so it is refused

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            interval = f"in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"
        elif self.low is not None:
            interval = f"{'>' if self.low_open else '>='} {self.low}"
        elif self.high is not None:
            interval = f"{'<' if self.high_open else '<='} {self.high}"
        else:
            interval = "a number"
        return " or ".join([*map(str, self.also), interval])

    def check(self, value: Any, what: str) -> Any:
        """`value` if allowed; otherwise one error naming `what`, e.g. "learning_rate must be > 0, got -1.0"."""
        if value in self:
            return value
        raise KdbenchError(f"{what} must be {self}, got {value!r}")


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
AT_LEAST_ONE = Range(1)
PROBABILITY = Range(0, 1)
POSITIVE_FRACTION = Range(0, 1, low_open=True)  # a share that must not be nothing (mask rate, EDA's alpha)
MAX_STEPS = Range(1, also=(-1,))  # -1: no step limit, as in transformers.TrainingArguments
SEED = Range(0, 2**32 - 1)  # what numpy accepts as a seed (transformers.set_seed seeds numpy too)


def check_choice(value: Any, choices: Collection[Any], name: str) -> Any:
    """`value` if it is one of `choices`; otherwise one error with the nearest valid ones."""
    if value not in choices:
        raise UnknownNameError(f"value of {name}", str(value), [str(c) for c in choices])
    return value


def check_ranges(instance: Any) -> None:
    """Check each field of the dataclass `instance` that declares a `"range"` or `"choices"` in its
    metadata; call it from `__post_init__`. None passes where the field's type allows it (an
    optional setting left unset); a tuple must be non-empty and each of its items allowed."""
    hints = typing.get_type_hints(type(instance))
    for f in dataclasses.fields(instance):
        allowed, choices = f.metadata.get("range"), f.metadata.get("choices")
        value = getattr(instance, f.name)
        if (allowed is None and choices is None) or (value is None and type(None) in typing.get_args(hints[f.name])):
            continue
        if isinstance(value, tuple):
            if not value:
                raise KdbenchError(f"{f.name} is empty: give at least one value")
            items = {f"{f.name}[{i}]": item for i, item in enumerate(value)}
        else:
            items = {f.name: value}
        for what, item in items.items():
            if choices is not None:
                check_choice(item, choices, what)
            if allowed is not None:
                allowed.check(item, what)
