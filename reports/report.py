"""`kdbench report`: every study's tables (Markdown, LaTeX, CSV) and figures (PDF, PNG) in one
folder, an `index.html` that shows them all on one page, and `claims.md`, the AD2 paper's claims
checked against the studies.

Per study: its table (the main table for a comparison, the ablation table for a sweep, the speed
tables for a speed study); per task, the ablation curve (sweeps) or dev score against wall-clock
(comparisons and speed studies), accuracy under each attack against dev score (comparisons whose runs
were attacked), and the training curves. A study with no finished run yet is
listed with what is missing instead of tables; a study half-way is reported as far as it has got,
flagged incomplete.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.parts.errors import UnknownNameError
from bench.parts.tasks import get_task
from reports import figures
from reports.claims import check_claims, write_claims
from reports.html import write_index
from reports.scores import held_out_names, score_tables, task_name, value_label
from reports.speed import measurements, speed_tables
from reports.studies import SPEED, SWEEP, Study, find_studies
from reports.tables import StudyTables, write_tables

CLAIMS_FILE = "claims.md"  # the AD2 paper's claims against the studies reported (reports/claims.py)
# Where a comparison's runs are placed on the wall-clock axis: their training time. A pool's
# generation is paid once for all seeds and trials, so it is left to the speed study, which times it.
TRAINING_SECONDS = "training seconds (evaluation excluded)"
TO_BEST_SECONDS = "seconds to the best dev checkpoint"  # pool, teacher and training: see reports/speed.py
CAPTIONS = {
    "ablation": "median dev score over seeds per value, bar from the lowest to the highest seed, each seed a dot",
    "tradeoff": "dev score against wall-clock per variant (median; bars from min to max over seeds or repeats): "
                "training seconds for a comparison, seconds to the best checkpoint for a speed study (pool "
                "generation, teacher labelling, training and evaluation up to it)",
    "attack": "accuracy under attack against dev score per variant (median; bars from min to max over seeds), on "
              "the seeded sample of dev examples the attack was given: up and to the right is better on both",
    "curves": "dev score at each evaluation and training loss over training (median over seeds, band min to "
              "max); each variant's loss is its own objective (labels, KD, KD plus AD2's perturbed term), so "
              "compare shapes, not levels",
}


@dataclass
class Section:
    """What the report shows for one study."""

    study: Study
    tables: StudyTables | None = None
    files: list[Path] = field(default_factory=list)  # tables written: .md, .tex, .csv
    figures: dict[Path, str] = field(default_factory=dict)  # each PNG (a PDF beside it) and its caption

    @property
    def state(self) -> str:
        """"no finished runs yet", "incomplete" or "complete"."""
        return "no finished runs yet" if self.tables is None else "incomplete" if self.study.missing else "complete"


def build_report(folders: list[str | Path], output_dir: str | Path, *, names: list[str] | None = None,
                 storage: str | None = None) -> list[Section]:
    """Write the report of the studies in `folders` (all of them, or those called `names`) to
    `output_dir`: tables/, figures/ and index.html. Returns what was written, per study."""
    out = Path(output_dir)
    sections = []
    for study in find_studies([Path(f) for f in folders], storage=storage, names=names):
        section = Section(study)
        if len(study.runs):
            section.tables = speed_tables(study) if study.kind == SPEED else score_tables(study)
            markdown = write_tables(out / "tables" / study.name, section.tables)
            section.files = [markdown.with_suffix(s) for s in (".md", ".tex", ".csv")]
            section.figures = study_figures(study, out / "figures")
        sections.append(section)
    write_index(out / "index.html", sections)
    reported = [s for s in sections if s.tables is not None]
    write_claims(out / CLAIMS_FILE, check_claims([s.study for s in reported], {
        s.study.name: dev_rows(s.tables.long) for s in reported if "tested" in s.tables.long}))
    return sections


def dev_rows(long: pd.DataFrame) -> pd.DataFrame:
    """The long form's rows of dev scores, without those of out-of-domain sets and attacks (the claims are the
    dev set's)."""
    return long[long["evaluated_on"].isna()] if "evaluated_on" in long else long


