"""The registry of augmentation methods: one decorator registers a method, its kind and its parameters.

Modelled on lm-evaluation-harness's and timm's registries: `@register_method("name", ...)` on a
class, `get_method(name)` to look one up (unknown names get the nearest valid ones), and
`list_methods()` for the listing command. A method's parameters are a dataclass whose fields use
`param(default, help, range=...)`, so they are typed, defaulted, documented and range-checked in
one place, and `MethodSpec.parse_params(["eps=1e-4"])` turns command-line strings into that
dataclass, checking each value (a spec's dict of values too).

Methods outside this repository register themselves the same way; `load_plugins` imports them,
from `--plugin module` or from packages that declare a `kdbench.methods` entry point.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import sys
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from bench.errors import KdbenchError, UnknownNameError
from bench.fields import Range, a_type, base_type, check_choice, check_type

KINDS = ("none", "in-loop", "pool")  # no augmentation; perturb inside the training step; generate text before
ENTRY_POINT_GROUP = "kdbench.methods"


def param(default: Any, help: str, *, choices: Iterable[Any] | None = None, range: Range | None = None) -> Any:
    """A method parameter: a dataclass field with its one-line description and, if it has them, its
    allowed names (`choices`) or numbers (`range`, e.g. `fields.NON_NEGATIVE`), checked by `parse_params`
    and listed by `kdbench methods`."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": tuple(choices) if choices else None,
                                                        "range": range})


@dataclass(frozen=True)
class Param:
    """One parameter of a method, as listed by `kdbench methods`."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple | None = None
    range: Range | None = None
    method: str = ""  # the method's name, for error messages

    @property
    def type_name(self) -> str:
        return self.type.__name__

    def convert(self, text: str) -> Any:
        """The value of `text` as this parameter's type; `none` means None where None is allowed."""
        if text.lower() in ("none", "null") and self.default is None:
            return None
        try:
            if self.type is bool:
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                value = text.lower() in ("true", "1", "yes")
            else:
                value = self.type(text)
        except ValueError:
            raise KdbenchError(f"parameter {self.name} takes {a_type(self.type)}, got {text!r}") from None
        return self._allowed(value)

    def accept(self, value: Any) -> Any:
        """A typed value (from a TOML spec or Python) checked against this parameter's type, choices and range."""
        return self._allowed(check_type(value, self.type, f"parameter {self.name}", optional=self.default is None))

    def _allowed(self, value: Any) -> Any:
        if value is None:  # an optional parameter left unset (the types allow None only then)
            return None
        if self.choices:
            check_choice(value, self.choices, self.name)
        if self.range is not None:
            self.range.check(value, f"parameter {self.name} of method {self.method}")
        return value


@dataclass(frozen=True)
class NoParams:
    """The parameters of a method that has none."""


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: name, kind, one-line description, implementation, parameter class, and
    the label tables and figures show (e.g. "AD2" for `ad2`)."""

    name: str
    kind: str
    description: str
    implementation: type
    params_class: type = NoParams
    label: str = ""

    @property
    def params(self) -> list[Param]:
        hints = typing.get_type_hints(self.params_class)
        return [Param(f.name, base_type(hints[f.name]), f.default, f.metadata.get("help", ""),
                      f.metadata.get("choices"), f.metadata.get("range"), self.name)
                for f in dataclasses.fields(self.params_class)]

    def parse_params(self, assignments: Iterable[str] | dict[str, Any] = ()) -> Any:
        """The parameter dataclass from `key=value` strings (or a dict); the rest keep their defaults."""
        by_name = {p.name: p for p in self.params}
        pairs = assignments.items() if isinstance(assignments, dict) else map(parse_assignment, assignments)
        values = {}
        for key, value in pairs:
            if key not in by_name:
                raise UnknownNameError(f"parameter of method {self.name}", key, by_name)
            values[key] = by_name[key].convert(value) if isinstance(value, str) else by_name[key].accept(value)
        return self.params_class(**values)

    def describe(self, params: Any = None) -> dict[str, Any]:
        """Name, kind, description and parameter values (the defaults unless `params` is given)."""
        values = dataclasses.asdict(params) if params is not None else {p.name: p.default for p in self.params}
        return {"name": self.name, "kind": self.kind, "description": self.description, "params": values}


def parse_assignment(text: str) -> tuple[str, str]:
    """`"eps=1e-4"` -> `("eps", "1e-4")`."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise KdbenchError(f"--param takes key=value, got {text!r}")
    return key.strip(), value.strip()


_METHODS: dict[str, MethodSpec] = {}


def register_method(name: str, *, kind: str, description: str, params: type = NoParams,
                    label: str | None = None) -> Callable[[type], type]:
    """Class decorator adding a method to the registry; `params` is its parameter dataclass, `label`
    its name in tables and figures (default: `name`)."""
    if kind not in KINDS:
        raise KdbenchError(f"method kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not dataclasses.is_dataclass(params):
        raise KdbenchError(f"the parameters of method {name!r} must be a dataclass, got {params!r}")

    def decorate(cls: type) -> type:
        if name in _METHODS and _METHODS[name].implementation is not cls:
            raise KdbenchError(f"method {name!r} is registered twice ({_METHODS[name].implementation} and {cls})")
        _METHODS[name] = MethodSpec(name, kind, description, cls, params, label or name)
        return cls

    return decorate


def load_plugins(modules: Iterable[str] = ()) -> None:
    """Import `modules` (from `--plugin`) and every installed `kdbench.methods` entry point, so the
    methods they define register themselves."""
    if os.getcwd() not in sys.path:  # a console script does not put the current folder on the path
        sys.path.append(os.getcwd())
    for module in modules:
        try:
            if module.endswith(".py"):
                _import_file(Path(module))
            else:
                importlib.import_module(module)
        except (ImportError, FileNotFoundError) as error:
            raise KdbenchError(f"cannot import plugin {module!r} ({error}): give a module importable from the "
                               "current folder or the Python path, or a .py file") from None
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        entry.load()


def _import_file(path: Path) -> None:
    """Import a .py file as a module (once: importing it again is a no-op, as for a module name)."""
    name = f"kdbench_plugin_{path.stem.replace('-', '_')}"
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    sys.modules[name] = module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


def get_method(name: str) -> MethodSpec:
    if name not in _METHODS:
        raise UnknownNameError("method", name, _METHODS)
    return _METHODS[name]


def list_methods() -> list[MethodSpec]:
    """Registered methods in registration order (`none`, the plain-KD baseline, first)."""
    return list(_METHODS.values())
