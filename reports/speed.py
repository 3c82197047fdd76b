"""The speed table: per method the median over repeats of each wall-clock and memory figure of its
runs, then the same divided by plain KD's and by AD2's, and the AD2 paper's speed claim next to
what the measurements say."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from reports.studies import Study
from reports.tables import StudyTables, describe_machines, write_tables

FIGURES = {  # column -> what it is, in the table's notes
    "generation_s": "seconds generating the augmented pool (0: no pool)",
    "teacher_s": "seconds loading the teacher and computing its soft labels for training set and pool",
    "train_s_per_epoch": "training seconds per epoch, evaluation excluded",
    "to_best_s": "seconds from the start to the best dev checkpoint (data, teacher, pool, training and "
                 "evaluation up to that checkpoint)",
    "examples_per_s": "training examples (originals and pool) per training second",
    "peak_rss_mb": "peak resident memory of the run's process, MB",
    "train_examples": "training examples per epoch (originals and pool rows, as the run's selector kept them)",
    "score": "best dev score x100 (the task's GLUE mean)",
}


def speed_figures(record: dict) -> dict[str, float]:
    """The speed figures of one run record (see FIGURES)."""
    t = record["timings_s"]
    before_training = sum(t.get(k, 0.0) for k in ("data", "teacher_inference", "augmentation", "teacher_labelling"))
    steps = record["throughput"]["global_steps"]
    fraction = record["best"]["step"] / steps if steps else 1.0
    return {
        "generation_s": t.get("augmentation", 0.0),
        "teacher_s": t.get("teacher_inference", 0.0) + t.get("teacher_labelling", 0.0),
        "train_s_per_epoch": t["training"] / record["config"]["train"]["num_train_epochs"],
        "to_best_s": before_training + fraction * (t["training"] + t.get("evaluation", 0.0)),
        "examples_per_s": record["throughput"]["train_examples_per_s"],
        "peak_rss_mb": record["peak_memory"]["cpu_rss_mb"],
        "train_examples": rows_per_epoch(record),
        "score": 100 * record["best"]["value"],
    }


def rows_per_epoch(record: dict) -> int:
    """The rows a run trained on per epoch: the selector's choice where the record counts it (`training_rows`),
    else the originals and the whole pool, as every run did before selectors."""
    if "training_rows" in record:
        return sum(record["training_rows"].values())
    return record["data"]["train_examples"] + (record.get("augmentation") or {}).get("pool_size", 0)


def measurements(study: Study) -> pd.DataFrame:
    """One row per measurement: task, variant, method, baseline, repeat and its figures."""
    runs = study.runs
    return pd.concat([runs[["task", "variant", "method", "baseline", "repeat"]].reset_index(drop=True),
                      pd.DataFrame([speed_figures(r) for r in runs["record"]], columns=list(FIGURES))], axis=1)


def speed_tables(study: Study) -> StudyTables:
    """The medians over repeats, then divided by plain KD's and by AD2's where the study has them;
    every measurement as long form."""
    measured = measurements(study)
    table = measured.groupby(["task", "variant"], sort=False)[list(FIGURES)].median().reset_index()
    tables = {"measured (median over repeats)": _rounded(table)}
    for reference in (_kd(measured), _ad2(measured)):
        if reference is not None:
            tables[f"divided by {reference}"] = _rounded(_ratios(table, reference))
    notes = [*study.notes, *(f"{name}: {what}" for name, what in FIGURES.items()), describe_machines(study.records),
             claim(measured)]
    return StudyTables(f"{study.name}: {study.title}", notes, tables, measured)


def write_speed_tables(study: Study, folder: Path) -> Path:
    """`FOLDER/NAME.md`, `.tex`, and `.csv` (every measurement)."""
    return write_tables(folder / study.name, speed_tables(study))


def claim(measured: pd.DataFrame) -> str:
    """The paper's speed claim next to what the measurements (`measurements`) found, whatever it is."""
    ad2 = _ad2(measured)
    if ad2 is None:
        return ""
    table = measured.groupby(["task", "variant"], sort=False)["to_best_s"].median()
    pools = measured.loc[measured["method"].isin(["mlm", "eda"]), "variant"].unique()
    found = [f"{task} {label} / AD2 = {table[task, label] / table[task, ad2]:.2f}"
             for task in measured["task"].unique() for label in pools if (task, label) in table.index]
    return ("the AD2 paper: AD2 up to 28x faster than text-editing augmentation (TinyBERT's, one V100); here, "
            "time to best dev: " + ("; ".join(found) if found else "no mlm or eda variant to compare"))


def _ratios(table: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Every figure divided by the reference variant's, per task (x / 0 is left empty)."""
    parts = []
    for _, group in table.groupby("task", sort=False):
        base = group.loc[group["variant"] == reference, list(FIGURES)].iloc[0]
        parts.append(group.assign(**{c: group[c] / base[c] if base[c] else float("nan") for c in FIGURES}))
    return pd.concat(parts)


def _rounded(table: pd.DataFrame) -> pd.DataFrame:
    return table.round({c: 2 for c in FIGURES})


def _kd(measured: pd.DataFrame) -> str | None:
    """The plain-KD variant (distilled, no method), if the study has one."""
    kd = measured.loc[(measured["baseline"] == "distill") & (measured["method"] == "none"), "variant"]
    return kd.iloc[0] if len(kd) else None


def _ad2(measured: pd.DataFrame) -> str | None:
    ad2 = measured.loc[measured["method"] == "ad2", "variant"]
    return ad2.iloc[0] if len(ad2) else None
