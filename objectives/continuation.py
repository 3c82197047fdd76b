"""`continuation`: Continuation-KD (Jafari et al., Findings EMNLP 2022).

    L = psi CE + (1 - psi) max{0, ||z_S - phi(T) z_T||^2 - m phi(T)},   phi(T) = 1 - (T - 1) / T_max

`||.||^2` is the sum of squares over the classes (the squared error for regression, whose CE is
the squared error to the gold score). T starts at T_max and drops by 1 every 1/T_max of training
(the paper: every floor(n / T_max) of n epochs), so the teacher's scale `phi` rises from 1/T_max to
1; the label weight `psi` rises as `psi_slope * progress` until `psi_until`, then is 1 (the
paper's `psi(i) = i / 40` for epochs i <= 20 of 30, then 1). With m = 0 and a step `psi` it reduces
to Annealing-KD.

The defaults are the paper's GLUE settings (30 epochs, T_max 10) laid on the fraction of training
(`context.progress`), so a shorter run, such as the quick profile's 2 epochs, keeps the same shape,
shortened proportionally. The margin m (default 0), the hinge's reduction (default per example) and
the update granularity (default per step) are not published: they are our reconstruction, each a
parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bench.parts.context import Batch
from bench.parts.fields import AT_LEAST_ONE, NON_NEGATIVE, PROBABILITY
from bench.parts.losses import label_loss
from bench.parts.registry import param
from objectives.base import Objective
from objectives.registry import register_objective


@dataclass(frozen=True)
class ContinuationParams:
    t_max: int = param(10, "T_max: the teacher's scale phi rises from 1/T_max to 1 in T_max equal stages",
                       range=AT_LEAST_ONE)
    psi_until: float = param(2 / 3, "fraction of training after which the label weight psi is 1 "
                                    "(the paper's 20 of 30 epochs)", range=PROBABILITY)
    psi_slope: float = param(0.75, "psi = psi_slope * progress before psi_until (the paper's i/40 over "
                                   "30 epochs)", range=NON_NEGATIVE)
    margin: float = param(0.0, "margin m of the hinge (unpublished)", range=NON_NEGATIVE)
    reduction: str = param("example", "hinge per example, then averaged, or on the batch's mean squared "
                                      "norm (unpublished)", choices=("example", "batch"))
    updates: str = param("step", "schedules updated every step, or held for each epoch at their value at its "
                                 "start (unpublished)", choices=("step", "epoch"))


@register_objective("continuation", label="Continuation-KD", params=ContinuationParams,
                    description="psi CE + (1 - psi) max{0, ||z_S - phi z_T||^2 - m phi}, phi rising to 1 and psi "
                                "to 1 over training (the paper's 30 epochs laid on the fraction of training); "
                                "margin, reduction and update granularity are our reconstruction (unpublished)")
class ContinuationKD(Objective):
    kd_settings = ()  # reads none of --temperature, --alpha-kd, --alpha-ce

    def schedule(self, progress: float) -> tuple[int, float, float]:
        """`(T, phi, psi)` at this fraction of training: T = T_max - floor(progress * T_max) (at least 1),
        phi = 1 - (T - 1) / T_max, psi = min(1, psi_slope * progress) up to psi_until, then 1."""
        p = self.params
        t = max(1, p.t_max - math.floor(progress * p.t_max))
        phi = 1 - (t - 1) / p.t_max
        psi = min(1.0, p.psi_slope * progress) if progress <= p.psi_until else 1.0
        return t, phi, psi

    def loss(self, student_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Per example, psi CE + (1 - psi) hinge; with reduction "batch" the hinge is the batch's
        value repeated for each example, so the mean is the batch loss."""
        _, phi, psi = self.schedule(self._progress())
        labels = label_loss(student_logits, batch.labels, regression=self.regression)
        if psi == 1:
            return labels
        return psi * labels + (1 - psi) * self._hinge(student_logits, batch.teacher_logits, phi)

    def view_loss(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """(1 - psi) times the hinge on the view's logits (the label term is counted once, in `loss`)."""
        _, phi, psi = self.schedule(self._progress())
        return (1 - psi) * self._hinge(student_logits, teacher_logits, phi)

    def _progress(self) -> float:
        """The fraction of training the schedules read: now, or at the start of the current epoch
        (progress per epoch = progress / epoch, both counted in optimiser steps)."""
        context = self.context
        if self.params.updates == "epoch" and context.epoch > 0:
            return context.progress * math.floor(context.epoch) / context.epoch
        return context.progress

    def _hinge(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, phi: float) -> torch.Tensor:
        """max{0, ||z_S - phi z_T||^2 - m phi} per example, or on the batch's mean squared norm, repeated."""
        rows = student_logits.shape[0]
        student, teacher = student_logits.float().reshape(rows, -1), teacher_logits.float().reshape(rows, -1)
        squared = ((student - phi * teacher) ** 2).sum(-1)
        if self.params.reduction == "batch":
            squared = squared.mean().expand(rows)
        return (squared - self.params.margin * phi).clamp(min=0)
