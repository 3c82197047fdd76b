"""What a training scheme is: hooks around the Trainer's loop that change how weights are trained and
which weights are evaluated and kept, for teacher-free fine-tuning and distillation alike.

Built as `Implementation(params, context)`; the harness calls `begin(model)` before training (after
which a resumed run's state is loaded), `after_step(model)` after each optimiser step, evaluates
inside `evaluation_weights(model)`, and calls `finish(model)` once the best checkpoint is back in
`model`, with the scheme's state as it was at that checkpoint. `scheduler` may replace the
Trainer's linear warm-up and decay.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from bench.parts.base import TrainingPart
from bench.parts.context import TrainingContext


class Scheme(TrainingPart):
    def __init__(self, params: Any, context: TrainingContext):
        self.params, self.context = params, context

    def begin(self, model: torch.nn.Module) -> None:
        """Before the first step (and before a resumed run's state is loaded)."""

    def after_step(self, model: torch.nn.Module) -> None:
        """After each optimiser step."""

    @contextlib.contextmanager
    def evaluation_weights(self, model: torch.nn.Module) -> Iterator[None]:
        """The weights `model` is evaluated with inside the block (default: as trained)."""
        yield

    def finish(self, model: torch.nn.Module) -> None:
        """Put the weights to keep into `model`, once the best checkpoint is back in it."""

    def scheduler(self, optimizer: torch.optim.Optimizer, total_steps: int,
                  warmup_steps: int) -> torch.optim.lr_scheduler.LRScheduler | None:
        """The student's learning-rate schedule; None keeps the Trainer's (linear warm-up and decay)."""
        return None
