"""What a KD objective is: the training loss of a batch, one value per example.

An objective is built as `Implementation(params, context)` once per run and sees the run through
`context` (bench/parts/context.py): the task, the KD settings (`context.kd`), and while training the step,
epoch and fraction of training done, which is what its schedules follow. Two losses:

- `loss(student_logits, batch)`: the whole loss of a training batch (teacher term and label term);
- `view_loss(student_logits, teacher_logits, batch)`: the teacher term alone, for another view of
  the batch (AD2's perturbed embeddings, a generator's text), whose hard labels are counted once.
  So any augmentation is scored by the run's objective, whichever it is.

`kd_settings` names the `[kd]` settings (temperature, alpha_kd, alpha_ce) the objective reads;
setting another one with it is refused before the run starts, rather than silently ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from bench.parts.base import TrainingPart
from bench.parts.context import Batch, TrainingContext
from bench.parts.kd_config import KDConfig

if TYPE_CHECKING:
    import datasets

KD_SETTINGS = ("temperature", "alpha_kd", "alpha_ce")


class Objective(TrainingPart):
    kd_settings: tuple[str, ...] = KD_SETTINGS
    # reads data of each training row by `Batch.example_ids` (Pro-KD's checkpoint logits): a selector that puts
    # other rows in a batch's places (Glitter's) cannot run beside it
    by_example_id: bool = False

    def __init__(self, params: Any, context: TrainingContext):
        self.params, self.context = params, context

    @classmethod
    def check(cls, params: Any, kd: KDConfig, *, regression: bool) -> None:
        """Refuse settings that cannot work (one KdbenchError), called before any data or model is loaded."""

    @property
    def regression(self) -> bool:
        return self.context.task.is_regression

    def held_out(self, train_ds: datasets.Dataset) -> datasets.Dataset:
        """The training set the student trains on. An objective that needs data of its own (RW-KD's meta
        split, carved from the training set, never the dev set) keeps its part here and returns the
        rest. Default: all of it."""
        return train_ds

    def loss(self, student_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Per-example training loss of `batch` (its teacher logits and labels) for these student logits."""
        raise NotImplementedError

    def view_loss(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Per-example teacher term for another view of `batch` (zero where the objective, at this
        point of training, has no teacher term)."""
        raise NotImplementedError

    def has_teacher_term(self) -> bool:
        """Whether the loss has a teacher term at this point of training (Annealing-KD's phase 2 has none)."""
        return True

    @classmethod
    def restart_at(cls, params: Any) -> float | None:
        """The fraction of training where a new phase starts afresh, as the source's code starts its second
        training loop: the harness puts the best weights so far back, drops every optimiser's state and
        restarts the linear schedule from the peak rate, without warm-up, down to 0 at the end (the first
        phase's schedule then ends at 0 where the second begins). None: one phase."""
        return None
