"""`kd`: the task-specific KD loss of METHODS.md (bench/parts/losses.py), with the run's `[kd]` settings."""

from __future__ import annotations

import torch

from bench.parts.context import Batch
from bench.parts.losses import kd_divergence, kd_loss
from objectives.base import Objective
from objectives.registry import register_objective


@register_objective("kd", label="KD", description="alpha_kd * t^2 * KL(teacher || student) + alpha_ce * CE "
                    "(MSE for regression), with the --temperature, --alpha-kd and --alpha-ce settings")
class KD(Objective):
    def loss(self, student_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        kd = self.context.kd
        return kd_loss(student_logits, batch.teacher_logits, batch.labels, temperature=kd.temperature,
                       alpha_kd=kd.alpha_kd, alpha_ce=kd.alpha_ce, regression=self.regression)

    def view_loss(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        kd = self.context.kd
        return kd.alpha_kd * kd_divergence(student_logits, teacher_logits, temperature=kd.temperature,
                                           regression=self.regression)
