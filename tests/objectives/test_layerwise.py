"""The intermediate-layer objectives `pkd` and `tinybert`: their terms by hand on small tensors (the layer
pairs each takes, [CLS] or every real token, normalised or not, padding left out), the learned projection
of a narrower student, the layer map from `--layer-map`, and whole runs that train with them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bench.parts.context import Batch, TrainingContext
from bench.parts.errors import KdbenchError
from bench.parts.kd_config import KDConfig
from bench.parts.losses import kd_divergence
from bench.parts.outputs import Outputs
from bench.parts.tasks import get_task
from bench.pipeline.config import RunConfig
from bench.pipeline.runs import run_distill
from objectives import get_objective
from tests.test_runs import distill_config

# student hidden states 0..3 (3 layers) on teacher states 0..6; the last student layer on the teacher's last
LAYER_MAP = {0: 0, 1: 2, 2: 4, 3: 6}
BATCH, LENGTH, HEADS = 2, 4, 2
MASK = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
KD = KDConfig(temperature=2.0, alpha_kd=0.5, alpha_ce=0.5)


def objective(name: str, layer_map=LAYER_MAP, **params):
    spec = get_objective(name)
    context = TrainingContext(get_task("sst2"), 10, "t", kd=KD, layer_map=dict(layer_map))
    return spec.implementation(spec.parse_params(params), context)


def outputs(layers: int, width: int, seed: int) -> Outputs:
    generator = torch.Generator().manual_seed(seed)
    hidden = tuple(torch.randn(BATCH, LENGTH, width, generator=generator) for _ in range(layers + 1))
    attentions = tuple(torch.softmax(torch.randn(BATCH, HEADS, LENGTH, LENGTH, generator=generator), -1)
                       for _ in range(layers))
    return Outputs(torch.randn(BATCH, 2, generator=generator), hidden, attentions)


def batch(student_width: int = 8) -> Batch:
    student, teacher = outputs(3, student_width, seed=1), outputs(6, 8, seed=2)
    return Batch({"attention_mask": MASK}, torch.tensor([0, 1]), teacher.logits, student=student, teacher=teacher)


def logit_term(b: Batch) -> torch.Tensor:
    return (0.5 * kd_divergence(b.student.logits, b.teacher_logits, temperature=2.0, regression=False)
            + 0.5 * F.cross_entropy(b.student.logits, b.labels, reduction="none"))


def test_pkd_matches_normalised_cls_states_of_the_intermediate_layers_by_hand():
    b = batch()
    loss = objective("pkd", beta=10.0).loss(b.student.logits, b)
    expected = []
    for i in range(BATCH):
        total = 0.0
        for s, t in ((1, 2), (2, 4)):  # not the embeddings, not the student's last layer
            student, teacher = b.student.hidden_states[s][i, 0], b.teacher.hidden_states[t][i, 0]
            total += float(((student / student.norm() - teacher / teacher.norm()) ** 2).sum())
        expected.append(10.0 * total / (2 * 8))  # the mean over layers and hidden units
    assert (loss - logit_term(b)).tolist() == pytest.approx(expected, rel=1e-5)
    unnormalised = objective("pkd", beta=1.0, normalize=False).intermediate(b)
    student = torch.stack([b.student.hidden_states[s][:, 0] for s in (1, 2)], 1)
    teacher = torch.stack([b.teacher.hidden_states[t][:, 0] for t in (2, 4)], 1)
    assert unnormalised.tolist() == pytest.approx(((student - teacher) ** 2).mean(dim=(1, 2)).tolist(), rel=1e-5)


def test_pkd_with_one_student_layer_or_beta_0_is_the_logit_loss():
    b = batch()
    assert objective("pkd", beta=0.0).loss(b.student.logits, b).tolist() == pytest.approx(logit_term(b).tolist())
    assert objective("pkd", layer_map={0: 0, 1: 6}).intermediate(b).tolist() == [0.0, 0.0]


def test_tinybert_matches_every_real_tokens_states_and_attention_by_hand():
    b = batch()
    loss = objective("tinybert", hidden_weight=2.0, attention_weight=3.0).loss(b.student.logits, b)
    expected = []
    for i in range(BATCH):
        real = int(MASK[i].sum())
        hidden = sum(float(((b.student.hidden_states[s][i, :real] - b.teacher.hidden_states[t][i, :real]) ** 2).mean())
                     for s, t in LAYER_MAP.items())  # the embeddings and every layer, the last included
        attention = sum(float(((b.student.attentions[s - 1][i, :, :real, :real]
                                - b.teacher.attentions[t - 1][i, :, :real, :real]) ** 2).mean())
                        for s, t in LAYER_MAP.items() if s)
        expected.append(2.0 * hidden + 3.0 * attention)
    assert (loss - logit_term(b)).tolist() == pytest.approx(expected, rel=1e-5)


def test_padding_does_not_change_the_layer_terms():
    b, changed = batch(), batch()
    for states in (changed.student.hidden_states, changed.teacher.hidden_states):
        for layer in states:
            layer[1, 2:] = 100.0  # the second example's padded positions
    for layer in changed.student.attentions:
        layer[1, :, 2:] = 0.5  # padded queries
    first, second = objective("tinybert").intermediate(b), objective("tinybert").intermediate(changed)
    assert second.tolist() == pytest.approx(first.tolist())


def test_a_narrower_student_is_matched_through_one_learned_projection():
    b = batch(student_width=4)
    tiny = objective("tinybert", attention_weight=0.0, projection_lr=0.01)
    loss = tiny.intermediate(b)
    projection = tiny.projection
    assert projection.weight.shape == (8, 4) and len(tiny.context.optimizers) == 1
    assert tiny.context.optimizers[0].param_groups[0]["lr"] == 0.01
    expected = sum(((projection(b.student.hidden_states[s]).detach() - b.teacher.hidden_states[t]) ** 2).mean(-1)
                   for s, t in LAYER_MAP.items())
    assert loss.tolist() == pytest.approx([float(expected[0].mean()), float(expected[1, :2].mean())], rel=1e-5)
    loss.sum().backward()
    assert projection.weight.grad is not None and projection.weight.grad.abs().sum() > 0
    again = objective("tinybert", attention_weight=0.0)
    again.load_state_dict(tiny.state_dict())  # a resumed run takes the trained projection back
    assert torch.equal(again.projection.weight, projection.weight) and len(again.context.optimizers) == 1


def test_attention_matching_needs_as_many_heads():
    b = batch()
    b.teacher.attentions = tuple(a[:, :1] for a in b.teacher.attentions)
    with pytest.raises(KdbenchError, match="as many heads"):
        objective("tinybert").intermediate(b)


@pytest.mark.parametrize("text", ["1:2,x", "1-2", "1:2,1:3", "-1:2"])
def test_a_malformed_layer_map_is_refused_when_the_config_is_made(text):
    with pytest.raises(KdbenchError, match="student:teacher pairs"):
        RunConfig(layer_map=text)


@pytest.mark.parametrize("objective_name", ["pkd", "tinybert"])
def test_a_run_trains_with_a_layer_objective_and_the_given_layer_map(objective_name, glue_dir, tiny_teacher,
                                                                    tmp_path):
    record = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "run", objective=objective_name,
                                        student="fresh:hidden_size=16,num_hidden_layers=2", student_params={},
                                        layer_map="0:0,1:2,2:4"))
    assert record["objective_info"]["name"] == objective_name and record["best"]["value"] is not None
    with pytest.raises(KdbenchError, match="3:6 outside the student's 2 and the teacher's 4 layers"):
        run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "bad", objective=objective_name,
                                   student="teacher-layers:0,1", student_params={}, layer_map="1:1,3:6"))
