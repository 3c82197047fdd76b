"""`swa`: stochastic weight averaging during fine-tuning (METHODS.md, "SWA for compact models": Lu et
al., Findings EMNLP 2022).

Training runs the Trainer's linear warm-up and decay until `start` (a fraction of all steps); from
there the learning rate stays constant (a high constant rate, not a cyclical one) and the student's
weights are averaged every `every` optimiser steps, the first snapshot being the weights at `start`.
Evaluation sees the average, so the best-dev checkpoint is chosen on it, and the average at that
checkpoint is the model kept. BERT-like models have no batch norm, so there are no statistics to
re-estimate after averaging. Only the student's weights are touched, so it serves fine-tuning and
distillation alike.

The paper publishes only its abstract: where averaging starts, how often and at what learning rate
are open (METHODS.md), so the defaults here are our choices.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel

from bench.parts.context import TrainingContext
from bench.parts.fields import AT_LEAST_ONE, POSITIVE, Range
from bench.parts.registry import param
from bench.parts.schedules import first_step, linear_factor
from schemes.base import Scheme
from schemes.registry import register_scheme


@dataclass(frozen=True)
class SWAParams:
    """Where averaging starts, how often it runs, and the constant learning rate after the start."""

    start: float = param(0.5, "fraction of training after which the learning rate is constant and weights are "
                         "averaged", range=Range(0, 1, high_open=True))
    every: int = param(1, "average the weights every this many optimiser steps", range=AT_LEAST_ONE)
    lr_factor: float | None = param(None, "the constant learning rate as a fraction of the peak; none: the value "
                                    "the linear schedule has reached at start, so the rate is continuous",
                                    range=POSITIVE)


@register_scheme("swa", label="SWA", params=SWAParams,
                 description="stochastic weight averaging (Lu et al. 2022): after `start` of training a constant "
                 "learning rate and the weights averaged every `every` steps; the average is evaluated and kept "
                 "(start, frequency and rate are our defaults: the paper's are unpublished)")
class SWA(Scheme):
    """The running mean of the student's weights (torch's `AveragedModel`), from `start` on."""

    params: SWAParams

    def __init__(self, params: SWAParams, context: TrainingContext):
        super().__init__(params, context)
        self.averaged: AveragedModel | None = None
        self.constant_factor: float | None = None

    @property
    def snapshots(self) -> int:
        """How many weight snapshots the average holds."""
        return int(self.averaged.n_averaged) if self.averaged is not None else 0

    def begin(self, model: torch.nn.Module) -> None:
        self.averaged = AveragedModel(model)  # a copy of `model`, on its device, averaged from the first snapshot

    def scheduler(self, optimizer: torch.optim.Optimizer, total_steps: int,
                  warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
        """Linear warm-up and decay, then from `start` on a constant factor. torch's `SWALR` is not used:
        it takes over from another scheduler at a point the training loop chooses, while here the
        Trainer owns the one scheduler it steps; this LambdaLR is that schedule in one."""
        start_step = first_step(self.params.start, total_steps)
        constant = self.params.lr_factor
        if constant is None:
            constant = linear_factor(start_step, total_steps, warmup_steps)
        self.constant_factor = constant
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: constant if step >= start_step else linear_factor(step, total_steps, warmup_steps))

    def after_step(self, model: torch.nn.Module) -> None:
        """Average the weights after each `every`-th step from `start` on (`context.step` steps are done)."""
        since_start = self.context.step - first_step(self.params.start, self.context.total_steps)
        if since_start >= 0 and since_start % self.params.every == 0:
            self.averaged.update_parameters(model)

    @contextlib.contextmanager
    def evaluation_weights(self, model: torch.nn.Module) -> Iterator[None]:
        """The average in `model` inside the block (once there is one), the trained weights back after it."""
        if not self.snapshots:
            yield
            return
        trained = [parameter.detach().clone() for parameter in model.parameters()]
        _copy(self.averaged.module.parameters(), model.parameters())
        try:
            yield
        finally:
            _copy(trained, model.parameters())

    def finish(self, model: torch.nn.Module) -> None:
        """Keep the average as it was at the best checkpoint (the weights its evaluation saw)."""
        if self.snapshots:
            _copy(self.averaged.module.parameters(), model.parameters())

    def state_dict(self) -> dict[str, Any]:
        return self.averaged.state_dict()  # the averaged weights and n_averaged

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaged.load_state_dict(state)

    def report(self) -> dict:
        return {"snapshots": self.snapshots, "start_step": first_step(self.params.start, self.context.total_steps),
                "constant_lr_factor": self.constant_factor}


def _copy(sources: Iterable[torch.Tensor], targets: Iterable[torch.nn.Parameter]) -> None:
    """Copy each tensor of `sources` into the matching parameter of `targets`, in place."""
    with torch.no_grad():
        for source, target in zip(sources, targets, strict=True):
            target.copy_(source)
