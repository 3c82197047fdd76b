"""Bad data files and damaged models: one line naming the file (and line), exit code 2, before any
teacher work."""

from __future__ import annotations

import shutil

import pytest

import bench.pipeline.runs
from bench.cli import main


def _distill(glue_dir, teacher, tmp_path) -> list[str]:
    return ["distill", "--task", "sst2", "--data-dir", str(glue_dir), "--teacher", str(teacher),
            "--output-dir", str(tmp_path / "run"), "--max-length", "32"]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def no_teacher_work(monkeypatch):
    """Fail the test if the teacher is asked for anything: a data error must stop the run before."""
    def forbidden(*args, **kwargs):
        raise AssertionError("teacher work started before the data was checked")

    monkeypatch.setattr(bench.pipeline.runs, "load_classifier", forbidden)


@pytest.mark.parametrize("content", ["", "sentence\tlabel\n"], ids=["empty", "header-only"])
def test_a_training_file_without_examples_is_one_line(content, glue_dir, tiny_teacher, tmp_path, capsys,
                                                      no_teacher_work):
    train = glue_dir / "SST-2" / "train.tsv"
    train.write_text(content)
    assert main(_distill(glue_dir, tiny_teacher, tmp_path)) == 2
    assert _one_line_error(capsys) == (f"kdbench: error: {train}: no examples (the file is empty or holds only its "
                                       "header); give a file with at least one example")
    assert not (tmp_path / "run").exists()


def test_undecodable_bytes_are_reported_with_their_line(glue_dir, tiny_teacher, tmp_path, capsys, no_teacher_work):
    train = glue_dir / "SST-2" / "train.tsv"
    lines = train.read_bytes().splitlines(keepends=True)
    lines[30] = lines[30].replace(b"the", b"th\xe9")  # Latin-1, not UTF-8
    train.write_bytes(b"".join(lines))
    assert main(_distill(glue_dir, tiny_teacher, tmp_path)) == 2
    err = _one_line_error(capsys)
    assert err.startswith(f"kdbench: error: {train}:31: not UTF-8 text") and "save the file as UTF-8" in err


def test_undecodable_bytes_in_json_lines_are_reported_with_their_line(tiny_teacher, tmp_path, capsys,
                                                                    no_teacher_work):
    data = tmp_path / "train.jsonl"
    data.write_bytes(b'{"text": "fine", "label": "a"}\n{"text": "caf\xe9", "label": "b"}\n')
    assert main(["distill", "--teacher", str(tiny_teacher), "--train-file", str(data), "--validation-file", str(data),
                 "--text-columns", "text"]) == 2
    assert _one_line_error(capsys).startswith(f"kdbench: error: {data}:2: not UTF-8 text")


@pytest.mark.parametrize("damage", ["truncated", "garbled header"])
def test_a_damaged_weights_file_is_one_line(damage, glue_dir, tiny_teacher, tmp_path, capsys):
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_teacher, teacher)
    weights = teacher / "model.safetensors"
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    else:
        weights.write_bytes(b"\xff" * 8 + weights.read_bytes()[8:])
    assert main(_distill(glue_dir, teacher, tmp_path)) == 2
    err = _one_line_error(capsys)
    assert err.startswith(f"kdbench: error: cannot load model '{teacher}': its weights file is damaged or truncated")
