"""universal-kd (our reconstruction of Universal-KD): the attention over teacher layers sums to 1 and follows
the [CLS] states, the pseudo-logits' term by hand, the teacher's heads trained on the frozen teacher before the
student, and a whole run that reports what the attention did."""

from __future__ import annotations

import datasets
import pytest
import torch

from bench.parts.context import Batch, TrainingContext
from bench.parts.kd_config import KDConfig
from bench.parts.losses import kd_divergence
from bench.parts.models import load_classifier, load_tokenizer
from bench.parts.outputs import Outputs
from bench.parts.tasks import get_task
from bench.pipeline.runs import run_distill
from objectives import get_objective
from objectives.universal_kd import heads, layer_attention
from tests.test_runs import distill_config

SST2 = get_task("sst2")


def objective(teacher=None, tokenizer=None, **params):
    spec = get_objective("universal-kd")
    context = TrainingContext(SST2, 10, "t", teacher_model=teacher, tokenizer=tokenizer,
                              kd=KDConfig(alpha_kd=0.0, alpha_ce=1.0))
    return spec.implementation(spec.parse_params(params), context)


def test_each_student_layers_attention_sums_to_1_and_favours_the_closest_teacher_layer():
    teacher = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]])  # 3 teacher layers' [CLS] states
    student = torch.tensor([[[4.0, 0.0], [0.0, 4.0]]])
    weights = layer_attention(student, teacher)
    assert weights.shape == (1, 2, 3) and weights.sum(-1)[0].tolist() == pytest.approx([1.0, 1.0])
    assert weights[0, 0].argmax() == 0 and weights[0, 1].argmax() == 1
    expected = torch.softmax(torch.tensor([4.0, 0.0, -4.0]) / 2 ** 0.5, -1)
    assert weights[0, 0].tolist() == pytest.approx(expected.tolist())


def test_the_pseudo_logits_term_by_hand():
    torch.manual_seed(0)
    hidden = lambda layers: tuple(torch.randn(2, 3, 4) for _ in range(layers + 1))  # noqa: E731
    student, teacher = Outputs(torch.randn(2, 2), hidden(2)), Outputs(torch.randn(2, 2), hidden(3))
    universal = objective(beta=2.0, temperature=3.0)
    universal.teacher_heads = heads(3, 4, 2, seed=5, device=torch.device("cpu"))
    batch = Batch({}, torch.tensor([0, 1]), teacher.logits, student=student, teacher=teacher)
    loss = universal.intermediate(batch)
    student_heads = universal.student_heads
    expected = []
    with torch.no_grad():  # the hand computation
        for i in range(2):
            total = 0.0
            t_states = [teacher.hidden_states[j][i, 0] for j in (1, 2, 3)]
            t_logits = torch.stack([universal.teacher_heads[j](t_states[j]) for j in range(3)])
            for k in range(2):
                s_state = student.hidden_states[k + 1][i, 0]
                scores = torch.stack([s_state @ t for t in t_states]) / 2.0  # sqrt(width 4)
                target = torch.softmax(scores, 0) @ t_logits
                total += float(kd_divergence(student_heads[k](s_state)[None], target[None], temperature=3.0,
                                             regression=False))
            expected.append(2.0 * total / 2)
    assert loss.tolist() == pytest.approx(expected, rel=1e-5)
    assert len(universal.context.optimizers) == 1  # the student's heads train beside it
    assert universal.report()["attention_by_student_layer"] is not None


def test_the_teacher_heads_learn_on_the_frozen_teacher_before_the_student(tiny_teacher):
    tokenizer = load_tokenizer(str(tiny_teacher))
    teacher = load_classifier(str(tiny_teacher), SST2).eval().requires_grad_(False)
    before = [p.clone() for p in teacher.parameters()]
    words = ["good", "great", "fine", "bad", "awful", "poor"]
    rows = datasets.Dataset.from_dict({"labels": [int(i >= 3) for i in range(6)] * 8,
                                       **tokenizer([f"a {w} film" for w in words] * 8)})
    universal = objective(teacher, tokenizer, teacher_head_epochs=30, head_lr=0.1)
    assert universal.held_out(rows) is rows
    assert len(universal.teacher_heads) == 4 and universal.head_losses[-1] < 0.5 * universal.head_losses[0]
    assert all(torch.equal(p, q) for p, q in zip(before, teacher.parameters()))  # the teacher itself untouched
    assert not any(p.requires_grad for p in universal.teacher_heads.parameters())


def test_a_run_distils_with_universal_kd(glue_dir, tiny_teacher, tmp_path):
    record = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "run", objective="universal-kd",
                                        objective_params={"teacher_head_epochs": 1}))
    measured = record["objective_info"]["measured"]
    assert len(measured["teacher_head_losses"]) == 1
    attention = measured["attention_by_student_layer"]
    assert len(attention) == 2 and all(len(row) == 4 and sum(row) == pytest.approx(1.0, abs=1e-3) for row in attention)
