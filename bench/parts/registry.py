"""One registry for every kind of part: augmentation methods, KD objectives, training schemes, row selectors, students.

Modelled on lm-evaluation-harness's `Registry` and timm's `@register_model`: each kind of part has
one `Registry`, whose `register` decorator adds a class under a name, with its aliases, a one-line
description, the label tables show, and its parameters: a dataclass whose fields use
`param(default, help, range=...)`, so they are typed, defaulted, documented and range-checked in one
place. `Part.parse_params(["eps=1e-4"])` turns command-line strings (or a spec's dict) into that
dataclass, checking each value, so a bad value stops a run before any model is loaded.

The built-in parts of a kind are imported lazily: a registry knows which module defines each
built-in name, so looking up `ad2` imports `methods.ad2` and nothing else, and a command that lists
nothing imports no part at all. Parts outside this repository register themselves the same way; they
are found through `--plugin module` or a package's entry point in the kind's group
(`kdbench.methods`, `kdbench.objectives`, `kdbench.schemes`, `kdbench.selectors`, `kdbench.students`).

Hand-written rather than taken from a library: lm-eval's and timm's registries are not importable
without their whole packages.
"""

from __future__ import annotations

import dataclasses
import fnmatch
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

from bench.parts.errors import KdbenchError, UnknownNameError
from bench.parts.fields import Range, a_type, base_type, check_choice, check_type


COMPOSE = "+"  # joins the methods a run composes: "eda+ad2" (bench/pipeline/choice.py)


def composed(name: str) -> list[str]:
    """The names of the methods `name` composes: itself alone, or those joined by `COMPOSE`."""
    return name.split(COMPOSE)


def param(default: Any, help: str, *, choices: Iterable[Any] | None = None, range: Range | None = None) -> Any:
    """A part's parameter: a dataclass field with its one-line description and, if it has them, its
    allowed names (`choices`) or numbers (`range`, e.g. `fields.NON_NEGATIVE`), checked by `parse_params`
    and shown by `kdbench list`."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": tuple(choices) if choices else None,
                                                        "range": range})


@dataclass(frozen=True)
class Param:
    """One parameter of a part, as listed by `kdbench list`."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple | None = None
    range: Range | None = None
    owner: str = ""  # "method ad2", "objective annealing": for error messages

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
            raise KdbenchError(f"parameter {self.name} of {self.owner} takes {a_type(self.type)}, "
                               f"got {text!r}") from None
        return self._allowed(value)

    def accept(self, value: Any) -> Any:
        """A typed value (from a TOML spec or Python) checked against this parameter's type, choices and range."""
        checked = check_type(value, self.type, f"parameter {self.name} of {self.owner}", optional=self.default is None)
        return self._allowed(checked)

    def _allowed(self, value: Any) -> Any:
        if value is None:  # an optional parameter left unset (the types allow None only then)
            return None
        if self.choices:
            check_choice(value, self.choices, self.name)
        if self.range is not None:
            self.range.check(value, f"parameter {self.name} of {self.owner}")
        return value


@dataclass(frozen=True)
class NoParams:
    """The parameters of a part that has none."""


@dataclass(frozen=True)
class Part:
    """A registered part: its name, family ("method", "objective", ...), kind (a method's `none`,
    `in-loop` or `pool`; the family for the others), one-line description, implementation, parameter
    class, aliases, and the label tables and figures show (e.g. "AD2" for `ad2`)."""

    name: str
    family: str
    kind: str
    description: str
    implementation: Any
    params_class: type = NoParams
    label: str = ""
    aliases: tuple[str, ...] = ()
    # a method that is one composition under a name: the objective it runs with instead of the default,
    # and that objective's parameters where the method's source sets them otherwise (Combined-KD)
    objective: tuple[str, dict[str, Any]] | None = None
    demo_params: dict[str, Any] = dataclasses.field(default_factory=dict)  # what the demo runs it with
    # the parameter that the short form `name:text` sets to the whole text when it holds no `=`
    # (a student's `teacher-layers:0,2,4` sets `layers`; students/registry.py)
    shorthand: str | None = None

    @property
    def params(self) -> list[Param]:
        hints = typing.get_type_hints(self.params_class)
        return [Param(f.name, base_type(hints[f.name]), f.default, f.metadata.get("help", ""),
                      f.metadata.get("choices"), f.metadata.get("range"), f"{self.family} {self.name}")
                for f in dataclasses.fields(self.params_class)]

    def parse_params(self, assignments: Iterable[str] | dict[str, Any] = ()) -> Any:
        """The parameter dataclass from `key=value` strings (or a dict); the rest keep their defaults."""
        by_name = {p.name: p for p in self.params}
        pairs = assignments.items() if isinstance(assignments, dict) else map(parse_assignment, assignments)
        values = {}
        for key, value in pairs:
            if key not in by_name:
                raise UnknownNameError(f"parameter of {self.family} {self.name}", key, by_name)
            values[key] = by_name[key].convert(value) if isinstance(value, str) else by_name[key].accept(value)
        return self.params_class(**values)

    def listing(self) -> dict[str, Any]:
        """What `kdbench list` shows of the part, as plain data (bench/catalogue.json keeps the built-ins')."""
        objective = {"name": self.objective[0], "params": self.objective[1]} if self.objective else None
        return {"name": self.name, "family": self.family, "kind": self.kind, "aliases": list(self.aliases),
                "description": self.description, "objective": objective, "demo_params": self.demo_params,
                "shorthand": self.shorthand,
                "params": [{"name": p.name, "type": p.type_name, "default": p.default, "help": p.help,
                            "choices": list(p.choices) if p.choices else None,
                            "range": str(p.range) if p.range is not None else None} for p in self.params]}

    def describe(self, params: Any = None) -> dict[str, Any]:
        """Name, label, kind, description and parameter values (the defaults unless `params` is given):
        what a run record keeps, so reports need not import the part."""
        values = dataclasses.asdict(params) if params is not None else {p.name: p.default for p in self.params}
        return {"name": self.name, "label": self.label, "kind": self.kind,
                "description": self.description, "params": values}


