"""Runs as one pandas table: every run under a results folder or in an Optuna storage, one row each,
with its settings flattened into columns, for analyses beyond the shipped reports.

Columns: kind, task, method, objective, scheme, seed, student, teacher, score (the best dev score)
and best_metric; every parameter as `method.NAME`, `objective.NAME`, `scheme.NAME`, `kd.NAME`,
`train.NAME` and `data.NAME`; the best evaluation's metrics as `best.NAME`; wall-clock phases as
`seconds.NAME`; and where the run came from (`path`, or `study` and `trial`).
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState

from bench.parts.errors import KdbenchError
from bench.pipeline.records import RECORD_FILE
from bench.roles import ROLES
from bench.store.record_store import trial_records, trial_summary
from bench.store.studies import open_storage

# column prefix -> field of a stored config
SETTINGS = {**{role.name: role.params for role in ROLES}, "kd": "kd", "train": "train", "data": "data"}


def config_columns(config: dict) -> dict:
    """A stored run config (`RunConfig` as a dict) as flat columns."""
    columns = {role.name: config.get(role.stored_key, role.default) for role in ROLES}
    columns.update(teacher=config.get("teacher"))
    for prefix, field in SETTINGS.items():
        columns.update({f"{prefix}.{name}": value for name, value in (config.get(field) or {}).items()})
    return columns


def record_columns(record: dict) -> dict:
    """A run record as flat columns: its settings, its best score and metrics, its out-of-domain scores
    (`ood.hans`), its timings."""
    best = record.get("best") or {}
    return {"kind": record.get("kind"), "task": record.get("task"), "seed": record.get("seed"),
            **config_columns(record.get("config", {})), "score": best.get("value"), "best_metric": best.get("metric"),
            "teacher_fingerprint": (record.get("teacher") or {}).get("fingerprint"),
            **{f"best.{k}": v for k, v in (best.get("metrics") or {}).items()},
            **{f"{kind}.{name}": scored["metrics"]["score"] for kind in ("ood", "attack")
               for name, scored in (record.get(kind) or {}).items()},
            **{f"seconds.{k}": v for k, v in (record.get("timings_s") or {}).items()}}


def load_runs(source: str | Path) -> pd.DataFrame:
    """Every finished run of `source`: a results folder (each record.json below it: runs of `search`
    and `ablate`, the demo, single runs) or an Optuna storage URL (each finished trial's record)."""
    text = str(source)
    if "://" in text or text.startswith("journal:"):
        storage = open_storage(text, must_exist=True)
        rows = []
        for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
            trials = storage.get_all_trials(storage.get_study_id_from_name(summary.study_name), deepcopy=False,
                                            states=(TrialState.COMPLETE,))
            rows += [{**record_columns(record), "study": summary.study_name, "trial": trial.number}
                     for trial, record in zip(trials, trial_records(storage, trials))]
        return pd.DataFrame(rows)
    folder = Path(source)
    if not folder.is_dir():
        raise KdbenchError(f"no results folder or storage URL {source}: give a folder holding run records or a "
                           "storage such as sqlite:///kdbench-results/search/studies.db")
    return pd.DataFrame([{**record_columns(json.loads(path.read_text())), "path": str(path.parent)}
                         for path in sorted(folder.rglob(RECORD_FILE))])


def export_results(storage: optuna.storages.BaseStorage, path: str | Path) -> pd.DataFrame:
    """Every trial of every study, finished or not, one row each (its state, value, point, its search's
    settings as columns, its run's task, seed, best metrics and timings), written as CSV or Parquet by
    the file's suffix."""
    rows = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        grid = summary.study_name.rsplit("/", 1)[0] + "/grid"  # where the search's config is kept
        config = storage.get_study_user_attrs(storage.get_study_id_from_name(grid)).get("config", {})
        for trial in storage.get_all_trials(storage.get_study_id_from_name(summary.study_name), deepcopy=False):
            run = trial_summary(trial)
            point = {f"train.{name}": value for name, value in trial.params.items()}  # the search set these
            rows.append({"study": summary.study_name, "trial": trial.number, "state": trial.state.name,
                         "value": trial.value, **config_columns(config), **point, **trial.params,
                         "profile": trial.user_attrs.get("profile"), "task": run.get("task"), "seed": run.get("seed"),
                         **{f"best_{k}": v for k, v in (run.get("best") or {}).get("metrics", {}).items()},
                         **{f"seconds_{k}": v for k, v in (run.get("timings_s") or {}).items()}})
    table = pd.DataFrame(rows)
    path = Path(path)
    (table.to_parquet if path.suffix == ".parquet" else table.to_csv)(path, index=False)
    return table
