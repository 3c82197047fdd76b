"""Annealing-KD: the teacher's scale at the schedule's boundaries, phase 1's scaled MSE, phase 2's
hard labels (squared error to the gold score for regression), the view loss and the range checks,
all by hand on tiny tensors."""

from __future__ import annotations

import math
import types

import pytest
import torch

from bench.context import Batch, TrainingContext
from bench.errors import KdbenchError
from bench.tasks import get_task
from objectives import get_objective

STEPS = 180  # the paper's 14 + 4 epochs at 10 steps each: phase 2 starts at step 140


def annealing(step: int, task: str = "sst2", **params):
    """The objective at optimiser step `step` of STEPS."""
    state = types.SimpleNamespace(global_step=step, max_steps=STEPS, epoch=step / 10)
    context = TrainingContext(task=get_task(task), train_size=8, teacher="tiny", state=state)
    spec = get_objective("annealing")
    return spec.implementation(spec.parse_params(params), context)


def test_scale_at_phase_boundaries():
    objective = annealing(0)
    assert objective.scale(0.0) == pytest.approx(1 / 7)
    assert objective.scale(21 / STEPS) == pytest.approx(2 / 7)
    assert objective.scale(139 / STEPS) == pytest.approx(1.0)
    assert objective.scale(140 / STEPS) is None  # phase 2: labels only
    assert objective.scale(0.99) is None


def test_scale_follows_the_parameters():
    objective = annealing(0, tau_max=2, phase1_fraction=0.5)
    assert [objective.scale(p) for p in (0.0, 0.2, 0.3, 0.49, 0.5)] == [0.5, 0.5, 1.0, 1.0, None]


def test_phase1_loss_is_mse_to_the_scaled_teacher():
    student = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    teacher = torch.tensor([[3.5, -7.0], [7.0, 0.0]])  # scaled by 2/7 at step 21: [[1, -2], [2, 0]]
    batch = Batch({}, torch.tensor([1, 0]), teacher)
    objective = annealing(21)
    expected = torch.tensor([(0 + 16) / 2, (4 + 1) / 2])
    assert torch.allclose(objective.loss(student, batch), expected)
    assert torch.allclose(objective.view_loss(student, teacher, batch), expected)


def test_phase2_is_cross_entropy_and_has_no_view_term():
    student = torch.tensor([[0.0, math.log(3)], [0.0, math.log(3)]])
    batch = Batch({}, torch.tensor([1, 0]), torch.full((2, 2), 9.0))
    objective = annealing(150)
    assert torch.allclose(objective.loss(student, batch), torch.tensor([math.log(4 / 3), math.log(4)]))
    assert torch.equal(objective.view_loss(student, batch.teacher_logits, batch), torch.zeros(2))


def test_regression_uses_squared_error_in_both_phases():
    student = torch.tensor([[2.0], [0.5]])
    batch = Batch({}, torch.tensor([3.0, 0.5]), torch.tensor([[7.0], [0.0]]))
    assert torch.allclose(annealing(21, task="stsb").loss(student, batch), torch.tensor([0.0, 0.25]))
    assert torch.allclose(annealing(150, task="stsb").loss(student, batch), torch.tensor([1.0, 0.0]))


@pytest.mark.parametrize("assignment", ["tau_max=0", "phase1_fraction=0", "phase1_fraction=1.5"])
def test_out_of_range_parameters_are_refused(assignment):
    with pytest.raises(KdbenchError):
        get_objective("annealing").parse_params([assignment])
