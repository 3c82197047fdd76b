"""Is a variant better than its baseline beyond seed noise? Per task, each method against KD and KD
against no KD, two tests:

- Almost Stochastic Order over the per-seed dev scores (Dror et al. 2019, through `deepsig`):
  `eps_min`, how far "the variant's scores are stochastically larger" is violated; below 0.5 at
  confidence 0.95 (Bonferroni-corrected over the study's comparisons) the variant is better, near 1
  the baseline is.
- A paired bootstrap over dev examples, pooled across seeds: both arms scored on the same resampled
  examples, each arm's score the mean over its seeds of the task's score (the mean of its GLUE
  metrics) from the predictions the run records keep; the difference's 95% interval and a
  two-sided p-value (twice the share of resamples on the other side of 0).

With fewer than `MIN_SEEDS` runs on either side no test is made, and the table says so.
"""

from __future__ import annotations

import math
import statistics
import warnings

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from bench.parts.errors import UnknownNameError
from bench.parts.tasks import get_task
from reports.studies import Study

MIN_SEEDS = 3
LEVEL = 0.05  # ASO's confidence 1 - LEVEL; the bootstrap's two-sided level
RESAMPLES = 1000
ASO_MARK, BOOTSTRAP_MARK = "*", "+"  # plain ASCII: the cells go into Markdown and LaTeX alike
NO_KD, KD = "no KD", "KD"


def baseline(variant: str, variants: list[str]) -> str | None:
    """What a variant is compared with: KD for a method, no KD for KD; None when that is not in the study."""
    base = NO_KD if variant == KD else KD
    return base if variant != NO_KD and base in variants else None


def comparisons(study: Study) -> pd.DataFrame:
    """One row per task x variant that has a baseline: seeds on each side, the difference of the medians,
    ASO's eps_min, the bootstrap's difference, interval and p-value (NaN where no test was possible),
    and whether each test finds the variant better (`aso_better`, `bootstrap_better`)."""
    pairs = [(task, variant, base) for task, variant in study.planned
             if (base := baseline(variant, study.variants)) is not None]
    rows = []
    for task, variant, base in pairs:
        a, b = _arm(study, task, variant), _arm(study, task, base)
        row = {"task": task, "variant": variant, "baseline": base, "seeds": len(a), "baseline_seeds": len(b),
               "median_diff": statistics.median(a["score"]) - statistics.median(b["score"]) if len(a) and len(b)
               else math.nan}
        tested = min(len(a), len(b)) >= MIN_SEEDS
        row.update(aso_test(list(a["score"]), list(b["score"]), num_comparisons=len(pairs)) if tested
                   else {"aso_eps_min": math.nan, "aso_better": False})
        arms = [dev_predictions(r) for r in a["record"]], [dev_predictions(r) for r in b["record"]]
        paired = tested and all(p is not None for arm in arms for p in arm)
        row.update(paired_bootstrap(*arms, _metric_names(a["record"].iloc[0], task)) if paired
                   else {"bootstrap_diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan,
                         "bootstrap_better": False})
        row["tested"], row["bootstrap_tested"] = tested, paired
        rows.append(row)
    return pd.DataFrame(rows)


def aso_test(scores: list[float], baseline_scores: list[float], *, num_comparisons: int = 1) -> dict:
    """ASO's eps_min of `scores` over `baseline_scores`, and whether it is below 0.5."""
    from deepsig import aso  # imported here: only a report with seeds to compare needs it (it loads torch if present)

    with warnings.catch_warnings():  # identical score lists divide by zero inside (eps_min 1, or 0.5 if constant): not significant
        warnings.simplefilter("ignore", UserWarning)
        # Bonferroni here, not through deepsig's num_comparisons: deepsig 1.2.8 raises the confidence to
        # c + (1 - c) / k, which is 1 - LEVEL / k only for k = 2 and tends to no correction as k grows
        eps = aso(scores, baseline_scores, confidence_level=bonferroni_confidence(num_comparisons),
                  num_comparisons=1, show_progress=False, seed=0)
    return {"aso_eps_min": eps, "aso_better": bool(eps < 0.5)}


def bonferroni_confidence(num_comparisons: int) -> float:
    """The confidence each of `num_comparisons` tests is made at, so that all of them hold at 1 - LEVEL."""
    return 1 - LEVEL / num_comparisons


