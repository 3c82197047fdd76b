"""The registry of augmentation methods: one decorator registers a method under its name.

Modelled on lm-evaluation-harness's and timm's registries: `@register_method("name", ...)` on a
class, `get_method(name)` to look one up (unknown names get the nearest valid ones), and
`list_methods()` for the listing command.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.errors import KdbenchError, UnknownNameError

KINDS = ("none", "in-loop", "pool")  # no augmentation; perturb inside the training step; generate text before


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its name, kind and one-line description."""

    name: str
    kind: str
    description: str
    implementation: type

    def describe(self) -> dict[str, str]:
        return {"name": self.name, "kind": self.kind, "description": self.description}


_METHODS: dict[str, MethodSpec] = {}


def register_method(name: str, *, kind: str, description: str) -> Callable[[type], type]:
    """Class decorator adding a method to the registry."""
    if kind not in KINDS:
        raise KdbenchError(f"method kind must be one of {', '.join(KINDS)}, got {kind!r}")

    def decorate(cls: type) -> type:
        if name in _METHODS:
            raise KdbenchError(f"method {name!r} is registered twice ({_METHODS[name].implementation} and {cls})")
        _METHODS[name] = MethodSpec(name, kind, description, cls)
        return cls

    return decorate


def get_method(name: str) -> MethodSpec:
    if name not in _METHODS:
        raise UnknownNameError("method", name, _METHODS)
    return _METHODS[name]


def list_methods() -> list[MethodSpec]:
    """Registered methods in registration order (`none`, the plain-KD baseline, first)."""
    return list(_METHODS.values())
