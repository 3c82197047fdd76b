"""Significance against the baseline (reports/significance.py): ASO over seeds and a paired bootstrap over
dev examples pooled across seeds, on synthetic runs whose answer is known."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.parts.tasks import get_task
from bench.pipeline.metrics import compute_metrics
from reports.significance import _METRICS, aso_test, comparisons, marks, paired_bootstrap, significance_note
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
    """The bootstrap's metrics, one value per resample, equal bench/pipeline/metrics.py on each resample."""
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


def _flipped(predictions: np.ndarray, labels: np.ndarray, to_right: int, to_wrong: int) -> np.ndarray:
    """`predictions` with its first `to_right` wrong answers made right and first `to_wrong` right ones made wrong."""
    wrong, right = np.flatnonzero(predictions != labels), np.flatnonzero(predictions == labels)
    changed = predictions.copy()
    changed[wrong[:to_right]] = labels[wrong[:to_right]]
    changed[right[:to_wrong]] = 1 - labels[right[:to_wrong]]
    return changed


def _one_run_each(to_right: int, to_wrong: int) -> tuple[list, list]:
    """A baseline run right on about 75% of N examples, and a variant that differs from it on a few examples."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, N)
    baseline = np.where(rng.random(N) < 0.75, labels, 1 - labels)
    return [(_flipped(baseline, labels, to_right, to_wrong), labels)], [(baseline, labels)]


def test_the_bootstrap_resamples_both_arms_on_the_same_examples():
    """Pairing is what makes the bootstrap sharp: a variant that fixes 12 of its baseline's errors and
    breaks nothing is never worse on any resample (every difference >= 0), so the gain of 12/N = 3 points
    is significant, though an unpaired bootstrap (each arm resampled on its own examples) puts a spread of
    about +-6 points around it. An arm against itself differs by exactly 0 on every paired resample."""
    better, baseline = _one_run_each(to_right=12, to_wrong=0)
    test = paired_bootstrap(better, baseline, ("accuracy",))
    assert test["bootstrap_diff"] == pytest.approx(12 / N)
    assert test["ci_low"] >= 0 and test["ci_high"] <= 12 / N * 2.5  # 12 fixed examples, each drawn ~Poisson(1) times
    assert test["p_value"] < 0.01 and test["bootstrap_better"]
    same = paired_bootstrap(baseline, baseline, ("accuracy",))
    assert (same["bootstrap_diff"], same["ci_low"], same["ci_high"], same["p_value"]) == (0, 0, 0, 1)
    assert not same["bootstrap_better"]


def test_a_positive_difference_inside_the_noise_is_not_a_gain():
    """The bootstrap's verdict needs p < 0.05, not only a difference above 0: a variant that fixes 3 of its
    baseline's errors and breaks 2 of its right answers is 1/N better, a difference well inside the noise."""
    variant, baseline = _one_run_each(to_right=3, to_wrong=2)
    test = paired_bootstrap(variant, baseline, ("accuracy",))
    assert test["bootstrap_diff"] == pytest.approx(1 / N) and test["ci_low"] < 0 < test["ci_high"]
    assert test["p_value"] > 0.5 and not test["bootstrap_better"]


@pytest.mark.parametrize("eps_min, better", [(0.0, True), (0.49, True), (0.5, False), (0.7, False), (0.89, False),
                                             (1.0, False)])
def test_aso_finds_a_variant_better_below_half(monkeypatch, eps_min, better):
    """Dror et al.'s rule: eps_min < 0.5 means the variant is (almost) stochastically larger; from 0.5 up the
    baseline is at least as likely to be. deepsig's answer is set by hand, so only the rule is tested."""
    import deepsig

    monkeypatch.setattr(deepsig, "aso", lambda *args, **kwargs: eps_min)
    assert aso_test([0.8, 0.81, 0.82], [0.7, 0.71, 0.72]) == {"aso_eps_min": eps_min, "aso_better": better}


def test_aso_is_bonferroni_corrected_over_every_comparison_of_the_study(monkeypatch):
    """Two tasks x (KD against no KD, AD2 against KD) are 4 comparisons, so every ASO test is made at
    confidence 1 - 0.05 / 4, whether or not the other comparisons could be tested (AD2 has 2 seeds on rte:
    untested, but still one of the comparisons looked at). The level is passed to deepsig already
    corrected: its own correction (0.95 + 0.05 / 4 = 0.9625 here) is too weak beyond 2 comparisons."""
    import deepsig

    calls = []
    monkeypatch.setattr(deepsig, "aso", lambda a, b, **kwargs: calls.append(kwargs) or 1.0)
    labels = np.random.default_rng(0).integers(0, 2, N)
    arms = {("sst2", "no KD"): [1, 2, 3], ("sst2", "KD"): [4, 5, 6], ("sst2", "AD2"): [7, 8, 9],
            ("rte", "no KD"): [1, 2, 3], ("rte", "KD"): [4, 5, 6], ("rte", "AD2"): [7, 8]}
    runs = [run(task, variant, seed, 0.75, labels) for (task, variant), seeds in arms.items() for seed in seeds]
    tests = comparisons(Study("synthetic", "synthetic", COMPARISON, "variant", pd.DataFrame(runs), list(arms), 3,
                              Path(".")))
    assert len(tests) == 4 and tests["tested"].tolist() == [True, True, True, False]
    assert [(c["num_comparisons"], c["confidence_level"]) for c in calls] == [(1, 1 - 0.05 / 4)] * 3
    assert "Bonferroni over 4" in significance_note(tests)


