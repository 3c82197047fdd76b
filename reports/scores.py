"""Scores over seeds: per task and variant the median, min, max and IQR of the per-seed dev scores,
the teacher's score and the share of it the student keeps; laid out as the main table (teacher, no
KD, KD and each method side by side) or as an ablation's table (one row per swept value)."""

from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd

from bench.parts.errors import UnknownNameError
from bench.parts.tasks import get_task
from bench.store.studies import spread
from reports.significance import comparisons, dev_predictions, marks, significance_note
from reports.studies import COMPARISON, Study
from reports.tables import StudyTables, describe_machines, score_cell, score_text, write_tables

EMPTY = {"median": math.nan, "min": math.nan, "max": math.nan, "iqr": math.nan, "n": 0}


def seed_statistics(study: Study) -> pd.DataFrame:
    """One row per planned task x variant (no runs yet: n = 0): the spread of the per-seed scores,
    the teacher's score, retention (100 x median / teacher), the search's best learning rate and
    batch size, and the median training seconds."""
    teacher = study.teacher_scores()
    rows = []
    for task, variant in study.planned:
        runs = study.runs[(study.runs["task"] == task) & (study.runs["variant"] == variant)]
        stats = spread(list(runs["score"])) if len(runs) else EMPTY
        records = list(runs["record"])
        train = records[0]["config"]["train"] if records else {}
        rows.append({"task": task, study.swept: value_label(study, variant), **stats, "planned": study.seeds,
                     "teacher": teacher.get(task, math.nan),
                     "retention_pct": 100 * stats["median"] / teacher[task] if task in teacher else math.nan,
                     "learning_rate": train.get("learning_rate"),
                     "batch_size": train.get("per_device_train_batch_size"),
                     "train_s_median": statistics.median(r["timings_s"]["training"] for r in records)
                     if records else math.nan})
    return pd.DataFrame(rows)


def value_label(study: Study, variant: str) -> str:
    """A sweep's variant by its value ("eps=1e-05" -> "1e-05"); other variants by their label."""
    return variant.removeprefix(f"{study.swept}=")


def task_name(task: str) -> str:
    """GLUE's spelling of a task ("sst2" -> "SST-2")."""
    try:
        return get_task(task).glue_dir
    except UnknownNameError:  # a task given by its own files has no GLUE name
        return task


def main_table(study: Study, stats: pd.DataFrame, tests: pd.DataFrame) -> pd.DataFrame:
    """Teacher, then each variant; a column per task ("median [min, max]", x100, with the markers of
    the significance tests against its baseline), the average over tasks of the medians and the mean
    retention of the teacher's score, in percent. A row with a task still missing gets no average."""
    tasks = study.tasks
    teacher = study.teacher_scores()
    rows = []
    if teacher:
        rows.append({"model": "teacher", **{task_name(t): score_text(teacher.get(t)) for t in tasks},
                     "average": score_text(_mean([teacher.get(t) for t in tasks])),
                     "% of teacher": "100.00" if len(teacher) == len(tasks) else "-"})
    for variant in study.variants:
        arm = stats[stats["variant"] == variant].set_index("task")
        tested = tests[tests["variant"] == variant].set_index("task") if len(tests) else tests
        rows.append({"model": variant, **{task_name(t): _cell(arm.loc[t]) + (marks(tested.loc[t]) if t in tested.index
                                                                                else "") for t in tasks},
                     "average": score_text(_mean(arm["median"])),
                     "% of teacher": _percent(_mean(arm["retention_pct"]))})
    table = pd.DataFrame(rows)
    return table if len(tasks) > 1 else table.drop(columns="average")


def sweep_table(study: Study, stats: pd.DataFrame) -> pd.DataFrame:
    """One row per swept value, a column per task ("median [min, max]", x100), and the average of
    the medians over tasks when there are several."""
    rows = []
    for variant in study.variants:
        value = value_label(study, variant)
        arm = stats[stats[study.swept] == value].set_index("task")
        row = {study.swept: value, **{task_name(t): _cell(arm.loc[t]) for t in study.tasks}}
        if len(study.tasks) > 1:
            row["average"] = score_text(_mean(arm["median"]))
        rows.append(row)
    return pd.DataFrame(rows)


def score_tables(study: Study) -> StudyTables:
    """The main table of a comparison, then one per out-of-domain set its runs were scored on and one per
    attack they were tested with, and all of them side by side, or the table of a sweep, with the statistics
    as long form."""
    stats = seed_statistics(study)
    if study.kind != COMPARISON:
        return StudyTables(f"{study.name}: {study.title}", score_notes(study), {"": sweep_table(study, stats)}, stats)
    tests = comparisons(study)
    long = _with_tests(stats, tests)
    tables = {"": main_table(study, stats, tests)}
    for kind, title in HELD_OUT.items():
        for name in held_out_names(study, kind):
            held = held_out_study(study, kind, name)
            held_stats, held_tests = seed_statistics(held), comparisons(held)
            tables[f"{title}: {name}"] = main_table(held, held_stats, held_tests).drop(columns="% of teacher")
            long = pd.concat([long, _with_tests(held_stats, held_tests).assign(evaluated_on=f"{kind}:{name}")],
                             ignore_index=True)
    if len(tables) > 1:
        tables["robustness"] = robustness_table(tables, study.tasks)
    return StudyTables(f"{study.name}: {study.title}", [*score_notes(study), significance_note(tests)], tables, long)


