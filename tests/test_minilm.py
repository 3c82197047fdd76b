"""Integration on the real pre-trained MiniLM (offline copy): teacher fine-tuning, then KD into
a 3-layer student taken from it, on a few dozen examples."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.parts.models import MINILM
from bench.pipeline.config import TrainConfig
from bench.pipeline.runs import DataConfig, RunConfig, finetune_teacher, run_distill
from tests.conftest import write_sst2


@pytest.mark.slow
def test_minilm_teacher_and_kd_student_learn_the_task(tmp_path):
    glue = write_sst2(tmp_path / "glue", n_train=48, n_dev=32)
    data = DataConfig(task="sst2", data_dir=str(glue), max_length=32)
    train = TrainConfig(learning_rate=1e-4, per_device_train_batch_size=16, num_train_epochs=3, logging_steps=3)
    teacher_dir, teacher_record, cached = finetune_teacher(RunConfig(data=data, student=MINILM, teacher_train=train))
    assert not cached and teacher_record["model"]["layers"] == 6
    # a real pre-trained encoder picks up sentiment words from 48 examples; chance is 0.5
    assert teacher_record["best"]["metrics"]["validation_accuracy"] >= 0.8
    # the cache is keyed by weights, not names: the alias finds the same teacher
    alias_dir, _, alias_cached = finetune_teacher(RunConfig(data=data, student="minilm", teacher_train=train))
    assert (alias_dir, alias_cached) == (teacher_dir, True)

    student_train = replace(train, learning_rate=3e-4)  # 9 steps: the 3-layer student needs a higher rate
    record = run_distill(RunConfig(data=data, train=student_train, student="teacher-layers:0,2,4", teacher=str(teacher_dir),
                                   output_dir=str(tmp_path / "kd")))
    assert record["model"] == {"parameters": record["model"]["parameters"], "layers": 3, "hidden_size": 384}
    assert record["teacher"]["best"]["value"] == teacher_record["best"]["value"]
    assert record["best"]["metrics"]["validation_accuracy"] >= 0.7