def test_the_bootstrap_is_the_textbook_one_for_accuracy():
    """For accuracy the paired bootstrap is short enough to write out: the same 1,000 resamples of the dev
    examples (seed 0) for both arms, the difference of the arms' accuracies on each, the 2.5% and 97.5%
    quantiles of those differences, and twice the smaller share on either side of 0. Pins the interval's
    quantiles, the factor 2 and the fixed seed (the same answer on every call)."""
    variant, baseline = _one_run_each(to_right=9, to_wrong=4)
    (p, labels), (q, _) = variant[0], baseline[0]
    rows = np.random.default_rng(0).integers(0, N, size=(1000, N))
    differences = (p[rows] == labels[rows]).mean(1) - (q[rows] == labels[rows]).mean(1)
    low, high = np.quantile(differences, [0.025, 0.975])
    share = min(np.mean(differences <= 0), np.mean(differences >= 0))
    test = paired_bootstrap(variant, baseline, ("accuracy",))
    assert test == pytest.approx({"bootstrap_diff": 5 / N, "ci_low": low, "ci_high": high, "p_value": 2 * share,
                                  "bootstrap_better": bool(2 * share < 0.05)})
    assert 0 < share < 0.5 and low < 0 < high  # a case where the p-value is neither 0 nor capped at 1
    assert paired_bootstrap(variant, baseline, ("accuracy",)) == test


def test_a_p_value_of_exactly_the_level_is_not_significant():
    """Two-sided p < 0.05, strictly: this variant (16 errors fixed, 6 made) has p = 0.05 on the resamples of seed 1."""
    variant, baseline = _one_run_each(to_right=16, to_wrong=6)
    test = paired_bootstrap(variant, baseline, ("accuracy",), seed=1)
    assert test["bootstrap_diff"] == pytest.approx(10 / N) and test["p_value"] == pytest.approx(0.05)
    assert not test["bootstrap_better"]


def test_runs_on_different_dev_examples_cannot_be_paired():
    variant, baseline = _one_run_each(to_right=1, to_wrong=0)
    shorter = [(p[:-1], y[:-1]) for p, y in baseline]
    with pytest.raises(ValueError, match="^the runs' dev predictions cover different examples$"):
        paired_bootstrap(variant, shorter, ("accuracy",))


@pytest.mark.parametrize("name, predictions, labels, expected", [
    ("f1", [0, 0, 0], [0, 0, 0], 0.0),  # nothing predicted or labelled positive: sklearn's 0, not a division by 0
    ("matthews_correlation", [0, 0, 0], [0, 1, 1], 0.0),  # one class predicted: no correlation
    ("matthews_correlation", [0, 1], [0, 1], 1.0),  # every margin 1, so the denominator is exactly 1
])
def test_metrics_at_their_edges(name, predictions, labels, expected):
    """A degenerate resample gives the value sklearn gives, without dividing by zero on the way."""
    p, y = np.array([predictions]), np.array([labels])
    with np.errstate(all="raise"):
        assert _METRICS[name](p, y).tolist() == [expected]


