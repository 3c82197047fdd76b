"""Significance against the baseline (reports/significance.py): ASO over seeds and a paired bootstrap over
dev examples pooled across seeds, on synthetic runs whose answer is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.metrics import compute_metrics
from bench.tasks import get_task
from reports.significance import _METRICS, comparisons, marks, significance_note
from reports.studies import COMPARISON, Study

N = 400  # dev examples


def run(task: str, variant: str, seed: int, accuracy: float, labels: np.ndarray) -> dict:
    """A run record whose dev predictions are right with probability `accuracy`, drawn from `seed`."""
    right = np.random.default_rng(seed).random(len(labels)) < accuracy
    predictions = np.where(right, labels, 1 - labels)
    score = float(right.mean())
    return {"task": task, "variant": variant, "seed": seed, "repeat": 0, "score": score,
            "record": {"task": task, "best": {"metric": "validation_score", "value": score,
                                              "metrics": {"validation_accuracy": score, "validation_score": score}},
                       "predictions": {"validation": {"ids": list(range(len(labels))), "labels": labels.tolist(),
                                                      "predictions": predictions.tolist()}}}}


def study(arms: dict[str, tuple[float, list[int]]]) -> Study:
    """An SST-2 comparison: variant -> (accuracy, seeds)."""
    labels = np.random.default_rng(0).integers(0, 2, N)
    runs = [run("sst2", variant, seed, accuracy, labels) for variant, (accuracy, seeds) in arms.items()
            for seed in seeds]
    return Study("synthetic", "synthetic", COMPARISON, "variant", pd.DataFrame(runs),
                 [("sst2", variant) for variant in arms], max(len(s) for _, s in arms.values()), Path("."))


def test_identical_distributions_are_not_significant():
    tests = comparisons(study({"no KD": (0.75, [1, 2, 3, 4, 5]), "KD": (0.75, [11, 12, 13, 14, 15])}))
    row = tests.iloc[0]
    assert (row.variant, row.baseline, row.seeds, row.baseline_seeds) == ("KD", "no KD", 5, 5)
    assert row.tested and row.bootstrap_tested
    assert row.aso_eps_min >= 0.5 and row.p_value >= 0.05 and row.ci_low < 0 < row.ci_high
    assert not row.aso_better and not row.bootstrap_better and marks(row) == ""


def test_a_shift_beyond_the_seed_spread_is_significant_both_ways():
    tests = comparisons(study({"no KD": (0.70, [1, 2, 3]), "KD": (0.85, [11, 12, 13]), "AD2": (0.70, [21, 22, 23])}))
    kd, ad2 = tests.set_index("variant").loc["KD"], tests.set_index("variant").loc["AD2"]
    assert kd.median_diff > 0.1 and kd.aso_eps_min < 0.5 and kd.p_value < 0.05 and kd.ci_low > 0
    assert marks(kd) == "*+"
    assert ad2.baseline == "KD" and ad2.bootstrap_diff < -0.1 and ad2.ci_high < 0 and ad2.p_value < 0.05
    assert marks(ad2) == ""  # significantly worse: no marker of a gain
    assert "Almost Stochastic Order" in significance_note(tests) and "Bonferroni over 2" in significance_note(tests)


def test_one_seed_means_no_test():
    tests = comparisons(study({"no KD": (0.70, [1]), "KD": (0.85, [11])}))
    assert not tests.iloc[0].tested and np.isnan(tests.iloc[0].aso_eps_min) and np.isnan(tests.iloc[0].p_value)
    assert "no test was possible" in significance_note(tests)


@pytest.mark.parametrize("task", ["sst2", "mrpc", "cola", "stsb"])
def test_vectorised_metrics_equal_those_of_a_run(task):
    """The bootstrap's metrics, one value per resample, equal bench/metrics.py on each resample."""
    spec = get_task(task)
    rng = np.random.default_rng(1)
    if spec.is_regression:
        labels, predictions = rng.random(50) * 5, rng.random(50) * 5
        logits = predictions[:, None]
    else:
        labels, predictions = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
        logits = np.eye(2)[predictions]
    rows = rng.integers(0, 50, (4, 50))
    for name in spec.metrics:
        ours = _METRICS[name](predictions[rows], labels[rows])
        theirs = [compute_metrics(spec, logits[r], labels[r])[name] for r in rows]
        assert np.allclose(ours, theirs), name
