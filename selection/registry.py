"""The registry of row selectors (see bench/parts/registry.py): `@register_selector("name", ...)` on a
subclass of `selection.base.Selector`, `get_selector(name)`, `list_selectors(pattern)`. Built-in selectors
are imported on first use."""

from __future__ import annotations

from bench.parts.registry import Registry

SELECTORS = Registry("selector", plural="selectors", base="selection.base:Selector", builtins={
    "all": "selection.all", "glitter": "selection.glitter", "augment-policy": "selection.policy",
    "l2a": "selection.policy"})
register_selector, get_selector, list_selectors = SELECTORS.register, SELECTORS.get, SELECTORS.list
