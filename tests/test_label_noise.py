"""Label noise on the training set: exact seeded rate, only train labels changed, the two noise types,
regression refused, the run record, the teacher on clean or noisy labels, the CLI and ablation specs."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from ablations.spec import parse_spec
from ablations.study import TaskSetup, run_config
from bench.cli import main
from bench.parts.errors import KdbenchError
from bench.pipeline.config import DataConfig, RunConfig, identity
from bench.pipeline.data import load_data
from bench.pipeline.records import read_record
from bench.pipeline.runs import run_distill
from tests.test_runs import TRAIN, distill_config

N_TRAIN = 48  # the tiny SST-2 train split of conftest.write_sst2


def sst2(glue_dir, **noise) -> DataConfig:
    return DataConfig(task="sst2", data_dir=str(glue_dir), **noise)


def three_classes(tmp_path, **noise) -> DataConfig:
    """An own task of 60 examples in classes a, b, c (20 each)."""
    path = tmp_path / "three.jsonl"
    path.write_text("".join(json.dumps({"text": f"example {i}", "label": "abc"[i % 3]}) + "\n" for i in range(60)))
    return DataConfig(train_file=str(path), validation_file=str(path), text_columns="text", **noise)


def changed_rows(clean, noisy) -> list[int]:
    return [i for i, (a, b) in enumerate(zip(clean["label"], noisy["label"])) if a != b]


def test_exact_rate_seeded_and_recorded(glue_dir):
    clean = load_data(sst2(glue_dir)).splits["train"]
    data = load_data(sst2(glue_dir, label_noise=0.2, label_noise_seed=3))
    rows = changed_rows(clean, data.splits["train"])
    assert len(rows) == round(0.2 * N_TRAIN) == 10
    assert data.label_noise == {"rate": 0.2, "type": "uniform", "seed": 3, "realised_rate": 10 / N_TRAIN,
                                "corrupted": 10, "rows": rows}
    again = load_data(sst2(glue_dir, label_noise=0.2, label_noise_seed=3)).splits["train"]
    assert again["label"] == data.splits["train"]["label"]
    other = load_data(sst2(glue_dir, label_noise=0.2, label_noise_seed=4)).splits["train"]
    assert len(changed_rows(clean, other)) == 10 and changed_rows(clean, other) != rows


def test_only_train_labels_change(glue_dir):
    clean, noisy = load_data(sst2(glue_dir)), load_data(sst2(glue_dir, label_noise=0.5))
    assert clean.label_noise is None
    assert noisy.splits["validation"][:] == clean.splits["validation"][:]
    assert noisy.splits["train"]["text_a"] == clean.splits["train"]["text_a"]
    assert noisy.splits["train"].features == clean.splits["train"].features


def test_noise_after_the_subset(glue_dir):
    data = load_data(sst2(glue_dir, max_train_examples=20, label_noise=0.25))
    assert len(data.splits["train"]) == 20 and data.label_noise["corrupted"] == 5


def test_uniform_never_keeps_the_label_and_reaches_every_other_class(tmp_path):
    clean = load_data(three_classes(tmp_path)).splits["train"]["label"]
    noisy = load_data(three_classes(tmp_path, label_noise=0.9)).splits["train"]["label"]
    rows = [i for i in range(60) if clean[i] != noisy[i]]
    assert len(rows) == 54  # every chosen label changed
    assert {(noisy[i] - clean[i]) % 3 for i in rows} == {1, 2}


def test_class_conditional_flips_c_to_c_plus_one(tmp_path):
    clean = load_data(three_classes(tmp_path)).splits["train"]["label"]
    data = load_data(three_classes(tmp_path, label_noise=0.5, label_noise_type="class-conditional"))
    noisy = data.splits["train"]["label"]
    assert all(noisy[i] == (clean[i] + 1) % 3 for i in data.label_noise["rows"])
    assert sum(a != b for a, b in zip(clean, noisy)) == 30


def test_regression_is_refused(glue_dir):
    with pytest.raises(KdbenchError, match="label noise needs a classification task"):
        load_data(DataConfig(task="stsb", data_dir=str(glue_dir), label_noise=0.1))


def test_record_lists_the_noise(glue_dir, tiny_teacher, tmp_path):
    data = DataConfig(task="sst2", data_dir=str(glue_dir), max_length=32, label_noise=0.2)
    record = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "run", data=data))
    noise = record["data"]["label_noise"]
    assert noise["corrupted"] == 10 and noise["realised_rate"] == 10 / N_TRAIN and len(noise["rows"]) == 10
    assert record["config"]["data"]["label_noise"] == 0.2


@pytest.mark.parametrize("clean", [False, True])
def test_teacher_on_noisy_or_clean_labels(clean, glue_dir, tiny_encoder, tmp_path):
    data = DataConfig(task="sst2", data_dir=str(glue_dir), max_length=32, label_noise=0.2)
    short = replace(TRAIN, num_train_epochs=1)
    config = RunConfig(data=data, train=short, teacher_train=short,
                       student="teacher-layers:0", teacher=str(tiny_encoder), finetune_teacher=True,
                       teacher_clean_labels=clean, output_dir=str(tmp_path / "run"))
    record = run_distill(config)
    teacher_noise = read_record(record["teacher"]["folder"])["data"]["label_noise"]
    assert record["data"]["label_noise"]["corrupted"] == 10
    assert teacher_noise == (None if clean else record["data"]["label_noise"])


def test_teacher_clean_labels_needs_finetune_teacher():
    with pytest.raises(KdbenchError, match="teacher_clean_labels needs finetune_teacher"):
        RunConfig(teacher_clean_labels=True)


def test_identity_keeps_old_names_at_defaults():
    plain = identity(RunConfig())
    assert "teacher_clean_labels" not in plain and "label_noise" not in plain["data"]
    noisy = identity(RunConfig(data=DataConfig(label_noise=0.1), finetune_teacher=True, teacher_clean_labels=True))
    assert noisy["teacher_clean_labels"] and noisy["data"]["label_noise"] == 0.1
    assert "label_noise_type" not in noisy["data"]


@pytest.mark.parametrize("option", [["--label-noise", "1.5"], ["--label-noise-type", "flip"]])
def test_cli_refuses_bad_noise(option, tmp_path, capsys):
    assert main(["distill", "--teacher", str(tmp_path), *option]) == 2
    assert "label_noise" in capsys.readouterr().err


def test_ablation_sweeps_label_noise():
    spec = parse_spec({"tasks": ["sst2"], "sweep": {"parameter": "data.label_noise", "values": [0, 0.2]}}, name="x")
    assert [v.data for v in spec.variants] == [{"label_noise": 0.0}, {"label_noise": 0.2}]
    setup = TaskSetup(DataConfig(max_length=64), "teacher", None)
    assert run_config(spec, setup, spec.variants[1], cache_dir=None).data == DataConfig(max_length=64, label_noise=0.2)
    variants = {"variants": [{"label": "noisy", "data": {"label_noise": 0.3, "label_noise_type": "class-conditional"}}]}
    assert parse_spec({"tasks": ["sst2"], **variants}, name="x").variants[0].data["label_noise"] == 0.3
    with pytest.raises(KdbenchError, match="label_noise must be in"):
        parse_spec({"tasks": ["sst2"], "sweep": {"parameter": "data.label_noise", "values": [1.0]}}, name="x")
