"""Interrupted runs: a half-written checkpoint never blocks a later run, and a resumed run's record
counts the whole run's time."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from bench.pipeline.checkpoints import complete
from bench.pipeline.runs import DataConfig, RunConfig, finetune_teacher, run_distill
from tests.conftest import STEPS_PER_EPOCH
from tests.test_runs import TRAIN, distill_config


def _half_written(checkpoints: Path, step: int) -> Path:
    """What a kill during a save leaves: the folder with the first file Trainer writes, config.json."""
    folder = checkpoints / f"checkpoint-{step}"
    folder.mkdir()
    shutil.copy(checkpoints / f"checkpoint-{STEPS_PER_EPOCH}" / "config.json", folder)
    return folder


def _evaluations(record: dict) -> list[dict]:
    return [{k: v for k, v in e.items() if "runtime" not in k and "per_second" not in k} for e in record["evaluations"]]


def test_a_half_written_checkpoint_is_skipped_and_the_run_resumes_from_the_last_whole_one(
        glue_dir, tiny_teacher, tmp_path, ctrl_c_in_epoch_2, capsys):
    config = distill_config(glue_dir, tiny_teacher, tmp_path / "run", resume=True)
    with pytest.raises(KeyboardInterrupt):
        run_distill(config)
    checkpoints = tmp_path / "run" / "checkpoints"
    assert complete(checkpoints / f"checkpoint-{STEPS_PER_EPOCH}")
    broken = _half_written(checkpoints, STEPS_PER_EPOCH + 3)
    assert not complete(broken)
    ctrl_c_in_epoch_2.undo()
    resumed = run_distill(config)  # crashed on the half-written folder before
    assert f"removed checkpoint {broken}" in capsys.readouterr().err
    assert resumed["resumed_from"]["step"] == STEPS_PER_EPOCH
    uninterrupted = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "clean"))
    assert _evaluations(resumed) == _evaluations(uninterrupted)  # same seed, same numbers, interrupted or not
    assert resumed["best"] == uninterrupted["best"]


def test_a_resumed_runs_record_counts_the_time_before_the_interruption(glue_dir, tiny_teacher, tmp_path,
                                                                       ctrl_c_in_epoch_2):
    config = distill_config(glue_dir, tiny_teacher, tmp_path / "run", resume=True)
    with pytest.raises(KeyboardInterrupt):
        run_distill(config)
    ctrl_c_in_epoch_2.undo()
    record = run_distill(config)
    before = record["resumed_from"]["seconds_before"]
    assert before["training"] > 0 and before["evaluation"] > 0  # the first epoch, from the checkpoint's state
    timings = record["timings_s"]
    assert timings["training"] > before["training"] and timings["evaluation"] > before["evaluation"]
    assert timings["total"] > timings["training"] + timings["evaluation"]
    throughput = record["throughput"]
    assert throughput["train_examples"] == 2 * 48  # the whole run's examples ...
    assert throughput["train_examples_per_s"] == pytest.approx(96 / timings["training"], rel=1e-3)  # ... over its time


def test_a_teacher_interrupted_while_saving_does_not_poison_the_cache(glue_dir, tiny_encoder, tmp_path,
                                                                       ctrl_c_in_epoch_2):
    config = RunConfig(data=DataConfig(task="sst2", data_dir=str(glue_dir), max_length=32), student=str(tiny_encoder),
                       teacher_train=replace(TRAIN, seed=3), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(KeyboardInterrupt):
        finetune_teacher(config)
    partial = next((tmp_path / "cache" / "teachers").glob(".*.partial"))
    _half_written(partial / "checkpoints", STEPS_PER_EPOCH + 2)
    ctrl_c_in_epoch_2.undo()
    folder, record, cached = finetune_teacher(config)  # crashed before, for every later run needing this teacher
    assert not cached and record["resumed_from"]["step"] == STEPS_PER_EPOCH
    assert not partial.exists() and (folder / "model.safetensors").is_file()
    distilled = run_distill(RunConfig(data=config.data, train=TRAIN, student="teacher-layers:0", teacher=str(folder),
                                      output_dir=str(tmp_path / "student")))
    assert distilled["teacher"]["best"] == record["best"]


def test_ctrl_c_in_distill_says_what_was_kept_and_the_suggested_resume_works(glue_dir, tiny_teacher, tmp_path,
                                                                             ctrl_c_in_epoch_2, capsys):
    from bench.cli import main

    out = tmp_path / "run"
    args = ["distill", "--task", "sst2", "--data-dir", str(glue_dir), "--teacher", str(tiny_teacher), "--student",
            "teacher-layers:0,2", "--max-length", "32", "--per-device-train-batch-size", "8", "--num-train-epochs",
            "2", "--learning-rate", "1e-3", "--output-dir", str(out)]
    assert main(args) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"kdbench: interrupted: the last checkpoint is kept in {out / 'checkpoints'}; no record was "
                       f"written; add --resume --output-dir {out} to the same command to continue from it")
    assert not any("Traceback" in line for line in err)
    ctrl_c_in_epoch_2.undo()
    assert main([*args, "--resume"]) == 0
    assert json.loads((out / "record.json").read_text())["resumed_from"]["step"] == STEPS_PER_EPOCH