def parse_assignment(text: str) -> tuple[str, str]:
    """`"eps=1e-4"` -> `("eps", "1e-4")`."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise KdbenchError(f"a parameter is given as key=value, got {text!r}")
    return key.strip(), value.strip()


class Registry:
    """The registered parts of one family ("method", "objective", ...). `builtins` maps each built-in
    name (and alias) to the module that registers it, imported on first use; `base` is the class, by
    dotted path so the registry itself imports nothing heavy, every implementation must derive from;
    `kinds` are the kinds a part of the family may declare (a method's none, in-loop or pool)."""

    def __init__(self, family: str, *, plural: str, base: str, builtins: dict[str, str],
                 kinds: tuple[str, ...] = ("",)):
        self.family, self.plural, self.base, self.builtins, self.kinds = family, plural, base, builtins, kinds
        self.entry_point_group = f"kdbench.{plural}"
        self._parts: dict[str, Part] = {}
        self._aliases: dict[str, str] = {}
        self._plugins_loaded = False

    def register(self, name: str, *, description: str, params: type = NoParams, label: str | None = None,
                 aliases: Iterable[str] = (), kind: str = "", objective: tuple[str, dict[str, Any]] | None = None,
                 demo_params: dict[str, Any] | None = None, shorthand: str | None = None) -> Callable[[Any], Any]:
        """Class decorator adding a part; `params` is its parameter dataclass, `label` its name in tables
        and figures (default: `name`), `aliases` other names that find it, `kind` one of the family's.
        A method may declare the `objective` it runs with (name and parameters; default: kd) and the
        `demo_params` the demo runs it with (e.g. one augmented copy per sentence); a part named in the
        short form `name:text` (a student), the parameter `shorthand` that a bare text sets."""
        if kind not in self.kinds:
            raise KdbenchError(f"a {self.family}'s kind must be one of {', '.join(self.kinds)}, got {kind!r}")
        if not dataclasses.is_dataclass(params):
            raise KdbenchError(f"the parameters of {self.family} {name!r} must be a dataclass, got {params!r}")

        def decorate(cls: Any) -> Any:
            base = resolve(self.base)
            if not (isinstance(cls, type) and issubclass(cls, base)):
                raise KdbenchError(f"{self.family} {name!r}: {getattr(cls, '__name__', cls)} must be a subclass of "
                                   f"{base.__module__}.{base.__name__}")
            if shorthand is not None and shorthand not in {f.name for f in dataclasses.fields(params)}:
                raise KdbenchError(f"{self.family} {name!r}: shorthand {shorthand!r} is not one of its parameters")
            known = self._parts.get(name)
            if known is not None and known.implementation is not cls:
                raise KdbenchError(f"{self.family} {name!r} is registered twice ({known.implementation} and {cls})")
            self._parts[name] = Part(name, self.family, kind or self.family, description, cls, params,
                                     label or name, tuple(aliases), objective, dict(demo_params or {}), shorthand)
            self._aliases.update(dict.fromkeys(aliases, name))
            return cls

        return decorate

    def get(self, name: str) -> Part:
        """The part called `name` (or one of its aliases); an unknown name gets the nearest valid ones."""
        if name not in self._parts and name not in self._aliases:
            if name in self.builtins:
                importlib.import_module(self.builtins[name])
            else:
                self._load_entry_points()
        name = self._aliases.get(name, name)
        if name not in self._parts:
            self._import_builtins()
            raise UnknownNameError(self.family, name, [*self._parts, *self._aliases])
        return self._parts[name]

    def list(self, pattern: str = "*") -> list[Part]:
        """Parts whose name or an alias matches the shell-style `pattern` ('ann*'), built-ins first in
        their declared order, then plugins."""
        self._import_builtins()
        self._load_entry_points()
        declared = list(self.builtins)
        rank = lambda part: declared.index(part.name) if part.name in declared else len(declared)  # noqa: E731
        ordered = sorted(self._parts.values(), key=rank)
        return [part for part in ordered if matches((part.name, *part.aliases), pattern)]

    def plugins(self) -> list[Part]:
        """The parts registered from outside the built-ins (entry points, `--plugin`), built-ins not imported."""
        self._load_entry_points()
        return [part for part in self._parts.values() if part.name not in self.builtins]

    def _import_builtins(self) -> None:
        for module in dict.fromkeys(self.builtins.values()):
            importlib.import_module(module)

    def _load_entry_points(self) -> None:
        if not self._plugins_loaded:
            self._plugins_loaded = True
            for entry in entry_points(group=self.entry_point_group):
                entry.load()


def matches(names: Iterable[str], pattern: str) -> bool:
    """Whether any of a part's `names` (its name and aliases) matches the shell-style `pattern`."""
    return any(fnmatch.fnmatchcase(name, pattern) for name in names)


def resolve(path: str) -> Any:
    """The object a `"module:name"` path names (importing the module)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def load_plugins(modules: Iterable[str] = ()) -> None:
    """Import `modules` (from `--plugin`: module names or .py files), so the parts they define, of any
    kind, register themselves."""
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
