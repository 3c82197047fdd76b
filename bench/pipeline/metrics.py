"""GLUE's metrics, computed locally (no metric download), and each task's headline `score`.

The `score` of a task is the mean of its GLUE metrics, as the GLUE leaderboard averages them
(MRPC and QQP: F1 and accuracy; STS-B: Pearson and Spearman; CoLA: Matthews correlation; the
others: accuracy). It is what selects the best checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef
from transformers import EvalPrediction

from bench.parts.tasks import TaskSpec

_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": lambda y, p: accuracy_score(y, p),
    "f1": lambda y, p: f1_score(y, p),  # of the positive class, as GLUE's MRPC/QQP F1
    "matthews_correlation": lambda y, p: matthews_corrcoef(y, p),
    "pearson": lambda y, p: pearsonr(y, p)[0],
    "spearmanr": lambda y, p: spearmanr(y, p)[0],
}


def predictions_from_logits(task: TaskSpec, logits: np.ndarray) -> np.ndarray:
    """Class indices (argmax) for classification, the single output for regression."""
    logits = np.asarray(logits)
    return logits.reshape(-1) if task.is_regression else logits.argmax(axis=-1)


def compute_metrics(task: TaskSpec, logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Every GLUE metric of `task` plus `score`, their mean."""
    predictions = predictions_from_logits(task, logits)
    labels = np.asarray(labels).reshape(-1)
    results = {name: float(_METRICS[name](labels, predictions)) for name in task.metrics}
    results["score"] = float(np.mean(list(results.values())))
    return results


def trainer_metrics(task: TaskSpec) -> Callable[[EvalPrediction], dict[str, float]]:
    """`compute_metrics` in the form `transformers.Trainer` calls it."""
    return lambda prediction: compute_metrics(task, prediction.predictions, prediction.label_ids)
