"""The teacher is never trained by a student run: after training with each in-loop method (the ones that
run the teacher inside the step), no teacher weight holds a gradient and none is trainable."""

from __future__ import annotations

import pytest

import bench.pipeline.runs
from bench.pipeline.runs import run_distill
from methods import list_methods, takes_generator
from tests.test_runs import distill_config

IN_LOOP = [method.name for method in list_methods() if method.kind == "in-loop"]


@pytest.mark.parametrize("method", ["none", *IN_LOOP])
def test_no_teacher_weight_has_a_gradient_after_training(method, glue_dir, tiny_teacher, tiny_generator, tmp_path,
                                                         monkeypatch):
    teachers = []
    real = bench.pipeline.runs.load_classifier

    def load(*args, **kwargs):
        model = real(*args, **kwargs)
        teachers.append(model)
        return model

    monkeypatch.setattr(bench.pipeline.runs, "load_classifier", load)
    params = {"generator": str(tiny_generator), "generator_steps": 2, "student_steps": 1} if takes_generator(method) else {}
    record = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "run", method=method, method_params=params))
    (teacher,) = teachers
    assert record["throughput"]["global_steps"] == 12
    assert not [name for name, p in teacher.named_parameters() if p.grad is not None or p.requires_grad]
    assert not teacher.training
