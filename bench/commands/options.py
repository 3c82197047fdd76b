"""Options shared by several commands. Settings options mirror the config dataclasses field by field
(`--learning-rate` or `--learning_rate` for TrainConfig.learning_rate, ...), so the help text and the
run record always agree."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Sequence
from typing import Any

from bench.parts.fields import base_type
from bench.roles import BY_NAME, ROLES

# where ablate, speed and demo write by default: what `kdbench report` reads unless given folders
RESULTS_DIRS = {"ablate": "kdbench-results/ablations", "speed": "kdbench-results/speed", "demo": "kdbench-results/demo"}


def option_flags(name: str) -> list[str]:
    """A setting's command-line flags: `--learning-rate`, and `--learning_rate` as written in the config."""
    return [f"--{name.replace('_', '-')}"] + ([f"--{name}"] if "_" in name else [])


def add_dataclass_options(parser: argparse.ArgumentParser, cls: type, group: str, *, skip: Sequence[str] = (),
                          defaults: dict | None = None) -> None:
    """One option per field of `cls`, stored as `group.field`."""
    hints = typing.get_type_hints(cls)
    section = parser.add_argument_group(cls.__name__)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind = base_type(hints[f.name])
        default = (defaults or {}).get(f.name, f.default)
        flags = option_flags(f.name)
        help_text = f"{f.metadata.get('help', '')} (default: {default})".replace("%", "%%")  # argparse formats help
        if kind is bool:
            section.add_argument(*flags, dest=f"{group}.{f.name}", action=argparse.BooleanOptionalAction,
                                 default=default, help=help_text)
        else:
            section.add_argument(*flags, dest=f"{group}.{f.name}", type=kind, default=default, help=help_text)


def group_values(args: argparse.Namespace, group: str) -> dict:
    """The options `add_dataclass_options` added as `group`, by field name."""
    return {k.split(".", 1)[1]: v for k, v in vars(args).items() if k.startswith(f"{group}.")}


def dataclass_from_args(args: argparse.Namespace, cls: type, group: str):
    return cls(**group_values(args, group))


def add_plugin_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import a module (or .py file) that registers more methods; repeatable")


def add_role_options(parser: argparse.ArgumentParser, roles: Sequence[str] = tuple(BY_NAME)) -> None:
    """For each role (bench/roles.py) the part a run composes and its parameters (`--method ad2 --param
    eps=1e-4`), then --plugin."""
    for role in map(BY_NAME.get, roles):
        parser.add_argument(*option_flags(role.name), dest=role.name, default=role.default,
                            help=f"{role.what} (see `kdbench list {role.plural}`)")
        example = f", e.g. {role.param_flag} {role.example}" if role.example else ""
        parser.add_argument(role.param_flag, dest=role.params, action="append", default=[], metavar="KEY=VALUE",
                            help=f"a parameter of the {role.name.replace('_', ' ')}{example}; repeatable")
    add_plugin_option(parser)


def add_layer_map_option(parser: argparse.ArgumentParser) -> None:
    """Which teacher layer each student layer learns from."""
    parser.add_argument("--layer-map", metavar="S:T,...",
                        help="for objectives that match layers (pkd, tinybert): student:teacher hidden-state pairs, "
                        "0 the embeddings, e.g. 1:2,2:4,3:6 (default: teacher-layers students their source layers, "
                        "others evenly spaced)")


def role_values(args: argparse.Namespace) -> dict[str, Any]:
    """Each role's part and parameters as `RunConfig` takes them; a role a command lacks is left out."""
    from bench.parts.registry import parse_assignment

    values = {}
    for role in ROLES:
        if hasattr(args, role.name):
            values[role.name] = getattr(args, role.name)
            values[role.params] = dict(map(parse_assignment, getattr(args, role.params, [])))
    return values


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options every command that trains one model has: output and cache folders, and the data and
    training settings."""
    from bench.pipeline.config import DataConfig, TrainConfig

    parser.add_argument("--output-dir", help="folder for the run record and model (default: kdbench-results/...)")
    parser.add_argument("--cache-dir", help="cache of teachers and teacher outputs "
                        "(default: $KDBENCH_CACHE or ~/.cache/kdbench)")
    add_dataclass_options(parser, DataConfig, "data")
    add_dataclass_options(parser, TrainConfig, "train")


def load_plugins(args: argparse.Namespace) -> None:
    """Import the modules of --plugin, so the parts they register can be named."""
    from bench.parts.registry import load_plugins as load

    load(getattr(args, "plugin", []))
