"""Errors a user can act on: each carries one line saying what is wrong and what to do.

The CLI prints the message of any `KdbenchError` on one line and exits with code 2; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class KdbenchError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class UnknownNameError(KdbenchError):
    """An unknown task, model, method or parameter name, with the nearest valid names."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        valid = sorted(valid)
        near = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(near)}? " if near else ""
        super().__init__(f"unknown {kind} {name!r}: {hint}valid: {', '.join(valid)}")
        self.name, self.valid, self.near = name, valid, near


class DataFormatError(KdbenchError):
    """A data file that does not have the expected layout, located by file and line."""

    def __init__(self, path: str, line: int, problem: str):
        super().__init__(f"{path}:{line}: {problem}")
        self.path, self.line = path, line
