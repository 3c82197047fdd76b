"""General distillation on a text file (`kdbench general-kd`, KroneckerBERT's first stage): the student learns
the teacher's states on held-out text, saves without a task head, loads back with its factorisation for a task,
is reused from the cache, and bad text stops with the file and line."""

from __future__ import annotations

import json
import random

import pytest
import torch

from bench.cli import main
from bench.parts.errors import KdbenchError
from bench.parts.models import load_classifier
from bench.parts.kronecker import KroneckerLinear
from bench.parts.tasks import get_task
from bench.pipeline.config import GeneralKDSettings
from bench.pipeline.general_kd import INFO_FILE, general_kd, read_lines
from bench.pipeline.runs import run_distill
from tests.conftest import FILLER, NEGATIVE, POSITIVE
from tests.test_runs import distill_config

KRONECKER = {"mha": "16x16", "ffn": "2x4", "embedding": "4"}  # fits the tiny 32-wide models
SETTINGS = GeneralKDSettings(num_train_epochs=3, learning_rate=3e-3, per_device_train_batch_size=8, eval_lines=10)


@pytest.fixture
def text_file(tmp_path):
    rng = random.Random(3)
    words = FILLER + POSITIVE + NEGATIVE
    path = tmp_path / "text.txt"
    path.write_text("".join(" ".join(rng.choices(words, k=rng.randint(2, 30))) + "\n" + ("\n" if i % 7 == 0 else "")
                            for i in range(80)))
    return path


def test_the_student_learns_the_teachers_states_and_loads_for_a_task(tiny_encoder, text_file, tmp_path):
    folder, cached = general_kd(text_file, str(tiny_encoder), "kronecker", KRONECKER, SETTINGS,
                                cache_dir=tmp_path / "cache")
    info = json.loads((folder / INFO_FILE).read_text())
    assert not cached and info["train_lines"] == 72 and info["eval_lines"] == 8  # a tenth held out, blank lines skipped
    assert info["eval_loss_after"] < 0.9 * info["eval_loss_before"]  # 1.43 -> 1.26 when written
    assert info["layer_map"] == {str(k): k for k in range(5)} or info["layer_map"] == {k: k for k in range(5)}
    student = load_classifier(str(folder), get_task("sst2"))  # a task head of its own, new
    assert isinstance(student.bert.encoder.layer[0].attention.self.query, KroneckerLinear)
    assert student.num_parameters() - sum(p.numel() for p in student.classifier.parameters()) == info["parameters"]
    saved = load_classifier(str(folder), get_task("sst2"))
    for (name, mine), theirs in zip(student.bert.state_dict().items(), saved.bert.state_dict().values()):
        assert torch.equal(mine, theirs), name  # the encoder is what was trained, not a fresh one
    again, cached = general_kd(text_file, str(tiny_encoder), "kronecker", KRONECKER, SETTINGS,
                               cache_dir=tmp_path / "cache")
    assert cached and again == folder


def test_the_second_stage_distils_the_saved_student(tiny_encoder, tiny_teacher, glue_dir, text_file, tmp_path):
    folder, _ = general_kd(text_file, str(tiny_encoder), "kronecker:mha=16x16,ffn=2x4,embedding=4", None,
                           GeneralKDSettings(max_steps=2, eval_lines=5), output_dir=tmp_path / "stage1")
    assert json.loads((folder / INFO_FILE).read_text())["student"] == "kronecker:mha=16x16,ffn=2x4,embedding=4"
    record = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "stage2", student=str(folder),
                                        student_params={}, objective="tinybert"))
    assert record["config"]["model"] == str(folder) and record["best"]["value"] > 0
    assert record["model"]["parameters"] < load_classifier(str(tiny_teacher), get_task("sst2")).num_parameters() / 2


def test_bad_text_stops_with_the_file_and_line(tmp_path, capsys):
    with pytest.raises(KdbenchError, match="text file .*missing.txt not found"):
        read_lines(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nalso fine\n\xff\xfe broken\n")
    with pytest.raises(KdbenchError, match=r"bad.txt, line 3: not UTF-8"):
        read_lines(bad)
    one = tmp_path / "one.txt"
    one.write_text("\n only one \n\n")
    with pytest.raises(KdbenchError, match="has 1 non-empty line"):
        read_lines(one)
    assert read_lines(bad, max_lines=2) == ["fine", "also fine"]  # stops before the bad line
    assert main(["general-kd", str(tmp_path / "missing.txt")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["general-kd", str(one), "--student", "kronecker", "--student-param", "mha=7"]) == 2
    assert "two integers n1xm1" in capsys.readouterr().err  # checked before any model is loaded
