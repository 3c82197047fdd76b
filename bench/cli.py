"""The `kdbench` command: one subcommand object each (bench/commands/), listed here in the order
`kdbench --help` shows them. Errors the user can fix print one line and exit with code 2; an
interrupt says what was kept and how to go on, and exits with 130."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from bench.commands.base import Command
from bench.commands.listing import List, Methods, Tasks
from bench.commands.searching import Results, Search, Worker
from bench.commands.studies import Ablate, Demo, Report, Speed
from bench.commands.training import Attack, Distill, Finetune, FinetuneTeacher, GeneralKD, MakeGenerator, Rerun
from bench.parts.errors import KdbenchError

PROG = "kdbench"
COMMANDS: dict[str, Command] = {command.name: command for command in (
    Tasks(), Methods(), List(), FinetuneTeacher(), Finetune(), Distill(), Rerun(), Search(), Worker(), Results(),
    Attack(), MakeGenerator(), GeneralKD(), Ablate(), Speed(), Report(), Demo())}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Data augmentation for task-specific knowledge "
                                     "distillation of pre-trained transformers: one harness, every method.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS.values():
        command.add_arguments(subparsers.add_parser(command.name, help=command.help,
                                                    description=command.description or command.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = COMMANDS[args.command]
    if not command.light:
        from bench.pipeline.progress import quiet_libraries

        quiet_libraries()
    try:
        command.run(args)
    except KdbenchError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader stopped reading (`kdbench list methods | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail
        return 0
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted: {command.kept_after_interrupt(args)}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
