"""kd-gce and kd-bootstrap: the label terms by hand on tiny tensors, the KD term added, the view loss,
and the refusals (alpha_ce = 0, regression, q out of range)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bench.parts.context import Batch, TrainingContext
from bench.parts.errors import KdbenchError
from bench.parts.kd_config import KDConfig
from bench.parts.losses import kd_divergence
from bench.parts.tasks import get_task
from objectives import get_objective

LOGITS = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
LABELS = torch.tensor([0, 0])
TEACHER = torch.tensor([[1.0, 1.0], [3.0, -1.0]])


def objective(name: str, kd: KDConfig | None = None, task: str = "sst2", **params):
    spec = get_objective(name)
    context = TrainingContext(get_task(task), 10, "t", kd=kd or KDConfig(alpha_kd=0.0, alpha_ce=1.0))
    return spec.implementation(spec.parse_params(params), context)


def p_label() -> list[float]:
    """The student's probability of each example's label, by hand."""
    return [math.exp(2) / (math.exp(2) + 1), 1 / (1 + math.e)]


def test_gce_by_hand():
    loss = objective("kd-gce", q=0.5).loss(LOGITS, Batch({}, LABELS))
    assert loss.tolist() == pytest.approx([(1 - p**0.5) / 0.5 for p in p_label()])


def test_gce_default_q_and_limits():
    assert objective("kd-gce").params.q == 0.7
    ce = F.cross_entropy(LOGITS, LABELS, reduction="none")
    assert objective("kd-gce", q=1e-4).loss(LOGITS, Batch({}, LABELS)) == pytest.approx(ce, rel=1e-3)
    assert objective("kd-gce", q=1.0).loss(LOGITS, Batch({}, LABELS)).tolist() == pytest.approx(
        [1 - p for p in p_label()])


def test_bootstrap_by_hand():
    beta = 0.8
    loss = objective("kd-bootstrap", beta=beta).loss(LOGITS, Batch({}, LABELS))
    expected = []
    for p0 in p_label():  # label 0 in both examples: p = (p0, 1 - p0)
        p = [p0, 1 - p0]
        target = [beta + (1 - beta) * p[0], (1 - beta) * p[1]]
        expected.append(-sum(t * math.log(q) for t, q in zip(target, p)))
    assert loss.tolist() == pytest.approx(expected)


def test_bootstrap_beta_one_is_cross_entropy_and_the_prediction_is_not_detached():
    ce = F.cross_entropy(LOGITS, LABELS, reduction="none")
    assert objective("kd-bootstrap", beta=1.0).loss(LOGITS, Batch({}, LABELS)) == pytest.approx(ce)
    logits = LOGITS.clone().requires_grad_()
    objective("kd-bootstrap", beta=0.0).loss(logits, Batch({}, LABELS)).sum().backward()
    assert logits.grad.abs().sum() > 0  # beta = 0: the entropy of p alone, which has a gradient


def test_kd_term_added_and_view_loss_is_the_kd_term():
    kd = KDConfig(temperature=2.0, alpha_kd=0.5, alpha_ce=3.0)
    term = kd_divergence(LOGITS, TEACHER, temperature=2.0, regression=False)
    for name in ("kd-gce", "kd-bootstrap"):
        label_only = objective(name).loss(LOGITS, Batch({}, LABELS))
        full = objective(name, kd).loss(LOGITS, Batch({}, LABELS, TEACHER))
        assert full == pytest.approx(0.5 * term + 3.0 * label_only)
        assert objective(name, kd).view_loss(LOGITS, TEACHER, Batch({}, LABELS)) == pytest.approx(0.5 * term)


@pytest.mark.parametrize("name", ["kd-gce", "kd-bootstrap"])
def test_refusals(name):
    with pytest.raises(KdbenchError, match=f"{name} mitigates noisy labels in the label term: set --alpha-ce > 0"):
        objective(name, KDConfig())
    with pytest.raises(KdbenchError, match="classification"):
        objective(name, task="stsb")


def test_q_range():
    with pytest.raises(KdbenchError, match="q"):
        objective("kd-gce", q=0.0)
    with pytest.raises(KdbenchError, match="beta"):
        objective("kd-bootstrap", beta=1.5)


def test_three_examples_of_both_labels():
    """More examples than classes, and both labels: the one-hot target has the classes' width."""
    logits, labels = torch.tensor([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]]), torch.tensor([1, 0, 1])
    p = torch.softmax(logits, -1)
    p_y = p[torch.arange(3), labels]
    assert objective("kd-gce", q=0.5).loss(logits, Batch({}, labels)) == pytest.approx((1 - p_y**0.5) / 0.5)
    target = 0.8 * torch.eye(2)[labels] + 0.2 * p
    bootstrap = objective("kd-bootstrap", beta=0.8).loss(logits, Batch({}, labels))
    assert bootstrap == pytest.approx(-(target * p.log()).sum(-1))
