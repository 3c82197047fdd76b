"""The task-specific distillation loss of METHODS.md, per example, always computed in fp32.

    L = alpha_kd * t^2 * KL(softmax(z_T / t) || softmax(z_S / t)) + alpha_ce * CE(y, z_S)

For regression (STS-B) the KD term is the squared error between student and teacher outputs and the
label term the squared error to the gold score. Each function returns one loss per example; the
batch's loss is their mean (so the KL term is "batchmean", the mathematical KL per example). The t^2
factor keeps gradient sizes comparable across temperatures.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, temperature: float,
                  regression: bool) -> torch.Tensor:
    """The KD term alone, per example: t^2-scaled KL for classification, squared error for regression."""
    student, teacher = student_logits.float(), teacher_logits.float()
    if regression:
        return (student.view(-1) - teacher.view(-1)) ** 2
    log_p_student = F.log_softmax(student / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher / temperature, dim=-1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="none", log_target=True).sum(-1)
    return kl * temperature**2


def label_loss(student_logits: torch.Tensor, labels: torch.Tensor, *, regression: bool) -> torch.Tensor:
    """The hard-label term, per example: cross-entropy, or squared error to the gold score for regression."""
    student = student_logits.float()
    if regression:
        return (student.view(-1) - labels.float().view(-1)) ** 2
    return F.cross_entropy(student, labels.view(-1), reduction="none")


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor | None, *,
            temperature: float, alpha_kd: float, alpha_ce: float, regression: bool) -> torch.Tensor:
    """The weighted sum above, per example; a term whose weight is 0 (or whose target is missing) is skipped."""
    loss = student_logits.new_zeros(student_logits.shape[0], dtype=torch.float32)
    if alpha_kd and teacher_logits is not None:
        loss = loss + alpha_kd * kd_divergence(student_logits, teacher_logits, temperature=temperature,
                                               regression=regression)
    if alpha_ce and labels is not None:
        loss = loss + alpha_ce * label_loss(student_logits, labels, regression=regression)
    return loss
