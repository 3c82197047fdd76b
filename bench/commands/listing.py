"""Commands that list what exists: `tasks`, `methods` and `list KIND [PATTERN]`. Light: they read
`bench/catalogue.json` for the built-in parts and import only plugins."""

from __future__ import annotations

import argparse

from bench.roles import LISTED
from bench.commands.base import Command
from bench.commands.options import add_plugin_option, load_plugins
from bench.parts.errors import KdbenchError


class Tasks(Command):
    name = "tasks"
    help = "list the GLUE tasks and their metrics"
    light = True

    def run(self, args: argparse.Namespace) -> None:
        from bench.parts.tasks import TASKS

        for task in TASKS.values():
            kind = "regression" if task.is_regression else f"{task.num_labels} classes"
            print(f"{task.name:6} {'pair' if task.is_pair else 'single':6} {kind:11} {', '.join(task.metrics)}")


class List(Command):
    name = "list"
    help = "list the registered parts of a kind, with their parameters"
    description = ("List methods, objectives, schemes or students: name, description and parameters (type, default, "
                   "allowed values).")
    light = True

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("kind", choices=tuple(LISTED), help="which kind of part")
        parser.add_argument("pattern", nargs="?", default="*",
                            help="shell-style name pattern, e.g. 'ann*' (default: all)")
        add_plugin_option(parser)

    def run(self, args: argparse.Namespace) -> None:
        from bench.catalogue import listing
        from bench.parts.registry import resolve

        load_plugins(args)
        registry = resolve(LISTED[getattr(args, "kind", "methods")])
        pattern = getattr(args, "pattern", "*")
        parts = listing(registry, pattern)
        if not parts:
            raise KdbenchError(f"no {registry.family} matches {pattern!r}: "
                               f"the {registry.plural} are {', '.join(p['name'] for p in listing(registry))}")
        print(part_listing(parts))


class Methods(List):
    name = "methods"
    help = "list the augmentation methods and their parameters (as `kdbench list methods`)"
    description = None

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_plugin_option(parser)


def part_listing(parts: list[dict]) -> str:
    """Each part (a `Part.listing()`) with its kind (for methods), aliases and description, what it
    declares (a method's objective and demo parameters), then its parameters: name, type, default,
    help, and the values allowed (choices or range)."""
    blocks = []
    for part in parts:
        kind = f" ({part['kind']})" if part["kind"] != part["family"] else ""
        aliases = f" [also: {', '.join(part['aliases'])}]" if part["aliases"] else ""
        lines = [f"{part['name']}{kind}{aliases}: {part['description']}"]
        if part["objective"]:
            lines.append(f"    runs with objective {part['objective']['name']} ({_assignments(part['objective']['params'])})")
        if part["demo_params"]:
            lines.append(f"    the demo runs it with {_assignments(part['demo_params'])}")
        width = max([16, *(len(p["name"]) + 1 for p in part["params"])])
        for p in part["params"]:
            choices = f" [{'|'.join(map(str, p['choices']))}]" if p["choices"] else ""
            allowed = f"; must be {p['range']}" if p["range"] is not None else ""
            lines.append(f"    {p['name']:{width}} {p['type']:6} default {p['default']!s:10} {p['help']}{choices}{allowed}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _assignments(values: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in values.items())
