"""What the harness hands the parts of a run (augmentation methods, KD objectives, training schemes).

`TrainingContext` is built once per run, before training: the task, the training-set size, the
teacher (name and frozen model), the tokenizer, the cache folder, the device, the KD settings and the
names of the sources of training rows (the training set, then each pool).
While training, the harness binds it to the Trainer's state, so a part can read where training is
(`step`, `epoch`, `progress`, `total_steps`) and ask for what it needs:

- `teacher_forward(inputs, reads)`: the teacher's outputs of a batch, with the hidden states or
  attentions asked for (computed on request, without gradient);
- `layer_map`: which teacher layer each student layer learns from (hidden-state indices, the
  embeddings 0: a `teacher-layers:` student's own layers, else evenly spaced);
- `add_parameters(params, lr)`: trainable parameters of the part's own, stepped by their own AdamW
  after each training step (their state is saved with the Trainer's checkpoints);
- `on_step(callback)`: a function called after each optimiser step;
- `unwrap(model)`: the student without its data-parallel wrapper; `full_precision()`: a block
  without autocast (mixed precision stays the harness's business, not each part's).

`Batch` is one training batch as parts see it: model inputs, hard labels, the teacher's logits
(cached, or from an online forward), the examples' ids (their rows in the training set, pool
examples after the originals), their origins (bench/parts/origins.py), the student's and the teacher's outputs as objects (bench/parts/outputs.py:
logits, and the hidden states and attentions a part reads), the rows' weights where a selector set them
and, once the objective has scored it, the per-example losses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from accelerate.utils import extract_model_from_parallel

from bench.parts.kd_config import KDConfig
from bench.parts.origins import ORIGINAL, Origins
from bench.parts.outputs import Outputs, forward
from bench.parts.tasks import TaskSpec

EXAMPLE_ID = "example_id"  # the column of training examples' ids, and the batch key the collator passes on


@dataclass
class Batch:
    """One training batch: `inputs` go to the model as they are; the rest is what the loss needs."""

    inputs: dict[str, torch.Tensor]
    labels: torch.Tensor | None
    teacher_logits: torch.Tensor | None = None
    example_ids: torch.Tensor | None = None
    origins: Origins | None = None  # each row's original, source, side and copy
    weights: torch.Tensor | None = None  # each row's weight in the batch's loss (a weighted sum); None: the mean
    losses: torch.Tensor | None = None  # per-example training losses, set once the objective has scored the batch
    student: Outputs | None = None  # the student's outputs on `inputs`, set by the harness before the objective
    teacher: Outputs | None = None  # the teacher's: its logits, and the extras a part reads


@dataclass
class TrainingContext:
    """The run a part serves (see the module's docstring). `teacher_model` is the frozen fine-tuned
    teacher in eval mode (None when a run has no teacher)."""

    task: TaskSpec
    train_size: int
    teacher: str
    teacher_model: torch.nn.Module | None = None
    tokenizer: Any = None
    cache_dir: str | None = None
    device: torch.device = torch.device("cpu")
    kd: KDConfig = field(default_factory=KDConfig)
    layer_map: dict[int, int] = field(default_factory=dict)  # student hidden-state index -> teacher's
    online_teacher: bool = False  # the teacher's logits come from a forward of each batch, not the cache
    sources: tuple[str, ...] = (ORIGINAL,)  # by `Origins.sources`: the training set, then each pool's method
    # by source, then `Origins.operations`: the names of a source's operations where it has several (EDA's edits)
    operations: tuple[tuple[str, ...], ...] = ((),)
    # bound by the harness before training: the logits of the model in a folder (a teacher's trajectory checkpoint)
    # on every training row, indexed by `Batch.example_ids`, from the cache on disk (computed once per model and data)
    teacher_logits_of: Callable[[str], torch.Tensor] | None = field(default=None, repr=False)
    # bound by the harness while training
    state: Any = field(default=None, repr=False)  # transformers.TrainerState
    model: torch.nn.Module | None = field(default=None, repr=False)  # the student being trained
    optimizers: list[torch.optim.Optimizer] = field(default_factory=list, repr=False)
    step_callbacks: list[Callable[[TrainingContext], None]] = field(default_factory=list, repr=False)

    @property
    def step(self) -> int:
        """Optimiser steps done so far (0 in the first step)."""
        return self.state.global_step if self.state is not None else 0

    @property
    def total_steps(self) -> int:
        return self.state.max_steps if self.state is not None and self.state.max_steps else 0

    @property
    def epoch(self) -> float:
        """Epochs done so far, fractional (0 in the first step)."""
        return float(self.state.epoch or 0.0) if self.state is not None else 0.0

    @property
    def progress(self) -> float:
        """The fraction of training done before this step, in [0, 1): schedules are laid on it, so
        a shortened run keeps their shape (the quick profile's 2 epochs and the paper's 18 alike)."""
        return self.step / self.total_steps if self.total_steps else 0.0

    def teacher_forward(self, inputs: dict[str, torch.Tensor], reads: Iterable[str] = ()) -> Outputs:
        """The teacher's outputs of a batch, with the extras in `reads` ("hidden_states", "attentions"),
        without gradient."""
        if self.teacher_model is None:
            raise RuntimeError("this run has no teacher model")
        with torch.no_grad():
            return forward(self.teacher_model, inputs, reads)

    def add_parameters(self, params: Iterable[torch.nn.Parameter], lr: float, *, weight_decay: float = 0.0,
                       max_grad_norm: float | None = None) -> torch.optim.Optimizer:
        """An AdamW over `params`, stepped (and zeroed) by the harness right after each student step,
        with the gradients the training loss gave them (averaged over data-parallel workers, clipped to
        `max_grad_norm` if given); saved and restored with checkpoints. A step that gave them no
        gradient leaves them as they are."""
        optimizer = torch.optim.AdamW([{"params": list(params), "max_grad_norm": max_grad_norm}], lr=lr,
                                      weight_decay=weight_decay)
        self.optimizers.append(optimizer)
        return optimizer

    def on_step(self, callback: Callable[[TrainingContext], None]) -> None:
        """Call `callback(context)` after every optimiser step."""
        self.step_callbacks.append(callback)

    @staticmethod
    def unwrap(model: torch.nn.Module) -> torch.nn.Module:
        """The model without its data-parallel wrapper (hooks and parameters live there)."""
        return extract_model_from_parallel(model)

    @staticmethod
    @contextlib.contextmanager
    def full_precision(device: torch.device) -> Iterator[None]:
        """Forwards in fp32 inside the block, whatever autocast the harness runs the step under."""
        with torch.autocast(device.type, enabled=False):
            yield
