"""The harness end to end on a tiny model: records, determinism, baselines, regression, bad input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from transformers import TrainerCallback

import bench.pipeline.runs
from bench.cli import main
from bench.pipeline.config import TrainConfig
from bench.pipeline.records import RECORD_FILE
from bench.pipeline.runs import DataConfig, RunConfig, finetune_teacher, run_distill, run_finetune

TRAIN = TrainConfig(learning_rate=1e-3, per_device_train_batch_size=8, per_device_eval_batch_size=16,
                    num_train_epochs=2, logging_steps=2)


def distill_config(glue_dir: Path, teacher: Path, out: Path, **changes) -> RunConfig:
    config = RunConfig(data=DataConfig(task="sst2", data_dir=str(glue_dir), max_length=32), train=TRAIN,
                       student="teacher-layers:0,2", teacher=str(teacher), output_dir=str(out))
    return replace(config, **changes)


def test_distill_writes_a_complete_record(glue_dir, tiny_teacher, tmp_path):
    record = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "run"))
    on_disk = json.loads((tmp_path / "run" / RECORD_FILE).read_text())
    assert on_disk["best"] == json.loads(json.dumps(record["best"]))
    assert on_disk["kind"] == "distill" and on_disk["seed"] == 42 and on_disk["method"] == "none"
    assert on_disk["config"]["train"]["learning_rate"] == 1e-3
    assert [e["epoch"] for e in on_disk["evaluations"]] == [1.0, 2.0]
    assert on_disk["best"]["value"] == max(e["eval_validation_score"] for e in on_disk["evaluations"])
    assert on_disk["best"]["step"] in (6, 12)
    assert {"data", "teacher_inference", "training", "evaluation", "total"} <= set(on_disk["timings_s"])
    assert all(v >= 0 for v in on_disk["timings_s"].values())
    assert on_disk["throughput"]["train_examples"] == 96 and on_disk["throughput"]["train_examples_per_s"] > 0
    assert on_disk["peak_memory"]["cpu_rss_mb"] > 0
    env = on_disk["environment"]
    assert env["packages"]["torch"] and env["packages"]["transformers"] and env["device"]["type"] == "cpu"
    assert on_disk["teacher"]["outputs_cache_hit"] is False
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert not (tmp_path / "run" / "checkpoints").exists()
    dev = on_disk["predictions"]["validation"]  # each dev example, at the kept weights
    assert dev["ids"] == list(range(24)) and set(dev["labels"]) == {0, 1} and set(dev["predictions"]) <= {0, 1}
    accuracy = sum(p == y for p, y in zip(dev["predictions"], dev["labels"])) / 24
    assert accuracy == pytest.approx(on_disk["best"]["value"])


def test_same_seed_same_numbers_and_the_cache_is_reused(glue_dir, tiny_teacher, tmp_path):
    first = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "a"))
    second = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "b"))
    assert second["teacher"]["outputs_cache_hit"] is True
    strip = lambda record: [{k: v for k, v in e.items() if "runtime" not in k and "per_second" not in k}
                            for e in record["evaluations"]]
    assert strip(first) == strip(second)
    other = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "c", train=replace(TRAIN, seed=7)))
    assert strip(other) != strip(first)


class Evaluations(TrainerCallback):
    """Keeps the metrics of each evaluation it is told of."""

    def __init__(self):
        self.seen = []

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.seen.append(dict(metrics))


@pytest.mark.parametrize("run", [run_distill, run_finetune])
def test_a_callback_sees_every_evaluation(run, glue_dir, tiny_teacher, tmp_path):
    callback = Evaluations()
    record = run(distill_config(glue_dir, tiny_teacher, tmp_path / "run"), callbacks=[callback])
    assert [m["eval_validation_score"] for m in callback.seen] == [e["eval_validation_score"]
                                                                  for e in record["evaluations"]]
    assert len(callback.seen) == 2


def test_no_kd_baseline_starts_from_the_same_student(glue_dir, tiny_teacher, tmp_path):
    record = run_finetune(distill_config(glue_dir, tiny_teacher, tmp_path / "ft"))
    assert record["kind"] == "finetune" and "teacher" not in record
    assert record["model"]["layers"] == 2
    assert (tmp_path / "ft" / RECORD_FILE).is_file()


def test_regression_task_from_a_pretrained_encoder(glue_dir, tiny_encoder, tmp_path):
    """STS-B end to end: teacher fine-tuned (cached) from an encoder, then MSE distillation."""
    config = RunConfig(data=DataConfig(task="stsb", data_dir=str(glue_dir), max_length=32), train=TRAIN,
                       teacher_train=TRAIN, student="teacher-layers:1", teacher=str(tiny_encoder),
                       finetune_teacher=True, output_dir=str(tmp_path / "stsb"), cache_dir=str(tmp_path / "cache"))
    record = run_distill(config)
    assert set(record["best"]["metrics"]) >= {"validation_pearson", "validation_spearmanr", "validation_score"}
    assert record["model"]["layers"] == 1
    dev = record["predictions"]["validation"]
    assert len(dev["predictions"]) == len(dev["labels"]) == 16 and isinstance(dev["predictions"][0], float)
    folder, teacher_record, cached = finetune_teacher(replace(config, student=str(tiny_encoder), student_params={}, output_dir=None))
    assert cached and Path(record["teacher"]["folder"]) == folder
    assert teacher_record["kind"] == "finetune-teacher"
    left = [p.name for p in folder.parent.iterdir() if p.suffix != ".lock"]
    assert left == [folder.name]  # no partial folder left behind


def test_an_interrupted_run_leaves_no_record(glue_dir, tiny_teacher, tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench.pipeline.runs, "write_record", crash)
    with pytest.raises(KeyboardInterrupt):
        run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "run"))
    assert not (tmp_path / "run" / RECORD_FILE).exists()
    assert not list((tmp_path / "run").glob(f".{RECORD_FILE}*"))


def test_cli_distill_runs_and_prints_the_best_score(glue_dir, tiny_teacher, tmp_path, capsys):
    code = main(["distill", "--task", "sst2", "--data-dir", str(glue_dir), "--teacher", str(tiny_teacher),
                 "--student", "teacher-layers:0", "--max_length", "32", "--num-train-epochs", "1",
                 "--per-device-train-batch-size", "16", "--temperature", "2", "--alpha-ce", "0.5",
                 "--output-dir", str(tmp_path / "cli")])
    assert code == 0
    assert "best validation_score" in capsys.readouterr().out
    record = json.loads((tmp_path / "cli" / RECORD_FILE).read_text())
    assert record["config"]["kd"] == {"temperature": 2.0, "alpha_kd": 1.0, "alpha_ce": 0.5}


@pytest.mark.parametrize("argv, expected", [
    (["distill", "--task", "sst", "--teacher", "x"], "unknown task 'sst': did you mean sst2"),
    (["distill", "--task", "rte", "--teacher", "x", "--method", "nnoe"], "unknown method 'nnoe': did you mean none"),
    (["distill", "--task", "rte", "--teacher", "x", "--alpha-kd", "0"], "both 0"),
])
def test_bad_names_fail_fast_with_one_line_and_exit_2(argv, expected, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1


def test_missing_model_is_one_line_exit_2(glue_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("bench.parts.models.hub_reachable", lambda: False)
    code = main(["finetune-teacher", "--task", "sst2", "--data-dir", str(glue_dir), "--model", "bert-base-uncasd"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "hub is unreachable" in err and len(err.splitlines()) == 1


def test_malformed_data_names_file_and_line(glue_dir, tiny_teacher, tmp_path, capsys):
    dev = glue_dir / "SST-2" / "dev.tsv"
    dev.write_text(dev.read_text() + "a sentence with no label\n")
    line = len(dev.read_text().splitlines())
    code = main(["distill", "--task", "sst2", "--data-dir", str(glue_dir), "--teacher", str(tiny_teacher),
                 "--output-dir", str(tmp_path / "x")])
    assert code == 2 and f"{dev}:{line}:" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