def paired_bootstrap(arm: list[tuple[np.ndarray, np.ndarray]], baseline_arm: list[tuple[np.ndarray, np.ndarray]],
                     metrics: tuple[str, ...], *, seed: int = 0) -> dict:
    """The paired bootstrap over the dev examples (see the module's docstring) of two arms, each run's
    (predictions, labels). Hand-written: deepsig's bootstrap pairs per-example scores, and F1, Matthews
    correlation and the correlations of STS-B have none; here each resample recomputes them, vectorised
    over resamples."""
    arms = arm, baseline_arm
    labels = arm[0][1]
    if any(len(y) != len(labels) for runs in arms for _, y in runs):
        raise ValueError("the runs' dev predictions cover different examples")
    index = np.random.default_rng(seed).integers(0, len(labels), size=(RESAMPLES, len(labels)))
    everything = np.arange(len(labels))[None, :]
    score = lambda runs, rows: np.mean([_score(metrics, p, labels, rows) for p, _ in runs], axis=0)  # noqa: E731
    observed = float(score(arms[0], everything)[0] - score(arms[1], everything)[0])
    differences = score(arms[0], index) - score(arms[1], index)
    p_value = min(1.0, 2 * min(np.mean(differences <= 0), np.mean(differences >= 0)))
    low, high = np.quantile(differences, [LEVEL / 2, 1 - LEVEL / 2])
    return {"bootstrap_diff": observed, "ci_low": float(low), "ci_high": float(high), "p_value": float(p_value),
            "bootstrap_better": bool(p_value < LEVEL and observed > 0)}


def marks(row: pd.Series) -> str:
    """The cell's markers: ASO_MARK and BOOTSTRAP_MARK where that test finds the variant better."""
    return (ASO_MARK if row["aso_better"] else "") + (BOOTSTRAP_MARK if row["bootstrap_better"] else "")


def significance_note(table: pd.DataFrame) -> str:
    """The footnote: which tests the markers stand for, at which level, or why there are none."""
    if table.empty:
        return ""
    if not table["tested"].any():
        return (f"significance: no test was possible (fewer than {MIN_SEEDS} seeds per variant); "
                "differences inside the [min, max] ranges are not evidence")
    return (f"significance, each variant against its baseline (a method against KD, KD against no KD): "
            f"{ASO_MARK} Almost Stochastic Order over the seeds' scores (Dror et al. 2019, deepsig) finds it better "
            f"(eps_min < 0.5 at confidence {1 - LEVEL:g}, Bonferroni over {len(table)} comparisons); "
            f"{BOOTSTRAP_MARK} a paired bootstrap over dev examples pooled across seeds ({RESAMPLES:,} resamples) "
            f"finds it better (two-sided p < {LEVEL:g}); no marker: not significant"
            + (f"; untested (fewer than {MIN_SEEDS} seeds): "
               + ", ".join(f"{r.task} {r.variant}" for r in table.itertuples() if not r.tested)
               if not table["tested"].all() else "")
            + ("; no bootstrap where runs keep no dev predictions (made before records kept them)"
               if (table["tested"] & ~table["bootstrap_tested"]).any() else "")
            + "; the CSV has eps_min, the bootstrap's difference, 95% interval and p-value")


def _arm(study: Study, task: str, variant: str) -> pd.DataFrame:
    runs = study.runs
    return runs[(runs["task"] == task) & (runs["variant"] == variant)]


def _primary(record: dict) -> str:
    return record["best"]["metric"].removesuffix("_score")


def _metric_names(record: dict, task: str) -> tuple[str, ...]:
    """The metrics the record's score is made of (`best.score_metrics`: an attack's score is accuracy on every
    task), else the task's GLUE metrics; for a task given by its own files, those its record lists."""
    if "score_metrics" in record["best"]:
        return tuple(record["best"]["score_metrics"])
    try:
        return get_task(task).metrics
    except UnknownNameError:
        prefix = f"{_primary(record)}_"
        return tuple(k.removeprefix(prefix) for k in record["best"]["metrics"] if k != f"{prefix}score")


def dev_predictions(record: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """The run's dev predictions and labels; None for a run made before records kept them."""
    stored = (record.get("predictions") or {}).get(_primary(record))
    return None if stored is None else (np.asarray(stored["predictions"]), np.asarray(stored["labels"]))


def _score(metrics: tuple[str, ...], predictions: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The mean of `metrics` on each row of example indices `rows` (resamples x examples)."""
    p, y = predictions[rows], labels[rows]
    return np.mean([_METRICS[name](p, y) for name in metrics], axis=0)


def _binary_counts(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    pos, true = p == 1, y == 1
    return ((pos & true).sum(-1), (pos & ~true).sum(-1), (~pos & true).sum(-1), (~pos & ~true).sum(-1))


def _f1(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    tp, fp, fn, _ = _binary_counts(p, y)
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def _matthews(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    tp, fp, fn, tn = (c.astype(float) for c in _binary_counts(p, y))
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return np.where(denominator > 0, (tp * tn - fp * fn) / np.where(denominator > 0, denominator, 1), 0.0)


def _pearson(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    p, y = p - p.mean(-1, keepdims=True), y - y.mean(-1, keepdims=True)
    return (p * y).sum(-1) / np.sqrt((p * p).sum(-1) * (y * y).sum(-1))


# GLUE's metrics (bench/pipeline/metrics.py computes them per run), vectorised over resamples: one value per row
_METRICS = {
    "accuracy": lambda p, y: (p == y).mean(-1),
    "f1": _f1,
    "matthews_correlation": _matthews,
    "pearson": _pearson,
    "spearmanr": lambda p, y: _pearson(rankdata(p, axis=-1), rankdata(y, axis=-1)),
}