def test_identical_scores_give_no_gain_and_no_warning():
    """deepsig divides by zero on two identical score lists and warns; the warning is silenced. Equal
    constant scores give eps_min exactly 0.5, the rule's edge: not better."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert aso_test([0.8, 0.81, 0.82], [0.8, 0.81, 0.82]) == {"aso_eps_min": 1.0, "aso_better": False}
        assert aso_test([0.8, 0.8, 0.8], [0.8, 0.8, 0.8]) == {"aso_eps_min": 0.5, "aso_better": False}


def test_aso_answers_the_same_on_every_call():
    scores, baseline_scores = [0.80, 0.78, 0.83, 0.79], [0.79, 0.77, 0.81, 0.80]
    assert aso_test(scores, baseline_scores) == aso_test(scores, baseline_scores)


def test_one_comparison_is_made_at_the_plain_level(monkeypatch):
    import deepsig

    calls = []
    monkeypatch.setattr(deepsig, "aso", lambda a, b, **kwargs: calls.append(kwargs) or 1.0)
    aso_test([0.8, 0.81, 0.82], [0.7, 0.71, 0.72])
    assert calls[0]["confidence_level"] == 0.95


def test_the_median_difference_is_of_the_seeds_medians():
    arms = study({"no KD": (0.70, [1, 2, 3]), "KD": (0.80, [11, 12, 13])})
    tests, runs = comparisons(arms), arms.runs
    medians = runs.groupby("variant")["score"].median()
    assert tests.iloc[0].median_diff == pytest.approx(medians["KD"] - medians["no KD"])


def test_untested_comparisons_mark_nothing_and_say_why():
    """A variant planned but never run, and one with too few seeds: neither test is made, no marker, NaN
    numbers; the note names them."""
    arms = study({"no KD": (0.70, [1, 2, 3]), "KD": (0.70, [11, 12, 13]), "AD2": (0.95, [21, 22])})
    planned = replace(arms, planned=arms.planned + [("sst2", "EDA")])
    tests = comparisons(planned)
    assert list(tests.columns) == ["task", "variant", "baseline", "seeds", "baseline_seeds", "median_diff",
                                   "aso_eps_min", "aso_better", "bootstrap_diff", "ci_low", "ci_high", "p_value",
                                   "bootstrap_better", "tested", "bootstrap_tested"]
    tests = tests.set_index("variant")
    for variant in ("AD2", "EDA"):
        row = tests.loc[variant]
        assert not row.tested and not row.bootstrap_tested and marks(row) == ""
        assert row[["aso_eps_min", "bootstrap_diff", "ci_low", "ci_high", "p_value"]].isna().all()
    assert tests.loc["KD"].tested and np.isnan(tests.loc["EDA"].median_diff) and tests.loc["EDA"].seeds == 0
    assert significance_note(tests.reset_index()).endswith(
        "no marker: not significant; untested (fewer than 3 seeds): sst2 AD2, sst2 EDA; the CSV has eps_min, "
        "the bootstrap's difference, 95% interval and p-value")


def test_runs_without_dev_predictions_get_aso_but_no_bootstrap():
    old = study({"no KD": (0.70, [1, 2, 3]), "KD": (0.95, [11, 12, 13])})
    for record in old.runs["record"]:
        del record["predictions"]
    row = comparisons(old).iloc[0]
    assert row.tested and row.aso_better and not row.bootstrap_tested and not row.bootstrap_better
    assert marks(row) == "*" and np.isnan(row.p_value)
    note = significance_note(comparisons(old))
    assert note == (
        "significance, each variant against its baseline (a method against KD, KD against no KD): * Almost "
        "Stochastic Order over the seeds' scores (Dror et al. 2019, deepsig) finds it better (eps_min < 0.5 at "
        "confidence 0.95, Bonferroni over 1 comparisons); + a paired bootstrap over dev examples pooled across "
        "seeds (1,000 resamples) finds it better (two-sided p < 0.05); no marker: not significant; no bootstrap "
        "where runs keep no dev predictions (made before records kept them); the CSV has eps_min, the "
        "bootstrap's difference, 95% interval and p-value")


def test_no_comparisons_no_note():
    assert significance_note(pd.DataFrame()) == ""
    one_seed = comparisons(study({"no KD": (0.70, [1]), "KD": (0.85, [11])}))
    assert significance_note(one_seed) == ("significance: no test was possible (fewer than 3 seeds per variant); "
                                           "differences inside the [min, max] ranges are not evidence")


def test_a_task_given_by_its_own_files_is_scored_by_the_metrics_its_records_list():
    """A task outside GLUE has no entry to read its metrics from: the bootstrap scores it by the metrics the
    run records list under the primary split (here accuracy and F1, as for MRPC), their mean."""
    labels = np.random.default_rng(0).integers(0, 2, N)
    runs = []
    for variant, accuracy, seeds in (("no KD", 0.70, [1, 2, 3]), ("KD", 0.80, [11, 12, 13])):
        for seed in seeds:
            entry = run("mine", variant, seed, accuracy, labels)
            predictions = np.array(entry["record"]["predictions"]["validation"]["predictions"])
            f1 = float(_METRICS["f1"](predictions[None], labels[None])[0])
            entry["record"]["best"]["metrics"] = {"validation_accuracy": entry["score"], "validation_f1": f1,
                                                  "validation_score": (entry["score"] + f1) / 2}
            entry["score"] = (entry["score"] + f1) / 2
            runs.append(entry)
    mine = Study("synthetic", "synthetic", COMPARISON, "variant", pd.DataFrame(runs),
                 [("mine", "no KD"), ("mine", "KD")], 3, Path("."))
    row = comparisons(mine).iloc[0]
    pooled = {variant: np.mean([r["score"] for r in runs if r["variant"] == variant]) for variant in ("KD", "no KD")}
    accuracy = {variant: np.mean([r["record"]["best"]["metrics"]["validation_accuracy"] for r in runs
                                  if r["variant"] == variant]) for variant in ("KD", "no KD")}
    assert row.bootstrap_diff == pytest.approx(pooled["KD"] - pooled["no KD"])
    assert abs(row.bootstrap_diff - (accuracy["KD"] - accuracy["no KD"])) > 1e-3  # F1 counts
