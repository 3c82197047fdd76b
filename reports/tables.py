"""Tables written with their provenance: Markdown (title, how the numbers were obtained, the
tables), LaTeX (booktabs tabulars, ready to paste into a paper) and a CSV of the long-form numbers,
each written atomically."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.pipeline.storage import atomic_file
from bench.store.studies import SearchProfile


@dataclass
class StudyTables:
    """A study's tables (heading -> table), with its title, the notes that say how the numbers were
    obtained, and the long-form numbers behind them."""

    title: str
    notes: list[str]
    tables: dict[str, pd.DataFrame]
    long: pd.DataFrame


def write_tables(stem: str | Path, study: StudyTables) -> Path:
    """`STEM.md` (title, notes as a list, each table under its heading), `STEM.tex` (each table as a
    booktabs tabular, title and notes as comments) and `STEM.csv` (the long form); returns the .md."""
    stem = Path(stem)
    title, notes, tables, long = study.title, [n for n in study.notes if n], study.tables, study.long
    parts = [f"# {title}", "\n".join(f"- {note}" for note in notes)]
    latex = [f"% {title}", *(f"% - {note}" for note in notes), "% needs \\usepackage{booktabs}"]
    for heading, table in tables.items():
        parts += [f"## {heading}"] if heading else []
        cells = display_cells(table)
        parts.append(cells.to_markdown(index=False, disable_numparse=True, colalign=_alignment(cells)))
        latex += [f"\n% {heading}" if heading else "", to_latex(cells)]
    for suffix, text in ((".md", "\n\n".join(parts) + "\n"), (".tex", "\n".join(latex))):
        with atomic_file(stem.with_suffix(suffix)) as handle:
            handle.write(text)
    with atomic_file(stem.with_suffix(".csv")) as handle:
        long.to_csv(handle, index=False)
    return stem.with_suffix(".md")


def display_cells(table: pd.DataFrame) -> pd.DataFrame:
    """Every cell as the text tables show: numbers in their shortest form ("%g"), missing ones
    (e.g. x / 0) as "-", text as it is (so "79.70" keeps its digits)."""
    def text(value) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        return f"{value:g}" if isinstance(value, float) else str(value)
    return table.astype(object).map(text)


def to_latex(cells: pd.DataFrame) -> str:
    """A booktabs tabular of display cells: labels left-aligned, numbers right; special characters
    escaped."""
    styler = cells.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
    return styler.to_latex(hrules=True, column_format="".join(a[0] for a in _alignment(cells)))


def _alignment(cells: pd.DataFrame) -> tuple[str, ...]:
    """Left for the first column and columns of labels, right for columns of numbers (cells that
    start with a digit or are "-", like "77.41 [77.18, 77.98]")."""
    def numeric(column: pd.Series) -> bool:
        return all(text[:1].isdigit() or text == "-" for text in column)
    return tuple("left" if i == 0 or not numeric(cells[c]) else "right" for i, c in enumerate(cells.columns))


def score_cell(median: float, low: float, high: float, n: int, planned: int) -> str:
    """A score over seeds, x100 as GLUE tables print it: "median [min, max]"; one run prints alone;
    fewer runs than planned are flagged "(n=K)"."""
    if n == 0:
        return "-"
    cell = score_text(median) + (f" [{score_text(low)}, {score_text(high)}]" if n > 1 else "")
    return cell + (f" (n={n})" if n < planned else "")


def score_text(value: float | None) -> str:
    """A 0-1 score as tables print it: x100, two decimals; "-" when missing."""
    return "-" if value is None or math.isnan(value) else f"{100 * value:.2f}"


def profile_note(profile: SearchProfile) -> str:
    """How a search profile trains, in one line."""
    seeds = ", ".join(map(str, profile.seeds))
    subset = f"{profile.max_train_examples}-example training subset" if profile.max_train_examples else "full training set"
    return (f"profile {profile.name}: learning rate {{{', '.join(map(str, profile.learning_rates))}}} x batch size "
            f"{{{', '.join(map(str, profile.batch_sizes))}}} searched at seed {profile.seeds[0]}, then the best point "
            f"at seeds {seeds}; {subset}, max length {profile.max_length}, {profile.num_train_epochs:g} epochs")


def describe_machines(records: list[dict]) -> str:
    """The machines (device, threads, host) and code versions the records were measured on."""
    machines, commits = set(), set()
    for record in records:
        env = record.get("environment", {})
        device = env.get("device", {})
        detail = f"{device.get('count', 1)} GPU" if device.get("type") == "cuda" else f"{device.get('threads')} threads"
        machines.add(f"{device.get('type')} {device.get('name')} ({detail}) on {env.get('host')}")
        commits.add(env.get("git_commit") or "unknown")
    return (f"measured on {'; '.join(sorted(machines))}; torch {_versions(records, 'torch')}, transformers "
            f"{_versions(records, 'transformers')}; kdbench commit {', '.join(sorted(commits))}") if records else ""


def _versions(records: list[dict], package: str) -> str:
    return ", ".join(sorted({str(r.get("environment", {}).get("packages", {}).get(package)) for r in records}))
