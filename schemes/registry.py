"""The registry of training schemes (see bench/parts/registry.py): `@register_scheme("name", ...)` on a
subclass of `schemes.base.Scheme`, `get_scheme(name)`, `list_schemes(pattern)`. Built-in schemes are
imported on first use."""

from __future__ import annotations

from bench.parts.registry import Registry

SCHEMES = Registry("scheme", plural="schemes", base="schemes.base:Scheme", builtins={
    "plain": "schemes.plain", "swa": "schemes.swa",
})
register_scheme, get_scheme, list_schemes = SCHEMES.register, SCHEMES.get, SCHEMES.list
