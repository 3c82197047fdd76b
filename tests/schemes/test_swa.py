"""SWA (schemes/swa.py): the kept weights are the mean of the snapshots, the schedule, resume, the harness."""

from __future__ import annotations

import io
import json
import types

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from bench.cli import main
from bench.parts.context import TrainingContext
from bench.parts.tasks import get_task
from bench.pipeline.records import RECORD_FILE
from bench.pipeline.runs import run_distill, run_finetune
from schemes.registry import get_scheme
from bench.parts.schedules import first_step
from schemes.swa import SWA, SWAParams
from tests.test_runs import distill_config


def by_hand(total_steps: int, **params) -> tuple[SWA, torch.nn.Module]:
    """A scheme on a tiny module, bound to a hand-made Trainer state at step 0 of `total_steps`."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    state = types.SimpleNamespace(global_step=0, max_steps=total_steps, epoch=0)
    context = TrainingContext(task=get_task("sst2"), train_size=8, teacher="", state=state)
    scheme = SWA(SWAParams(**params), context)
    scheme.begin(model)
    return scheme, model


def take_steps(scheme: SWA, model: torch.nn.Module, steps: range) -> dict[int, list[torch.Tensor]]:
    """Move the weights at random for each step, as an optimiser would, then call `after_step`; the
    weights after each step."""
    weights = {}
    for step in steps:
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter))
        scheme.context.state.global_step = step
        scheme.after_step(model)
        weights[step] = [parameter.detach().clone() for parameter in model.parameters()]
    return weights


def mean(snapshots: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    return [torch.stack(tensors).mean(0) for tensors in zip(*snapshots)]


def same(a, b, exact: bool = False) -> bool:
    return all((torch.equal if exact else torch.allclose)(x, y) for x, y in zip(list(a), list(b), strict=True))


def test_the_weights_evaluated_and_kept_are_the_mean_of_the_snapshots():
    scheme, model = by_hand(10, start=0.3, every=2)  # snapshots after steps 3, 5, 7 and 9
    weights = take_steps(scheme, model, range(1, 3))
    with scheme.evaluation_weights(model):  # nothing averaged yet: the trained weights
        assert same(model.parameters(), weights[2], exact=True)
    weights |= take_steps(scheme, model, range(3, 11))
    average = mean([weights[step] for step in (3, 5, 7, 9)])
    assert scheme.report()["snapshots"] == 4 and scheme.report()["start_step"] == 3
    with scheme.evaluation_weights(model):
        assert same(model.parameters(), average)
    assert same(model.parameters(), weights[10], exact=True)  # the trained weights back, bit for bit
    scheme.finish(model)
    assert same(model.parameters(), average)


@pytest.mark.parametrize("start, total_steps, expected", [(0.07, 1000, 70), (0.55, 20, 11), (0.5, 5, 3), (0.0, 9, 0),
                                                          (14 / 18, 18, 14), (14 / 18, 36, 28)])
def test_start_is_the_first_step_at_that_fraction_as_written(start, total_steps, expected):
    assert first_step(start, total_steps) == expected  # not a step late from the binary value
    assert first_step(start, total_steps) / total_steps >= start > (first_step(start, total_steps) - 1) / total_steps


def test_the_schedule_warms_up_decays_then_stays_constant_from_start():
    scheme, model = by_hand(10, start=0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    factor = scheme.scheduler(optimizer, total_steps=10, warmup_steps=2).lr_lambdas[0]
    # warm-up 0, 1/2; decay (10 - s) / 8 from step 2; from step 5 on the value reached there, 5/8
    assert [factor(s) for s in range(10)] == [0.0, 0.5, 1.0, 7 / 8, 6 / 8] + [5 / 8] * 5
    assert scheme.report()["constant_lr_factor"] == 5 / 8
    given, _ = by_hand(10, start=0.5, lr_factor=0.1)
    factor = given.scheduler(optimizer, total_steps=10, warmup_steps=2).lr_lambdas[0]
    assert [factor(s) for s in range(10)] == [0.0, 0.5, 1.0, 7 / 8, 6 / 8] + [0.1] * 5


def test_a_resumed_run_continues_the_average_and_the_best_checkpoint_keeps_its_own():
    scheme, model = by_hand(10, start=0.0)
    weights = take_steps(scheme, model, range(1, 5))
    saved = io.BytesIO()
    torch.save(scheme.state_dict(), saved)  # as a checkpoint does
    weights |= take_steps(scheme, model, range(5, 9))

    resumed, other = by_hand(10, start=0.0)
    saved.seek(0)
    resumed.load_state_dict(torch.load(saved, weights_only=False))
    assert resumed.report()["snapshots"] == 4
    with torch.no_grad():
        for target, source in zip(other.parameters(), weights[4]):
            target.copy_(source)
    torch.manual_seed(1)
    resumed_weights = take_steps(resumed, other, range(5, 9))
    assert resumed.report()["snapshots"] == 8
    resumed.finish(other)
    assert same(other.parameters(), mean([*(weights[s] for s in range(1, 5)), *resumed_weights.values()]))

    saved.seek(0)  # the best checkpoint at step 4: its average is what finish keeps
    scheme.load_state_dict(torch.load(saved, weights_only=False))
    scheme.finish(model)
    assert same(model.parameters(), mean([weights[s] for s in range(1, 5)]))


@pytest.mark.parametrize("run", [run_finetune, run_distill])
def test_the_harness_saves_the_average_with_and_without_a_teacher(run, glue_dir, tiny_teacher, tmp_path, monkeypatch):
    kept = {}
    finish = SWA.finish

    def keeping(self, model):
        kept["trained"] = {name: p.detach().clone() for name, p in model.named_parameters()}
        finish(self, model)
        kept["average"] = {name: p.detach().clone() for name, p in self.averaged.module.named_parameters()}

    monkeypatch.setattr(SWA, "finish", keeping)
    out = tmp_path / "run"
    record = run(distill_config(glue_dir, tiny_teacher, out, scheme="swa", scheme_params={"start": 0.25}))
    info = json.loads((out / RECORD_FILE).read_text())["scheme_info"]
    assert info["name"] == "swa" and info["params"] == {"start": 0.25, "every": 1, "lr_factor": None}
    measured = info["measured"]  # 12 steps, averaged from step 3; the best checkpoint is step 6 or 12
    assert measured["start_step"] == 3 and measured["snapshots"] == record["best"]["step"] - 2
    saved = dict(AutoModelForSequenceClassification.from_pretrained(out / "model").named_parameters())
    assert all(torch.equal(saved[name], average) for name, average in kept["average"].items())
    assert not all(torch.equal(kept["trained"][name], average) for name, average in kept["average"].items())


def test_the_cli_runs_swa_and_refuses_a_bad_start_before_training(glue_dir, tiny_teacher, tmp_path, capsys):
    args = ["finetune", "--task", "sst2", "--data-dir", str(glue_dir), "--teacher", str(tiny_teacher),
            "--student", "teacher-layers:0", "--max_length", "32", "--num-train-epochs", "1",
            "--per-device-train-batch-size", "16", "--scheme", "swa"]
    assert main([*args, "--output-dir", str(tmp_path / "cli"), "--scheme-param", "start=0.5"]) == 0
    measured = json.loads((tmp_path / "cli" / RECORD_FILE).read_text())["scheme_info"]["measured"]
    assert measured == {"snapshots": 2, "start_step": 2, "constant_lr_factor": pytest.approx(0.5)}  # 3 steps
    capsys.readouterr()
    assert main([*args, "--output-dir", str(tmp_path / "bad"), "--scheme-param", "start=1.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "start" in err and "in [0, 1)" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def test_swa_is_registered_with_its_label():
    part = get_scheme("swa")
    assert part.implementation is SWA and part.label == "SWA" and "unpublished" in part.description
