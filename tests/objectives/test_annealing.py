"""Annealing-KD: the teacher's scale at the schedule's boundaries, phase 1's scaled MSE, phase 2's
hard labels (squared error to the gold score for regression), the view loss and the range checks,
all by hand on tiny tensors; and phase 2's restart (the best phase-1 weights, a new optimiser, the
schedule from the peak rate) on a tiny run, resumed or not."""

from __future__ import annotations

import math
import types
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from bench.parts.context import Batch, TrainingContext
from bench.parts.errors import KdbenchError
from bench.parts.tasks import get_task
from bench.pipeline.runs import run_distill
from objectives import get_objective
from tests.test_resume import _evaluations
from tests.test_runs import TRAIN, distill_config

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
    three = torch.zeros(3, 2, dtype=torch.bfloat16)  # one zero per example, in fp32 as the other terms
    zeros = objective.view_loss(three, three, Batch({}, None))
    assert torch.equal(zeros, torch.zeros(3)) and zeros.dtype == torch.float32


def test_regression_uses_squared_error_in_both_phases():
    student = torch.tensor([[2.0], [0.5]])
    batch = Batch({}, torch.tensor([3.0, 0.5]), torch.tensor([[7.0], [0.0]]))
    assert torch.allclose(annealing(21, task="stsb").loss(student, batch), torch.tensor([0.0, 0.25]))
    assert torch.allclose(annealing(150, task="stsb").loss(student, batch), torch.tensor([1.0, 0.0]))


@pytest.mark.parametrize("assignment", ["tau_max=0", "phase1_fraction=0", "phase1_fraction=1.5"])
def test_out_of_range_parameters_are_refused(assignment):
    with pytest.raises(KdbenchError):
        get_objective("annealing").parse_params([assignment])


class Watch(TrainerCallback):
    """At each optimiser step, just before the optimiser steps: the learning rate, whether the optimiser
    has state, the student's weights and the best checkpoint so far."""

    def __init__(self):
        self.lr, self.has_state, self.weights, self.best, self.best_weights_at = {}, {}, {}, {}, {}

    def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        step = state.global_step
        self.lr[step] = optimizer.param_groups[0]["lr"]
        self.has_state[step] = len(getattr(optimizer, "optimizer", optimizer).state) > 0
        self.weights[step] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.best[step] = state.best_model_checkpoint
        if state.best_model_checkpoint:  # read now: the checkpoints are removed after training
            self.best_weights_at[step] = load_file(Path(state.best_model_checkpoint) / "model.safetensors")


def _restart_run(glue_dir, teacher, out, callbacks=(), resume=False, **objective_params):
    """3 epochs of 6 steps, evaluated every 2 steps; phase 2 from step 12 (2/3 of 18)."""
    train = replace(TRAIN, num_train_epochs=3, eval_strategy="steps", eval_steps=2, warmup_steps=0)
    config = distill_config(glue_dir, teacher, out, objective="annealing", train=train, resume=resume,
                            objective_params={"phase1_fraction": 2 / 3, **objective_params})
    return run_distill(config, callbacks=callbacks)


def test_phase2_restarts_from_the_best_phase1_weights_with_a_new_optimiser_at_the_peak_rate(glue_dir, tiny_teacher,
                                                                                            tmp_path):
    watch = Watch()
    record = _restart_run(glue_dir, tiny_teacher, tmp_path / "run", callbacks=[watch])
    peak = TRAIN.learning_rate
    assert record["restart"]["step"] == 12
    # phase 1's schedule falls to 0 at step 12 (its last step at 1/12 of the peak); phase 2's starts at the peak
    assert watch.lr[11] == pytest.approx(peak / 12) and watch.lr[12] == pytest.approx(peak)
    assert watch.lr[17] == pytest.approx(peak / 6)
    assert watch.has_state[11] and not watch.has_state[12]  # a new optimiser: no moments at phase 2's first step
    best = watch.best[12]
    assert int(best.rsplit("-", 1)[1]) == record["restart"]["weights_from_step"] < 12  # not simply the last weights
    saved = watch.best_weights_at[12]
    assert all(torch.equal(watch.weights[12][k], saved[k]) for k in saved)
    assert not all(torch.equal(watch.weights[11][k], saved[k]) for k in saved)


def test_phase2_continue_keeps_one_optimiser_and_one_schedule(glue_dir, tiny_teacher, tmp_path):
    watch = Watch()
    record = _restart_run(glue_dir, tiny_teacher, tmp_path / "run", callbacks=[watch], phase2="continue")
    assert "restart" not in record and watch.has_state[12]
    assert watch.lr[12] == pytest.approx(TRAIN.learning_rate * 6 / 18)  # one linear decay over 18 steps


def test_a_run_resumed_before_the_restart_restarts_as_an_uninterrupted_one(glue_dir, tiny_teacher, tmp_path,
                                                                            ctrl_c_in_epoch_2):
    with pytest.raises(KeyboardInterrupt):
        _restart_run(glue_dir, tiny_teacher, tmp_path / "run", resume=True)
    ctrl_c_in_epoch_2.undo()
    resumed = _restart_run(glue_dir, tiny_teacher, tmp_path / "run", resume=True)
    whole = _restart_run(glue_dir, tiny_teacher, tmp_path / "whole")
    assert resumed["resumed_from"]["step"] == 6 and resumed["restart"] == whole["restart"]
    assert _evaluations(resumed) == _evaluations(whole)
