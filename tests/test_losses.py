"""The KD loss against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from bench.parts.losses import kd_loss

STUDENT = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
TEACHER = torch.tensor([[2.0, 0.0], [0.5, 0.5]])
LABELS = torch.tensor([0, 1])


def softmax(row: list[float], t: float) -> list[float]:
    exps = [math.exp(v / t) for v in row]
    return [e / sum(exps) for e in exps]


def hand_kl(t: float) -> float:
    """mean over examples of sum_c p_T log(p_T / p_S), at temperature t."""
    total = 0.0
    for s_row, t_row in zip(STUDENT.tolist(), TEACHER.tolist()):
        p_s, p_t = softmax(s_row, t), softmax(t_row, t)
        total += sum(pt * math.log(pt / ps) for pt, ps in zip(p_t, p_s))
    return total / len(STUDENT)


def hand_ce() -> float:
    return -sum(math.log(softmax(row, 1)[y]) for row, y in zip(STUDENT.tolist(), LABELS.tolist())) / 2


@pytest.mark.parametrize("t", [1.0, 2.0, 5.0])
def test_kd_term_is_t_squared_kl(t):
    loss = kd_loss(STUDENT, TEACHER, LABELS, temperature=t, alpha_kd=1.0, alpha_ce=0.0, regression=False).mean()
    assert loss.item() == pytest.approx(t**2 * hand_kl(t), rel=1e-5)  # fp32 vs float64


def test_weighted_sum_with_hard_labels():
    loss = kd_loss(STUDENT, TEACHER, LABELS, temperature=2.0, alpha_kd=0.7, alpha_ce=0.3, regression=False).mean()
    assert loss.item() == pytest.approx(0.7 * 4 * hand_kl(2.0) + 0.3 * hand_ce(), rel=1e-5)  # fp32 against float64


def test_regression_uses_mse_to_teacher_and_gold():
    student, teacher, gold = torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0], [3.5]]), torch.tensor([1.5, 2.0])
    loss = kd_loss(student, teacher, gold, temperature=3.0, alpha_kd=1.0, alpha_ce=0.5, regression=True).mean()
    assert loss.item() == pytest.approx((1 + 0.25) / 2 + 0.5 * (0.25 + 1) / 2)


def test_kd_is_computed_in_fp32_from_bf16_logits():
    loss = kd_loss(STUDENT.bfloat16(), TEACHER.bfloat16(), None, temperature=1.0, alpha_kd=1.0, alpha_ce=0.0,
                   regression=False).mean()
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(hand_kl(1.0), rel=1e-2)


def test_gradient_flows_to_the_student_only():
    student = STUDENT.clone().requires_grad_()
    teacher = TEACHER.clone().requires_grad_()
    kd_loss(student, teacher.detach(), LABELS, temperature=1.0, alpha_kd=1.0, alpha_ce=0.0, regression=False).mean().backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None
