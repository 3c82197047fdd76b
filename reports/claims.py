"""The AD2 paper's three claims, checked against the studies a report reads:

1. the AD2 student keeps 99.6% of the teacher's score (averaged over tasks);
2. it beats task-specific KD by 1.2 points on average;
3. it is up to 28x faster than text-editing augmentation (EDA, TinyBERT's masked-LM) at comparable
   accuracy.

Each study that measures a claim gets a verdict, with the numbers behind it and the conditions
(tasks, teacher, student, seeds, profile, machine): `holds`; `does not hold`; `not significant`, when
the seeds cannot decide (fewer than 3, the seeds straddle the paper's figure, or the gain is not
confirmed by the significance tests); `not measured`, when no study has what the claim needs.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.pipeline.storage import atomic_file
from reports.significance import KD, MIN_SEEDS
from reports.speed import measurements
from reports.studies import COMPARISON, SPEED, Study
from reports.tables import describe_machines

RETENTION = 99.6  # % of the teacher's score
GAIN = 1.2  # points over KD, averaged over tasks
SPEEDUP = 28.0  # x faster to the best dev score
COMPARABLE = 1.0  # points: "comparable accuracy" (the paper gives no figure; our reading)
TEXT_EDITING = ("eda", "mlm")  # the methods the paper calls text-editing augmentation
HOLDS, FAILS, UNDECIDED, UNMEASURED = "holds", "does not hold", "not significant", "not measured"
CLAIMS = {
    "retention": f"the AD2 student keeps {RETENTION}% of the teacher's score",
    "gain": f"AD2 beats task-specific KD by {GAIN} points on average",
    "speed": f"AD2 is up to {SPEEDUP:g}x faster than text-editing augmentation at comparable accuracy",
}


@dataclass
class Verdict:
    claim: str  # a key of CLAIMS
    verdict: str
    study: str  # "" when not measured
    evidence: str
    conditions: str


def check_claims(studies: list[Study], tests: dict[str, pd.DataFrame]) -> list[Verdict]:
    """Every claim's verdict in every study that measures it (`not measured` where none does); `tests`
    are the significance tests of each comparison study (`reports.significance.comparisons`), by name."""
    verdicts = []
    for claim, check in (("retention", _retention), ("gain", _gain), ("speed", _speed)):
        found = [v for study in studies if (v := check(study, tests.get(study.name))) is not None]
        verdicts += found or [Verdict(claim, UNMEASURED, "", _missing(claim), "")]
    return verdicts


def write_claims(path: Path, verdicts: list[Verdict]) -> Path:
    """`claims.md`: each claim, then its verdict per study with the evidence and conditions."""
    lines = ["# The AD2 paper's claims, against these studies", ""]
    for claim, text in CLAIMS.items():
        lines += [f"## {text}", ""]
        for v in (v for v in verdicts if v.claim == claim):
            where = f" ({v.study})" if v.study else ""
            lines += [f"- **{v.verdict}**{where}: {v.evidence}." + (f" Conditions: {v.conditions}." if v.conditions else "")]
        lines.append("")
    with atomic_file(path) as handle:
        handle.write("\n".join(lines))
    return path


def _ad2_arms(study: Study) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """AD2's runs and KD's in a comparison study, or None when it lacks either."""
    if study.kind != COMPARISON or study.runs.empty:
        return None
    runs = study.runs
    ad2 = runs[[r.get("method") == "ad2" for r in runs["record"]]]
    kd = runs[runs["variant"] == KD]
    return (ad2, kd) if len(ad2) else None


def _retention(study: Study, _tests) -> Verdict | None:
    arms, teacher = _ad2_arms(study), study.teacher_scores()
    if arms is None or not teacher:
        return None
    ad2 = arms[0][arms[0]["task"].isin(list(teacher))]
    per_seed = ad2.assign(kept=[100 * s / teacher[t] for s, t in zip(ad2["score"], ad2["task"])])
    by_seed = per_seed.groupby("seed")["kept"].mean()  # the average over tasks, per seed
    median_kept = statistics.fmean(100 * statistics.median(g["score"]) / teacher[t] for t, g in ad2.groupby("task"))
    if len(by_seed) < MIN_SEEDS:
        verdict = UNDECIDED
    else:
        verdict = HOLDS if by_seed.min() >= RETENTION else FAILS if by_seed.max() < RETENTION else UNDECIDED
    return Verdict("retention", verdict, study.name,
                   f"AD2 keeps {median_kept:.2f}% of the teacher's score (median over {len(by_seed)} seed(s), "
                   f"averaged over {ad2['task'].nunique()} task(s); per seed {by_seed.min():.2f} to {by_seed.max():.2f}%)",
                   _conditions(study))


def _gain(study: Study, tests: pd.DataFrame | None) -> Verdict | None:
    arms = _ad2_arms(study)
    if arms is None or arms[1].empty:
        return None
    ad2, kd = arms
    tasks = sorted(set(ad2["task"]) & set(kd["task"]))
    gain = statistics.fmean(100 * (statistics.median(ad2[ad2["task"] == t]["score"])
                                   - statistics.median(kd[kd["task"] == t]["score"])) for t in tasks)
    label = ad2["variant"].iloc[0]
    rows = tests[tests["variant"] == label] if tests is not None and len(tests) else pd.DataFrame()
    tested = len(rows) and rows["tested"].all()
    confirmed = tested and (rows["aso_better"] | rows["bootstrap_better"]).all()
    verdict = UNDECIDED if not tested else FAILS if gain < GAIN else HOLDS if confirmed else UNDECIDED
    signif = ("untested (fewer than 3 seeds)" if not tested else
              "better than KD by ASO or the paired bootstrap on every task" if confirmed else
              "not significantly better than KD on every task")
    return Verdict("gain", verdict, study.name,
                   f"AD2 - KD = {gain:+.2f} points (difference of the medians, averaged over {len(tasks)} "
                   f"task(s)); {signif}", _conditions(study))


def _speed(study: Study, _tests) -> Verdict | None:
    if study.kind != SPEED or study.runs.empty:
        return None
    measured = measurements(study)
    medians = measured.groupby(["task", "variant", "method"], sort=False)[["to_best_s", "score"]].median().reset_index()
    found = []
    for task, group in medians.groupby("task", sort=False):
        ad2 = group[group["method"] == "ad2"]
        if ad2.empty:
            continue
        for row in group[group["method"].isin(TEXT_EDITING)].itertuples():
            found.append((row.to_best_s / ad2["to_best_s"].iloc[0], row.score - ad2["score"].iloc[0], task, row.variant))
    if not found:
        return None
    comparable = [f for f in found if abs(f[1]) <= COMPARABLE]
    best = max(comparable or found)
    verdict = FAILS if best[0] < SPEEDUP else HOLDS if comparable else UNDECIDED
    listed = "; ".join(f"{task} {variant} / AD2 = {ratio:.2f}x (dev {diff:+.2f} points)"
                       for ratio, diff, task, variant in found)
    return Verdict("speed", verdict, study.name,
                   f"time to the best dev score, {listed}; comparable accuracy read as within {COMPARABLE:g} point"
                   + ("" if comparable else " (none is)"), _conditions(study))


def _conditions(study: Study) -> str:
    config = study.records[0]["config"]
    teacher = (study.records[0].get("teacher") or {}).get("name") or config.get("teacher") or "-"
    note = study.notes[0] if study.notes else ""
    return (f"tasks {', '.join(study.tasks)}; teacher {teacher}; student {config.get('model')}; "
            f"{study.seeds} seed(s) or repeat(s) planned" + (f"; {note}" if note else "")
            + f"; {describe_machines(study.records)}")


def _missing(claim: str) -> str:
    return {"retention": "no comparison study with AD2 runs and a teacher score",
            "gain": "no comparison study with both AD2 and KD runs",
            "speed": "no speed study with AD2 and EDA or masked-LM runs"}[claim]
