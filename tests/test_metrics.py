"""GLUE metrics against scikit-learn/scipy and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from bench.parts.tasks import TASKS, get_task
from bench.pipeline.metrics import compute_metrics

LABELS = np.array([1, 0, 1, 1, 0, 0, 1, 0])
PREDICTED = np.array([1, 0, 0, 1, 1, 0, 1, 0])  # TP 3, TN 3, FP 1, FN 1


def logits_for(classes: np.ndarray, num_labels: int = 2) -> np.ndarray:
    logits = np.full((len(classes), num_labels), -1.0)
    logits[np.arange(len(classes)), classes] = 2.0
    return logits


def test_binary_metrics_match_hand_computation_and_sklearn():
    metrics = compute_metrics(get_task("mrpc"), logits_for(PREDICTED), LABELS)
    assert metrics["accuracy"] == pytest.approx(6 / 8) == accuracy_score(LABELS, PREDICTED)
    assert metrics["f1"] == pytest.approx(3 / (3 + 0.5 * (1 + 1))) == f1_score(LABELS, PREDICTED)
    assert metrics["score"] == pytest.approx((0.75 + 0.75) / 2)
    assert set(metrics) == {"f1", "accuracy", "score"}


def test_matthews_correlation_for_cola():
    metrics = compute_metrics(get_task("cola"), logits_for(PREDICTED), LABELS)
    hand = (3 * 3 - 1 * 1) / math.sqrt((3 + 1) * (3 + 1) * (3 + 1) * (3 + 1))
    assert metrics["matthews_correlation"] == pytest.approx(hand) == matthews_corrcoef(LABELS, PREDICTED)
    assert metrics["score"] == metrics["matthews_correlation"]


def test_three_class_accuracy_for_mnli():
    labels = np.array([0, 1, 2, 2, 1])
    predicted = np.array([0, 1, 1, 2, 0])
    metrics = compute_metrics(get_task("mnli"), logits_for(predicted, 3), labels)
    assert metrics == {"accuracy": pytest.approx(0.6), "score": pytest.approx(0.6)}


def test_regression_metrics_for_stsb_take_the_single_output():
    rng = np.random.default_rng(0)
    gold = rng.uniform(0, 5, 20)
    predicted = gold + rng.normal(0, 1, 20)
    metrics = compute_metrics(get_task("stsb"), predicted.reshape(-1, 1), gold)
    assert metrics["pearson"] == pytest.approx(pearsonr(gold, predicted)[0])
    assert metrics["spearmanr"] == pytest.approx(spearmanr(gold, predicted)[0])
    assert metrics["score"] == pytest.approx((metrics["pearson"] + metrics["spearmanr"]) / 2)


def test_spearman_is_rank_based_by_hand():
    gold = np.array([1.0, 2.0, 3.0, 4.0])
    predicted = np.array([10.0, 20.0, 40.0, 30.0])  # ranks 1 2 4 3: d^2 = 0 + 0 + 1 + 1
    metrics = compute_metrics(get_task("stsb"), predicted, gold)
    assert metrics["spearmanr"] == pytest.approx(1 - 6 * 2 / (4 * (16 - 1)))


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_reports_its_glue_metrics_and_score(name):
    task = TASKS[name]
    labels = np.array([0.5, 1.5, 2.5, 4.0]) if task.is_regression else np.array([0, 1, 1, 0])
    logits = labels.reshape(-1, 1) if task.is_regression else logits_for(labels.astype(int), task.num_labels)
    metrics = compute_metrics(task, logits, labels)
    assert set(metrics) == {*task.metrics, "score"}
    assert metrics["score"] == pytest.approx(1.0)  # perfect predictions
