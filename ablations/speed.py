"""`kdbench speed SPEC`: wall-clock and memory of every method of a spec, side by side in one run.

Each variant trains once per repeat (repeats interleaved: variant 1, 2, ..., then again), at the
profile's first grid point and seed, with the profile's data and epochs. Every measurement starts
from an empty cache, so pool generation and teacher labelling are timed, not read back, and runs
in a process of its own, so its peak memory is its own. The teacher's fine-tuning and the mlm
generator's training happen before (cached) and are not counted: every method shares the teacher,
and TinyBERT's augmentation uses a pre-trained BERT, where offline we have to make one.

Figures per variant (the median over repeats): generation time of the augmented pool, teacher
time (loading plus soft labels of training set and pool), training time per epoch, time to the
best dev score (everything before training, plus training and evaluation up to the best
checkpoint), examples per second, peak memory, and the dev score; then every figure divided by
plain KD's and by AD2's.
"""

from __future__ import annotations

import multiprocessing
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ablations.spec import AblationSpec, Variant
from ablations.study import prepare_task, run_config
from bench.runs import RunConfig
from reports.tables import describe_machines, write_tables

FIGURES = {  # column -> what it is, in the table's notes
    "generation_s": "seconds generating the augmented pool (0: no pool)",
    "teacher_s": "seconds loading the teacher and computing its soft labels for training set and pool",
    "train_s_per_epoch": "training seconds per epoch, evaluation excluded",
    "to_best_s": "seconds from the start to the best dev checkpoint (data, teacher, pool, training and "
                 "evaluation up to that checkpoint)",
    "examples_per_s": "training examples (originals and pool) per training second",
    "peak_rss_mb": "peak resident memory of the run's process, MB",
    "train_examples": "training examples per epoch (originals and pool)",
    "score": "best dev score (the task's GLUE mean)",
}


def run_speed(spec: AblationSpec, *, data_dir: str | None = None, output_dir: str = "kdbench-results/speed",
              cache_dir: str | None = None, repeats: int = 1, plugins: Sequence[str] = ()) -> pd.DataFrame:
    """Measure every task x variant `repeats` times; write and return the table of medians."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, records = [], []
    for task in spec.tasks:
        setup = prepare_task(spec, task, data_dir=data_dir, cache_dir=cache_dir)
        for repeat in range(repeats):
            for variant in spec.variants:
                config = _measured_config(spec, run_config(spec, setup, variant, cache_dir=None))
                with tempfile.TemporaryDirectory(dir=out, prefix=".fresh-") as fresh:
                    record = measure(variant.baseline, replace(config, cache_dir=fresh, output_dir=f"{fresh}/run"),
                                     plugins)
                records.append(record)
                rows.append({"task": task, "variant": variant.label, "repeat": repeat, **figures(record)})
    measured = pd.DataFrame(rows)
    table = measured.groupby(["task", "variant"], sort=False)[list(FIGURES)].median().reset_index()
    tables = {"measured (median over repeats)": _rounded(table)}
    for reference in (_kd(spec), _ad2(spec)):
        if reference is not None:
            tables[f"divided by {reference.label}"] = _rounded(_ratios(table, reference.label))
    write_tables(out / spec.name, f"{spec.name}: {spec.description}",
                 _notes(spec, repeats, records, table), tables, measured)
    return table


def measure(kind: str, config: RunConfig, plugins: Sequence[str] = ()) -> dict:
    """One run in a new process (its own peak memory, nothing warm); returns its record."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context, max_tasks_per_child=1) as pool:
        return pool.submit(_run, kind, config, tuple(plugins)).result()


def _run(kind: str, config: RunConfig, plugins: tuple[str, ...]) -> dict:
    from bench.cli import quiet_libraries
    from bench.runs import run_distill, run_finetune
    from methods import load_plugins

    quiet_libraries()
    load_plugins(plugins)
    return (run_distill if kind == "distill" else run_finetune)(config)


def figures(record: dict) -> dict[str, float]:
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
        "train_examples": record["data"]["train_examples"] + (record.get("augmentation") or {}).get("pool_size", 0),
        "score": record["best"]["value"],
    }


def _measured_config(spec: AblationSpec, config: RunConfig) -> RunConfig:
    """The run at the profile's first grid point and seed (the search is not what is measured)."""
    p = spec.profile
    return replace(config, train=replace(config.train, learning_rate=p.learning_rates[0],
                                         per_device_train_batch_size=p.batch_sizes[0], seed=p.seeds[0],
                                         num_train_epochs=p.num_train_epochs))


def _ratios(table: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Every figure divided by the reference variant's, per task (x / 0 is left empty)."""
    parts = []
    for _, group in table.groupby("task", sort=False):
        base = group.loc[group["variant"] == reference, list(FIGURES)].iloc[0]
        parts.append(group.assign(**{c: group[c] / base[c] if base[c] else float("nan") for c in FIGURES}))
    return pd.concat(parts)


def _rounded(table: pd.DataFrame) -> pd.DataFrame:
    return table.round({c: (4 if c == "score" else 2) for c in FIGURES})


def _kd(spec: AblationSpec) -> Variant | None:
    return next((v for v in spec.variants if v.baseline == "distill" and v.method == "none" and not v.kd), None)


def _ad2(spec: AblationSpec) -> Variant | None:
    return next((v for v in spec.variants if v.method == "ad2"), None)


def _notes(spec: AblationSpec, repeats: int, records: list[dict], table: pd.DataFrame) -> list[str]:
    p = spec.profile
    notes = [f"each variant trained {repeats} time(s), repeats interleaved, at learning rate {p.learning_rates[0]}, "
             f"batch size {p.batch_sizes[0]}, seed {p.seeds[0]}, {p.num_train_epochs:g} epochs, "
             f"{p.max_train_examples or 'all'} training examples, max length {p.max_length} (profile {p.name})",
             "every run in a new process with an empty cache: pools generated and labelled, not read back; teacher "
             "fine-tuning and the mlm generator's training are done beforehand and not counted",
             *(f"{name}: {what}" for name, what in FIGURES.items()),
             describe_machines(records)]
    ad2 = _ad2(spec)
    if ad2 is not None:
        notes.append(_claim(table, ad2.label, spec))
    return notes


def _claim(table: pd.DataFrame, ad2: str, spec: AblationSpec) -> str:
    """The paper's speed claim next to what this run found, whatever it is."""
    found = []
    for task, group in table.groupby("task", sort=False):
        base = group.loc[group["variant"] == ad2, "to_best_s"].iloc[0]
        pools = [v.label for v in spec.variants if v.method in ("mlm", "eda")]
        found += [f"{task} {label} / AD2 = {group.loc[group['variant'] == label, 'to_best_s'].iloc[0] / base:.2f}"
                  for label in pools]
    return ("the AD2 paper: AD2 up to 28x faster than text-editing augmentation (TinyBERT's, one V100); here, "
            "time to best dev: " + ("; ".join(found) if found else "no mlm or eda variant to compare"))
