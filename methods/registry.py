"""The registry of augmentation methods (see bench/parts/registry.py): `@register_method("name", kind=...)` on
a subclass of `methods.base.Method`, `get_method(name)`, `list_methods(pattern)`.

A method's kind says where it acts: `none` (no augmentation), `in-loop` (inside the training step,
e.g. AD2) or `pool` (text generated before training). Built-in methods are imported on first use,
`none` (the plain-KD baseline) first in listings.
"""

from __future__ import annotations

from bench.parts.registry import NoParams, Param, Part, Registry, composed, load_plugins, param, parse_assignment

__all__ = ["METHODS", "NoParams", "Param", "Part", "get_method", "list_methods", "load_plugins", "param",
           "parse_assignment", "register_method", "takes_generator"]

KINDS = ("none", "in-loop", "pool")
METHODS = Registry("method", plural="methods", base="methods.base:Method", kinds=KINDS, builtins={
    "none": "methods.none", "ad2": "methods.ad2", "eda": "methods.eda", "backtranslation": "methods.back_translation",
    "back-translation": "methods.back_translation", "mlm": "methods.mlm",
    "mate-kd": "methods.mate_kd", "combined-kd": "methods.combined_kd"})
MethodSpec = Part  # the name plugins written before the generic registry use
register_method, get_method, list_methods = METHODS.register, METHODS.get, METHODS.list


def takes_generator(name: str) -> bool:
    """Whether method `name` (or a method of the composition `name`, "mlm+ad2") takes a masked-LM
    `generator` parameter (mlm, mate-kd, ...): offline no masked-LM weights exist, so the demo and the
    studies make one for it."""
    return any(p.name == "generator" for each in composed(name) for p in get_method(each).params)
