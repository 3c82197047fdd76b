"""Continuation-KD: the schedules (T, phi, psi) with psi's jump, the hinge with a margin that clips
an example, per-example against batch reduction, the view loss, regression, per-epoch updates and
the range checks, all by hand on tiny tensors."""

from __future__ import annotations

import math
import types

import pytest
import torch

from bench.parts.context import Batch, TrainingContext
from bench.parts.errors import KdbenchError
from bench.parts.tasks import get_task
from objectives import get_objective

# at step 2 of 10 with t_max 2 and psi_slope 0.5: T 2, phi 0.5, psi 0.1; with margin 2, m phi = 1
STUDENT = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
TEACHER = torch.tensor([[2.0, 0.0], [4.0, 2.0]])  # ||z_S - phi z_T||^2 = [0, 5]: the first is clipped
LABELS = torch.tensor([0, 1])
CE = torch.tensor([math.log(1 + math.exp(-1)), math.log(2)])


def continuation(step: int, steps: int = 10, epoch: float | None = None, task: str = "sst2", **params):
    """The objective at optimiser step `step` of `steps` (one epoch unless `epoch` says otherwise)."""
    state = types.SimpleNamespace(global_step=step, max_steps=steps, epoch=step / steps if epoch is None else epoch)
    context = TrainingContext(task=get_task(task), train_size=8, teacher="tiny", state=state)
    spec = get_objective("continuation")
    return spec.implementation(spec.parse_params(params), context)


def test_schedule_with_the_papers_settings():
    objective = continuation(0)
    for progress, (t, phi, psi) in {0.0: (10, 0.1, 0.0), 0.25: (8, 0.3, 0.1875), 0.65: (4, 0.7, 0.4875),
                                    2 / 3: (4, 0.7, 0.5), 0.67: (4, 0.7, 1.0), 0.95: (1, 1.0, 1.0)}.items():
        got = objective.schedule(progress)
        assert got[0] == t and got[1:] == pytest.approx((phi, psi)), progress


def test_hinge_with_a_margin_clips_an_example():
    objective = continuation(2, t_max=2, psi_slope=0.5, margin=2.0)
    assert objective.schedule(0.2) == pytest.approx((2, 0.5, 0.1))
    batch = Batch({}, LABELS, TEACHER)
    hinge = torch.tensor([0.0, 4.0])
    assert torch.allclose(objective.loss(STUDENT, batch), 0.1 * CE + 0.9 * hinge)
    assert torch.allclose(objective.view_loss(STUDENT, TEACHER, batch), 0.9 * hinge)


def test_batch_reduction_takes_the_hinge_of_the_mean():
    batch = Batch({}, LABELS, TEACHER)
    by_example = continuation(2, t_max=2, psi_slope=0.5, margin=2.0).loss(STUDENT, batch)
    by_batch = continuation(2, t_max=2, psi_slope=0.5, margin=2.0, reduction="batch").loss(STUDENT, batch)
    assert torch.allclose(by_batch, 0.1 * CE + 0.9 * 1.5)  # max{0, mean [0, 5] - 1}, repeated
    assert by_example.mean() == pytest.approx(0.1 * CE.mean() + 0.9 * 2.0)
    assert by_batch.mean() != pytest.approx(by_example.mean().item())


def test_labels_only_once_psi_is_one():
    batch = Batch({}, LABELS, TEACHER)
    objective = continuation(8)
    assert torch.allclose(objective.loss(STUDENT, batch), CE)
    assert torch.allclose(objective.loss(STUDENT, Batch({}, LABELS)), CE)  # the teacher is not read
    assert torch.equal(objective.view_loss(STUDENT, TEACHER, batch), torch.zeros(2))


def test_regression_uses_squared_errors():
    student, teacher = torch.tensor([[1.0], [3.0]]), torch.tensor([[4.0], [2.0]])
    batch = Batch({}, torch.tensor([2.0, 3.0]), teacher)
    objective = continuation(2, task="stsb", t_max=2, psi_slope=0.5)
    # label term [1, 0]; ||z_S - 0.5 z_T||^2 = [1, 4]
    assert torch.allclose(objective.loss(student, batch), torch.tensor([0.1 + 0.9, 3.6]))


def test_epoch_updates_hold_the_schedule_at_the_epochs_start():
    student, teacher = torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    batch = Batch({}, torch.tensor([0]), teacher)
    # step 15 of 20, 10 steps an epoch: progress 0.75 (psi 1), the epoch started at 0.5 (T 5, phi 0.6, psi 0.375)
    per_step = continuation(15, steps=20, epoch=1.5).loss(student, batch)
    per_epoch = continuation(15, steps=20, epoch=1.5, updates="epoch").loss(student, batch)
    assert per_step.item() == pytest.approx(math.log(2))
    assert per_epoch.item() == pytest.approx(0.375 * math.log(2) + 0.625 * 2 * 0.6**2)


@pytest.mark.parametrize("step, epoch, progress", [(0, 0.0, 0.0), (5, 0.5, 0.0), (25, 2.5, 2 / 3)])
def test_epoch_updates_read_the_progress_at_the_epochs_start(step, epoch, progress):
    """10 steps an epoch of 30: the first epoch reads progress 0 throughout; step 25 the start of
    epoch 2, 20 / 30."""
    objective = continuation(step, steps=30, epoch=epoch, updates="epoch")
    assert objective._progress() == pytest.approx(progress)


def test_psi_is_capped_at_one_before_psi_until():
    assert continuation(0, psi_slope=4.0, psi_until=0.9).schedule(0.5)[2] == 1.0


@pytest.mark.parametrize("assignment", ["t_max=0", "margin=-1", "psi_until=1.5", "psi_slope=-0.1",
                                        "reduction=mean", "updates=batch"])
def test_bad_parameters_are_refused(assignment):
    with pytest.raises(KdbenchError):
        get_objective("continuation").parse_params([assignment])
