"""pro-kd (provisional): a teacher's fine-tuning keeps its trajectory, the student distils from checkpoint j in
phase j and from the run's teacher last, checkpoints are chosen evenly, and what cannot run is refused."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from bench.parts.context import Batch, TrainingContext
from bench.parts.errors import KdbenchError
from bench.parts.kd_config import KDConfig
from bench.parts.losses import kd_loss
from bench.parts.tasks import get_task
from bench.pipeline.choice import choose_parts
from bench.pipeline.config import DataConfig, RunConfig
from bench.pipeline.runs import finetune_teacher, run_distill
from objectives import get_objective
from tests.test_runs import TRAIN, distill_config

KD = KDConfig(temperature=2.0)


def pro_kd(teacher, steps: int = 100, **params):
    spec = get_objective("pro-kd")
    context = TrainingContext(get_task("sst2"), 4, str(teacher), kd=KD)
    context.state = SimpleNamespace(global_step=0, max_steps=steps, epoch=0.0)
    context.teacher_logits_of = lambda folder: logits_of_step(float(folder.rpartition("-")[2])).repeat(2, 1)
    return spec.implementation(spec.parse_params(params), context)


def logits_of_step(step: float) -> torch.Tensor:
    """A checkpoint's logits for each of 2 rows, told apart by the step it was saved at."""
    return torch.tensor([[step / 10, -step / 10], [-step / 20, step / 20]])


def trajectory_folder(tmp_path, steps):
    for step in steps:
        (tmp_path / "trajectory" / f"step-{step}").mkdir(parents=True)
    return tmp_path


def test_phase_j_distils_from_checkpoint_j_and_the_last_from_the_runs_teacher(tmp_path):
    objective = pro_kd(trajectory_folder(tmp_path, [10, 20, 30]))
    student = torch.tensor([[0.5, -0.5], [1.0, 2.0]])
    batch = Batch({}, torch.tensor([0, 1]), torch.tensor([[9.0, -9.0], [9.0, -9.0]]), torch.tensor([3, 0]))
    seen = []
    for step in (0, 24, 25, 49, 50, 74, 75, 99):  # 4 phases of 25 steps: checkpoints 10, 20, 30, then the teacher
        objective.context.state.global_step = step
        loss = objective.loss(student, batch)
        for target in (10.0, 20.0, 30.0, None):
            teacher = batch.teacher_logits if target is None else logits_of_step(target)[[1, 0]]  # rows 3, 0
            if torch.allclose(loss, kd_loss(student, teacher, batch.labels, temperature=2.0, alpha_kd=1.0,
                                            alpha_ce=0.0, regression=False)):
                seen.append(target)
    assert seen == [10.0, 10.0, 20.0, 20.0, 30.0, 30.0, None, None]
    assert objective.report()["phase_start_steps"] == [0, 25, 50, 75]


def test_checkpoints_are_chosen_evenly_and_the_final_phase_can_be_left_out(tmp_path):
    teacher = trajectory_folder(tmp_path, [5, 10, 15, 20])
    assert [p.name for p in pro_kd(teacher, checkpoints=2).folders] == ["step-10", "step-20"]
    objective = pro_kd(teacher, checkpoints=2, final_phase=False)
    assert objective.phases == 2
    objective.context.state.global_step = 99
    assert objective.phase() == 1


def test_a_teacher_without_a_trajectory_or_a_slot_selector_is_refused(tmp_path):
    with pytest.raises(KdbenchError, match="has none: fine-tune it with `kdbench finetune-teacher --save-trajectory"):
        pro_kd(tmp_path)
    with pytest.raises(KdbenchError, match="checkpoints 3, but"):
        pro_kd(trajectory_folder(tmp_path, [1, 2]), checkpoints=3)
    with pytest.raises(KdbenchError, match="selector glitter puts other rows in a batch's places"):
        choose_parts(RunConfig(method="eda", selector="glitter", objective="pro-kd"))


def test_a_fine_tuning_keeps_its_trajectory_and_a_student_follows_it(glue_dir, tiny_encoder, tmp_path, capsys):
    data = DataConfig(task="sst2", data_dir=str(glue_dir), max_length=32)
    folder, record, _ = finetune_teacher(RunConfig(data=data, student=str(tiny_encoder), teacher_train=TRAIN,
                                                   teacher_trajectory=2, cache_dir=str(tmp_path / "cache")))
    steps = record["throughput"]["global_steps"]
    assert record["trajectory"] == [f"trajectory/step-{steps // 2}", f"trajectory/step-{steps}"]
    assert all((folder / path / "model.safetensors").is_file() for path in record["trajectory"])
    plain, _, _ = finetune_teacher(RunConfig(data=data, student=str(tiny_encoder), teacher_train=TRAIN,
                                             cache_dir=str(tmp_path / "cache")))
    assert plain != folder and not (plain / "trajectory").exists()  # a teacher without one keeps its own entry
    distilled = run_distill(distill_config(glue_dir, folder, tmp_path / "run", objective="pro-kd",
                                           cache_dir=str(tmp_path / "cache")))
    measured = distilled["objective_info"]["measured"]
    assert measured["checkpoints"] == [f"step-{steps // 2}", f"step-{steps}"]
    assert None not in measured["phase_start_steps"] and len(measured["phase_start_steps"]) == 3
    assert capsys.readouterr().out.count("teacher outputs of") == 2


def test_a_spec_keeps_a_trajectory_only_of_a_teacher_it_fine_tunes():
    from ablations.spec import load_spec, parse_spec

    spec = load_spec("ablations/pro-kd.toml")
    assert spec.teacher_trajectory == 4 and [v.objective for v in spec.variants] == ["kd", "pro-kd"]
    with pytest.raises(KdbenchError, match="teacher_trajectory needs finetune_teacher"):
        parse_spec({"tasks": ["sst2"], "teacher": "t", "finetune_teacher": False, "teacher_trajectory": 2,
                    "variants": [{"label": "x"}]}, name="s")
