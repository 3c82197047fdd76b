"""`kd`: the objective passes the run's [kd] settings, the labels and the task's kind to the KD loss:
by hand on tiny tensors, for classification and regression, and its view loss is the KD term alone."""

from __future__ import annotations

import math

import pytest
import torch

from bench.parts.context import Batch, TrainingContext
from bench.parts.kd_config import KDConfig
from bench.parts.tasks import get_task
from objectives import get_objective

KD = KDConfig(temperature=2.0, alpha_kd=0.5, alpha_ce=3.0)


def kd(task: str):
    spec = get_objective("kd")
    return spec.implementation(spec.parse_params({}), TrainingContext(get_task(task), 10, "t", kd=KD))


def test_classification_is_t_squared_kl_plus_cross_entropy():
    student, teacher = torch.tensor([[0.0, 0.0], [2.0, 0.0]]), torch.tensor([[0.0, 2 * math.log(3)], [0.0, 0.0]])
    labels = torch.tensor([1, 1])
    # at t = 2 the teacher's softmax is (1/4, 3/4), then (1/2, 1/2); the student's (1/2, 1/2), then softmax(1, 0)
    s1 = [math.exp(1) / (math.exp(1) + 1), 1 / (math.exp(1) + 1)]
    kl = [0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5),
          0.5 * math.log(0.5 / s1[0]) + 0.5 * math.log(0.5 / s1[1])]
    ce = [math.log(2), math.log(1 + math.exp(2))]
    loss = kd("sst2").loss(student, Batch({}, labels, teacher))
    assert loss.tolist() == pytest.approx([0.5 * 4 * k + 3.0 * c for k, c in zip(kl, ce)], rel=1e-5)
    view = kd("sst2").view_loss(student, teacher, Batch({}, labels))
    assert view.tolist() == pytest.approx([0.5 * 4 * k for k in kl], rel=1e-5)


def test_regression_is_squared_error_to_the_teacher_and_to_the_label():
    student, teacher, labels = torch.tensor([[1.0], [2.0]]), torch.tensor([[3.0], [2.5]]), torch.tensor([0.0, 4.0])
    loss = kd("stsb").loss(student, Batch({}, labels, teacher))
    assert loss.tolist() == pytest.approx([0.5 * 4 + 3.0 * 1, 0.5 * 0.25 + 3.0 * 4])
    assert kd("stsb").view_loss(student, teacher, Batch({}, labels)).tolist() == pytest.approx([0.5 * 4, 0.5 * 0.25])
    assert kd("sst2").has_teacher_term() and kd("stsb").has_teacher_term()
