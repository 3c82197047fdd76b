"""Tables written with their provenance: a Markdown file (title, how the numbers were obtained,
the tables) and a CSV of the long-form numbers, both written atomically."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.search import SearchProfile
from bench.storage import atomic_file


def write_tables(stem: str | Path, title: str, notes: list[str], tables: dict[str, pd.DataFrame],
                 long: pd.DataFrame) -> Path:
    """`STEM.md` (title, notes as a list, each table under its heading) and `STEM.csv` (`long`)."""
    stem = Path(stem)
    parts = [f"# {title}", "\n".join(f"- {note}" for note in notes if note)]
    for heading, table in tables.items():
        parts += [f"## {heading}"] if heading else []
        blanks = table.astype(object).where(table.notna(), None)  # NaN (e.g. x / 0) printed as "-"
        parts.append(blanks.to_markdown(index=False, floatfmt="g", missingval="-"))
    with atomic_file(stem.with_suffix(".md")) as handle:
        handle.write("\n\n".join(parts) + "\n")
    with atomic_file(stem.with_suffix(".csv")) as handle:
        long.to_csv(handle, index=False)
    return stem.with_suffix(".md")


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
