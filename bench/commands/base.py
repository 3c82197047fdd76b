"""What a subcommand is: a name, its help, its options, what it does, what an interrupt leaves."""

from __future__ import annotations

import argparse


class Command:
    """One subcommand of `kdbench`. `light` commands train, generate and search nothing, so they load
    no training library (tests/test_architecture.py checks it)."""

    name: str
    help: str
    description: str | None = None  # the longer text of `kdbench NAME --help` (default: `help`)
    light: bool = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The command's options."""

    def run(self, args: argparse.Namespace) -> None:
        """Do the command's work and print its result; errors the user can fix raise `KdbenchError`."""
        raise NotImplementedError

    def kept_after_interrupt(self, args: argparse.Namespace) -> str:
        """What an interrupted command kept, and how to go on from there."""
        return "nothing half-written was left (files are written whole or not at all); run the command again"
