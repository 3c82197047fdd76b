"""The task-specific distillation loss of METHODS.md, always computed in fp32.

    L = alpha_kd * t^2 * KL(softmax(z_T / t) || softmax(z_S / t)) + alpha_ce * CE(y, z_S)

For regression (STS-B) the KD term is the MSE between student and teacher outputs and the label
term the MSE to the gold score. The KL is averaged over the batch ("batchmean"), which is the
mathematical KL per example; the t^2 factor keeps gradient sizes comparable across temperatures.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def kd_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, temperature: float,
                  regression: bool) -> torch.Tensor:
    """The KD term alone: t^2-scaled KL for classification, MSE for regression."""
    student, teacher = student_logits.float(), teacher_logits.float()
    if regression:
        return F.mse_loss(student.view(-1), teacher.view(-1))
    log_p_student = F.log_softmax(student / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher / temperature, dim=-1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


def label_loss(student_logits: torch.Tensor, labels: torch.Tensor, *, regression: bool) -> torch.Tensor:
    """The hard-label term: cross-entropy, or MSE to the gold score for regression."""
    student = student_logits.float()
    if regression:
        return F.mse_loss(student.view(-1), labels.float().view(-1))
    return F.cross_entropy(student, labels.view(-1))


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor | None, *,
            temperature: float, alpha_kd: float, alpha_ce: float, regression: bool) -> torch.Tensor:
    """The weighted sum above; a term whose weight is 0 (or whose target is missing) is skipped."""
    loss = student_logits.new_zeros((), dtype=torch.float32)
    if alpha_kd and teacher_logits is not None:
        loss = loss + alpha_kd * kd_divergence(student_logits, teacher_logits, temperature=temperature,
                                               regression=regression)
    if alpha_ce and labels is not None:
        loss = loss + alpha_ce * label_loss(student_logits, labels, regression=regression)
    return loss


@dataclass
class KDObjective:
    """The KD loss of one batch with its settings and hard labels bound, as handed to in-loop methods."""

    temperature: float
    alpha_kd: float
    alpha_ce: float
    regression: bool
    labels: torch.Tensor | None = None

    def __call__(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        """The whole loss: weighted KD term plus the hard-label term."""
        return kd_loss(student_logits, teacher_logits, self.labels, temperature=self.temperature,
                       alpha_kd=self.alpha_kd, alpha_ce=self.alpha_ce, regression=self.regression)

    def kd_term(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        """The weighted KD term alone (for extra views of a batch, whose hard labels are counted once)."""
        return self.alpha_kd * kd_divergence(student_logits, teacher_logits, temperature=self.temperature,
                                             regression=self.regression)
