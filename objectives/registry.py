"""The registry of KD objectives (see bench/parts/registry.py): `@register_objective("name", ...)` on a
subclass of `objectives.base.Objective`, `get_objective(name)`, `list_objectives(pattern)`.
Built-in objectives are imported on first use."""

from __future__ import annotations

from bench.parts.registry import Registry

OBJECTIVES = Registry("objective", plural="objectives", base="objectives.base:Objective", builtins={
    "kd": "objectives.kd", "annealing": "objectives.annealing", "continuation": "objectives.continuation",
    "rw-kd": "objectives.rw_kd", "kd-gce": "objectives.noisy_labels", "kd-bootstrap": "objectives.noisy_labels",
    "pkd": "objectives.pkd", "tinybert": "objectives.tinybert", "universal-kd": "objectives.universal_kd",
    "pro-kd": "objectives.pro_kd",
})
register_objective, get_objective, list_objectives = OBJECTIVES.register, OBJECTIVES.get, OBJECTIVES.list