def robustness_table(tables: dict[str, pd.DataFrame], tasks: list[str]) -> pd.DataFrame:
    """Per method, the dev score, each out-of-domain set's and the accuracy under each attack side by side,
    a column each per task: the cells (median [min, max] and marks) of the tables they come from."""
    columns = {}
    for heading, table in tables.items():
        cells = table.set_index("model")
        for task in tasks:
            columns[f"{task_name(task)} {heading.split(': ')[-1] if heading else 'dev'}"] = cells[task_name(task)]
    methods = [model for model in tables[""]["model"] if model != "teacher"]  # in the main table's order
    return pd.DataFrame(columns).reindex(methods).fillna("-").rename_axis("model").reset_index()


# what a run record holds besides the dev score, by its key: out-of-domain sets (`--eval-task`) and attacks
# (`--attack-recipe`), each entry with its `metrics` (`score` among them) and each example's prediction and label
HELD_OUT = {"ood": "out-of-domain", "attack": "under attack"}


def held_out_names(study: Study, kind: str) -> list[str]:
    """The out-of-domain sets (`kind` "ood") or attack recipes ("attack") the study's runs were tested on,
    in the order first met."""
    return list(dict.fromkeys(name for record in study.records for name in record.get(kind) or {}))


def held_out_study(study: Study, kind: str, name: str) -> Study:
    """The study as one out-of-domain set or attack sees it: each run's score, metrics and predictions are
    the set's and no teacher score is known, so the same statistics and tests apply (a run not tested on it
    is left out and counted missing)."""
    rows = []
    for run in study.runs.to_dict("records"):
        scored = (run["record"].get(kind) or {}).get(name)
        if scored:
            record = {**run["record"], "teacher": None, "predictions": {kind: scored},
                      "best": {"metric": f"{kind}_score", "value": scored["metrics"]["score"],
                               "metrics": {f"{kind}_{k}": v for k, v in scored["metrics"].items()},
                               **({"score_metrics": scored["score_metrics"]} if "score_metrics" in scored else {})}}
            rows.append({**run, "score": scored["metrics"]["score"], "record": record})
    return dataclasses.replace(study, runs=pd.DataFrame(rows, columns=study.runs.columns), notes=[], missing=[])


def write_score_tables(study: Study, folder: Path) -> Path:
    """`FOLDER/NAME.md`, `.tex` and `.csv` (the statistics) of a comparison or sweep study."""
    return write_tables(folder / study.name, score_tables(study))


def score_notes(study: Study) -> list[str]:
    """How the numbers were obtained, and what is missing."""
    teacher = study.teacher_scores()
    return [*study.notes,
            "teacher: " + ", ".join(f"{task_name(t)} {100 * v:.2f}" for t, v in teacher.items()) if teacher else "",
            describe_machines(study.records),
            "cells: the task's dev score x100 (the mean of GLUE's metrics for the task), "
            + (f"median over {study.seeds} seeds [min, max]; (n=K): only K seeds finished" if study.seeds > 1
               else "one run")
            + ("; % of teacher: 100 x score / teacher score, averaged over tasks" if study.kind == COMPARISON else "")
            + "; in the CSV: IQR, best learning rate and batch size, median training seconds",
            constant_predictors(study),
            *(f"missing: {line}" for line in study.missing)]


def constant_predictors(study: Study) -> str:
    """A note naming the runs that give every dev example the same class: they learned nothing past one
    class, and an attack cannot flip a constant prediction, so their accuracy under attack is only that
    class's share of the attacked examples. "" where no run does (or none kept its predictions)."""
    found = []
    for run in study.runs.to_dict("records"):
        dev = dev_predictions(run["record"])
        if dev is not None and np.issubdtype(dev[0].dtype, np.integer) and len(np.unique(dev[0])) == 1:
            found.append(f"{task_name(run['task'])} {run['variant']} seed {run['seed']}")
    return ("one class for every dev example (nothing learned past it; under attack nothing to flip, so its "
            "accuracy under attack is that class's share): " + ", ".join(found)) if found else ""


def _with_tests(stats: pd.DataFrame, tests: pd.DataFrame) -> pd.DataFrame:
    """The statistics of each task x variant with its significance tests beside them (none: as they are)."""
    return stats.merge(tests, on=["task", "variant"], how="left") if len(tests) else stats


def _cell(row: pd.Series) -> str:
    return score_cell(row["median"], row["min"], row["max"], int(row["n"]), int(row["planned"]))


def _mean(values) -> float:
    """The mean, or NaN when any value is missing (an average over some of the tasks misleads)."""
    values = [math.nan if v is None else float(v) for v in values]
    return math.nan if not values or any(math.isnan(v) for v in values) else statistics.fmean(values)


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"
