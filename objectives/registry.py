"""The registry of KD objectives (see bench/registry.py): `@register_objective("name", ...)` on a
subclass of `objectives.base.Objective`, `get_objective(name)`, `list_objectives(pattern)`.
Built-in objectives are imported on first use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.registry import NoParams, Part, Registry

OBJECTIVES = Registry("objective", plural="objectives", base="objectives.base:Objective", builtins={
    "kd": "objectives.kd", "annealing": "objectives.annealing", "continuation": "objectives.continuation",
    "rw-kd": "objectives.rw_kd", "kd-gce": "objectives.noisy_labels", "kd-bootstrap": "objectives.noisy_labels",
})


def register_objective(name: str, *, description: str, params: type = NoParams, label: str | None = None,
                       aliases: tuple[str, ...] = ()) -> Callable[[Any], Any]:
    """Class decorator adding a KD objective to the registry."""
    return OBJECTIVES.register(name, description=description, params=params, label=label, aliases=aliases)


def get_objective(name: str) -> Part:
    return OBJECTIVES.get(name)


def list_objectives(pattern: str = "*") -> list[Part]:
    return OBJECTIVES.list(pattern)
