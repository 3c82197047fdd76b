"""`kdbench rerun`: a run's record runs again, into a new folder, with the same numbers."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from bench.cli import main
from bench.parts.errors import KdbenchError
from bench.pipeline.config import DataConfig, RunConfig
from bench.pipeline.records import RECORD_FILE, evaluation_scores, read_record
from bench.pipeline.runs import RUNS_BY_KIND, finetune_teacher, rerun_config, run_distill
from tests.test_runs import TRAIN, distill_config


def test_rerun_of_a_distill_record_gives_the_same_numbers_in_a_new_folder(glue_dir, tiny_teacher, tmp_path,
                                                                          monkeypatch, capsys):
    original = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "run"))
    stored = (tmp_path / "run" / RECORD_FILE).read_text()
    monkeypatch.chdir(tmp_path)
    assert main(["rerun", str(tmp_path / "run" / RECORD_FILE)]) == 0
    out = capsys.readouterr().out
    [folder] = (tmp_path / "kdbench-results" / "distill" / "sst2").iterdir()  # the default: a new folder
    again = read_record(folder)
    assert again["best"]["value"] == original["best"]["value"]
    assert evaluation_scores(again) == evaluation_scores(original) and len(again["evaluations"]) == 2
    assert tmp_path / again["config"]["output_dir"] == folder
    assert again["config"]["train"] == original["config"]["train"]
    assert (tmp_path / "run" / RECORD_FILE).read_text() == stored  # the original is untouched
    assert f"original {original['best']['value']:.4f}" in out and "equal: the same best score" in out


def test_rerun_of_a_cached_teacher(glue_dir, tiny_encoder, tmp_path):
    config = RunConfig(data=DataConfig(task="sst2", data_dir=str(glue_dir), max_length=32), teacher_train=TRAIN,
                       student=str(tiny_encoder), cache_dir=str(tmp_path / "cache"))
    folder, original, _ = finetune_teacher(config)
    stored, again = rerun_config(folder, tmp_path / "again")
    assert stored["kind"] == "finetune-teacher" and again.teacher_train == TRAIN
    record = RUNS_BY_KIND[stored["kind"]](again)
    assert (tmp_path / "again" / RECORD_FILE).is_file()
    assert evaluation_scores(record) == evaluation_scores(original)


def fake_record(folder, **changes) -> None:
    """A record as runs write it, for what is checked before anything runs."""
    folder.mkdir(parents=True)
    record = {"kind": "distill", "task": "sst2", "config": asdict(RunConfig(output_dir=str(folder))), **changes}
    (folder / RECORD_FILE).write_text(json.dumps(record))


@pytest.mark.parametrize("where, expected", [("run", "is the original run's folder"),
                                             ("other", "holds another run's record")])
def test_rerun_overwrites_no_run(where, expected, tmp_path, capsys):
    fake_record(tmp_path / "run")
    fake_record(tmp_path / "other")
    assert main(["rerun", str(tmp_path / "run"), "--output-dir", str(tmp_path / where)]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("content, expected", [
    (None, "no such run record"),
    ("not json", "not a kdbench run record"),
    ("[1, 2]", "not a kdbench run record"),
    ('{"kind": "distill"}', "not a kdbench run record"),
    ('{"kind": "search", "config": {}}', "not a kdbench run record"),
    ('{"kind": "distill", "task": "sst2", "config": {"learning_rate": 1}}', "does not fit this version"),
])
def test_a_file_that_is_no_record_is_one_line(content, expected, tmp_path, capsys):
    path = tmp_path / RECORD_FILE
    if content is not None:
        path.write_text(content)
    assert main(["rerun", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and str(path) in err and len(err.splitlines()) == 1


def test_rerun_config_keeps_the_stored_settings(tmp_path):
    fake_record(tmp_path / "run", config=asdict(RunConfig(method="eda", method_params={"num_aug": 2},
                                                          output_dir=str(tmp_path / "run"))))
    record, config = rerun_config(tmp_path / "run", tmp_path / "new")
    assert config.method == "eda" and config.method_params == {"num_aug": 2}
    assert config.output_dir == str(tmp_path / "new") and record["kind"] == "distill"
    with pytest.raises(KdbenchError, match="the original run's folder"):
        rerun_config(tmp_path / "run" / RECORD_FILE, tmp_path / "run")


def _scored(value: float, device: dict) -> dict:
    return {"kind": "distill", "task": "sst2", "best": {"metric": "validation_score", "value": value, "step": 4},
            "evaluations": [{"step": 4, "eval_validation_score": value}], "environment": {"device": device}}


def test_rerun_verdict_says_when_numbers_differ_and_whether_the_machine_did():
    from bench.commands.training import rerun_summary

    here = {"type": "cpu", "name": "Xeon", "capability": "AVX512", "threads": 2}
    assert "\nequal: the same best score" in rerun_summary(_scored(0.75, here), _scored(0.75, here), "f")
    same_machine = rerun_summary(_scored(0.75, here), _scored(0.76, here), "f")
    assert "not equal: the best scores differ by +0.010000, the evaluations differ" in same_machine
    assert "ran on" not in same_machine
    other = rerun_summary(_scored(0.75, here), _scored(0.76, {**here, "capability": "AVX2"}), "f")
    assert "'AVX512'" in other and "'AVX2'" in other and "round differently" in other
