"""Experiment trackers (`report_to`, `run_name`): TensorBoard's event files stay in the run's folder,
the settings reach Trainer, a missing package is one line before any data loads, and tracking a run
changes none of its names."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import bench.pipeline.runs
import bench.pipeline.training
from bench.cli import main
from bench.parts.errors import KdbenchError
from bench.pipeline.cache import digest
from bench.pipeline.config import RunConfig, TrainConfig, identity, train_identity
from bench.pipeline.runs import run_distill
from bench.pipeline.training import LOGS_DIR, training_arguments
from tests.test_runs import TRAIN, distill_config

TRACKED = replace(TRAIN, report_to="tensorboard", run_name="tiny-kd")


def test_tensorboard_logs_each_evaluation_score_in_the_run_folder(glue_dir, tiny_teacher, tmp_path):
    record = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "run", train=TRACKED))
    logs = tmp_path / "run" / LOGS_DIR
    assert list(logs.glob("events.out.tfevents.*"))
    assert not (tmp_path / "run" / "checkpoints").exists()  # the logs outlive the checkpoints
    events = EventAccumulator(str(logs))
    events.Reload()
    scores = [(e.step, e.value) for e in events.Scalars("eval/validation_score")]
    assert scores == [(e["step"], pytest.approx(e["eval_validation_score"])) for e in record["evaluations"]]
    assert len(scores) == 2 and "train/loss" in events.Tags()["scalars"]


def test_report_to_and_run_name_reach_the_training_arguments(tmp_path):
    args = training_arguments(TRACKED, tmp_path, "eval_validation_score")
    assert args.report_to == ["tensorboard"] and args.run_name == "tiny-kd"
    assert training_arguments(TRAIN, tmp_path, "eval_validation_score").report_to == []


@pytest.mark.parametrize("settings", ["train", "teacher_train"])
def test_tracking_changes_no_identity(settings):
    tracked = replace(TrainConfig(seed=7), report_to="mlflow", run_name="named")
    config = replace(RunConfig(), **{settings: tracked})
    assert identity(config) == identity(replace(config, **{settings: TrainConfig(seed=7)}))
    assert train_identity(tracked) == train_identity(TrainConfig(seed=7))
    assert "report_to" not in identity(config)[settings] and "run_name" not in train_identity(tracked)
    # the name of the default run before trackers existed, when the default order was group_by_length
    grouped = RunConfig(train=replace(RunConfig().train, train_sampling_strategy="group_by_length"),
                        teacher_train=replace(RunConfig().teacher_train, train_sampling_strategy="group_by_length"))
    assert digest(identity(grouped)) == "9d26967a7e01a2b40851bedc"


def test_an_unknown_tracker_is_refused():
    with pytest.raises(KdbenchError, match="unknown value of report_to 'tensorbord'"):
        TrainConfig(report_to="tensorbord")


@pytest.mark.parametrize("command", ["distill", "finetune", "finetune-teacher"])
@pytest.mark.parametrize("tracker", ["tensorboard", "wandb", "mlflow"])
def test_a_missing_tracker_package_is_one_line_before_any_data(command, tracker, glue_dir, tiny_teacher, tmp_path,
                                                               monkeypatch, capsys):
    monkeypatch.setitem(bench.pipeline.training.TRACKER_AVAILABLE, tracker, lambda: False)
    monkeypatch.setattr(bench.pipeline.runs, "load_data", lambda config: pytest.fail("data loaded"))
    source = ["--teacher", str(tiny_teacher)] if command != "finetune-teacher" else ["--model", str(tiny_teacher)]
    code = main([command, "--task", "sst2", "--data-dir", str(glue_dir), *source, "--report-to", tracker,
                 "--output-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.endswith(f"pip install {tracker}") and len(err.splitlines()) == 1
    assert not Path(tmp_path / "run").exists()
