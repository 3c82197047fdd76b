"""What a row selector is: the stage between the training data and training, which chooses the rows the
student learns from.

Built as `Implementation(params, context)`. The harness calls `select(rows)` once, after every source's
rows (the training set, then each pool) are labelled by the teacher and before training: `rows` holds the
model inputs, labels, the teacher's logits (when cached) and each row's origin (bench/parts/origins.py:
its original, source, side and copy), and the selector returns the rows to keep. A selector that chooses
anew at each step (Glitter's: the candidates the student gets most wrong) also overrides `choose`, which
the harness calls on every training batch before the student's forward.
"""

from __future__ import annotations

from typing import Any

import datasets
import torch

from bench.parts.base import TrainingPart
from bench.parts.context import Batch, TrainingContext


class Selector(TrainingPart):
    needs_pool: bool = False  # chooses among a pool's rows: a run without a pool method is refused
    chooses_each_step: bool = False  # overrides `choose`, whose batches an in-loop method would not see

    def __init__(self, params: Any, context: TrainingContext):
        self.params, self.context = params, context

    def select(self, rows: datasets.Dataset) -> list[int] | None:
        """The indices of the rows of `rows` to train on, in the order to keep them; None keeps them all."""
        return None

    def choose(self, model: torch.nn.Module, batch: Batch) -> Batch:
        """The batch the student learns from at this step, given the one the data loader gave (default: that
        one). `batch.weights` may weigh its rows' losses."""
        return batch