def study_figures(study: Study, folder: Path) -> dict[Path, str]:
    """Per task: the ablation curve (sweep) or score against wall-clock, then the training curves;
    returns each PNG with its caption."""
    written = {}
    for task in study.tasks:
        runs = study.runs[study.runs["task"] == task]
        if runs.empty:
            continue
        stem = folder / f"{study.name}-{task}"
        ylabel = f"{task_name(task)} dev {score_label(task)} (x100)"
        if study.kind == SWEEP:
            values = runs.assign(value=[value_label(study, v) for v in runs["variant"]])
            fig = figures.ablation_figure(values, swept=study.swept, ylabel=ylabel)
            written[figures.save_figure(fig, stem.with_name(stem.name + "-ablation"))[1]] = CAPTIONS["ablation"]
        else:
            points, xlabel = _tradeoff_points(study, task)
            fig = figures.tradeoff_figure(points, xlabel=xlabel, ylabel=ylabel)
            written[figures.save_figure(fig, stem.with_name(stem.name + "-tradeoff"))[1]] = CAPTIONS["tradeoff"]
        for recipe in held_out_names(study, "attack") if study.kind != SWEEP else []:
            points = attack_points(runs, recipe)
            if len(points):
                fig = figures.robustness_figure(points, xlabel=ylabel, ylabel=f"{task_name(task)} accuracy under "
                                                f"{recipe} (x100)")
                written[figures.save_figure(fig, stem.with_name(f"{stem.name}-{recipe}"))[1]] = CAPTIONS["attack"]
        fig = figures.training_curves_figure(training_curves(runs), ylabel=ylabel)
        written[figures.save_figure(fig, stem.with_name(stem.name + "-curves"))[1]] = CAPTIONS["curves"]
    return written


def attack_points(runs: pd.DataFrame, recipe: str) -> pd.DataFrame:
    """Each run attacked with `recipe`: its variant, dev score and accuracy under the attack."""
    attacked = [(run["variant"], run["score"], run["record"]["attack"][recipe]["metrics"]["score"])
                for run in runs.to_dict("records") if recipe in (run["record"].get("attack") or {})]
    return pd.DataFrame(attacked, columns=["variant", "score", "attacked"])


def training_curves(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per evaluation (dev score) and per training-loss log (the mean loss over the last
    `logging_steps` steps; absent from records made before it was recorded) of each run, with its
    variant, seed (the repeat, for a speed study), epoch and step."""
    rows = []
    for run in runs.to_dict("records"):
        record, seed = run["record"], run.get("repeat", run["seed"])
        key = f"eval_{record['best']['metric']}"
        rows += [{"variant": run["variant"], "seed": seed, "epoch": e["epoch"], "step": e["step"],
                  "dev_score": e[key], "train_loss": math.nan} for e in record["evaluations"]]
        rows += [{"variant": run["variant"], "seed": seed, "epoch": e["epoch"], "step": e["step"],
                  "dev_score": math.nan, "train_loss": e["loss"]} for e in record.get("training_loss", [])]
    return pd.DataFrame(rows)


def score_label(task: str) -> str:
    """What a task's score is: its GLUE metric, or the mean of its metrics."""
    try:
        metrics = get_task(task).metrics
    except UnknownNameError:  # a task given by its own files
        return "score"
    return metrics[0] if len(metrics) == 1 else f"{'/'.join(metrics)} mean"


def _tradeoff_points(study: Study, task: str) -> tuple[pd.DataFrame, str]:
    if study.kind == SPEED:
        measured = measurements(study)
        measured = measured[measured["task"] == task]
        return (pd.DataFrame({"variant": measured["variant"], "seconds": measured["to_best_s"],
                              "score": measured["score"] / 100}), TO_BEST_SECONDS)
    runs = study.runs[study.runs["task"] == task]
    return (pd.DataFrame({"variant": runs["variant"], "score": runs["score"],
                          "seconds": [r["timings_s"]["training"] for r in runs["record"]]}), TRAINING_SECONDS)

