"""The finished runs of a study, read back for tables and figures: one row per run, with its record.

Three commands make studies, each in its own results folder, and `find_studies` recognises them:
- `kdbench ablate` writes `studies/NAME.json`, which says which search of the Optuna storage beside
  it is each task x variant; the runs are read from the storage, so a study still running, or
  stopped half-way, is reported as far as it has got, with what is missing;
- `kdbench speed` writes `NAME.json` with the record of every measurement;
- `kdbench demo` writes one run folder (`record.json`) per model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.parts.errors import KdbenchError, UnknownNameError
from bench.pipeline.config import DEMO_METHODS
from bench.pipeline.config import PROFILE_NOTE as DEMO_PROFILE
from bench.pipeline.records import RECORD_FILE
from bench.pipeline.storage import write_json
from bench.roles import ROLES
from bench.store.studies import default_storage, load_search, open_storage, search_state

COMPARISON, SWEEP, SPEED = "comparison", "sweep", "speed"  # kinds of study
MANIFEST_DIR = "studies"  # where `kdbench ablate` writes the manifest of each spec


@dataclass
class Study:
    """A study's runs and what it planned: `runs` has one row per finished run (task, variant, seed,
    repeat, score, record), `planned` every (task, variant) in the study's order."""

    name: str
    title: str
    kind: str
    swept: str  # what the variants differ in: "variant", or the swept parameter
    runs: pd.DataFrame
    planned: list[tuple[str, str]]
    seeds: int  # runs planned per task x variant (seeds, or repeats of a speed study)
    source: Path
    notes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # each task x variant not complete, and how to finish

    @property
    def records(self) -> list[dict]:
        return list(self.runs["record"])

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(task for task, _ in self.planned))

    @property
    def variants(self) -> list[str]:
        return list(dict.fromkeys(variant for _, variant in self.planned))

    def teacher_scores(self) -> dict[str, float]:
        """Each task's teacher dev score, from the records of the runs distilled from it."""
        scores = {}
        for record in self.records:
            best = (record.get("teacher") or {}).get("best")
            if best and best.get("value") is not None:
                scores[record["task"]] = best["value"]
        return scores


def write_manifest(path: Path, *, name: str, title: str, swept: str, profile: dict, notes: list[str], spec: str,
                   searches: list[dict]) -> None:
    """What `kdbench ablate` plans, written before it runs: each search as task, variant and study
    name, with the spec's text and notes on how it runs."""
    write_json(path, {"kind": SWEEP if swept != "variant" else COMPARISON, "name": name, "title": title,
                      "swept": swept, "profile": profile, "notes": notes, "spec": spec, "searches": searches})


def read_ablation(manifest: Path, storage: str | None = None) -> Study:
    """An ablation study as far as its searches have got (storage: the folder's `studies.db` unless given)."""
    plan = json.loads(manifest.read_text())
    store = open_storage(storage or default_storage(manifest.parent.parent), must_exist=True)
    rows, missing = [], []
    for arm in plan["searches"]:
        where = f"{arm['task']} / {arm['variant']}"
        try:
            state = search_state(store, load_search(store, arm["study"]))
        except UnknownNameError:
            missing.append(f"{where}: search {arm['study']} is not in this storage; give `--storage` the one "
                           "`kdbench ablate` used")
            continue
        failed = (f"; {state.failed} failed or interrupted, to be run again (not counted)" if state.failed else "")
        if state.grid_done == state.seeds_done == 0:
            missing.append(f"{where}: not started{failed}")
        elif not state.complete:
            missing.append(f"{where}: {state.grid_done} of {state.grid_points} grid points and {state.seeds_done} "
                           f"of {state.seeds} seeds done{failed}")
        rows += [_row(arm["task"], arm["variant"], record) for record in state.records]
    if missing:
        missing.append(f"rerun `kdbench ablate` on the spec (same --output-dir and --storage) to finish {plan['name']}")
    return Study(plan["name"], plan["title"], plan["kind"], plan["swept"], _frame(rows),
                 [(a["task"], a["variant"]) for a in plan["searches"]], len(plan["profile"]["seeds"]), manifest,
                 notes=plan["notes"], missing=missing)


def write_speed_results(path: Path, *, name: str, title: str, notes: list[str], measurements: list[dict]) -> None:
    """What `kdbench speed` measured: per measurement task, variant, method, repeat and run record."""
    write_json(path, {"kind": SPEED, "name": name, "title": title, "notes": notes, "measurements": measurements})


def read_speed(path: Path) -> Study:
    """A speed study: every measurement's record (repeats are its `seed` column's counterpart)."""
    data = json.loads(path.read_text())
    measured = data["measurements"]
    rows = [{**_row(m["task"], m["variant"], m["record"]), "repeat": m["repeat"], "method": m["method"],
             "baseline": m["baseline"]} for m in measured]
    planned = list(dict.fromkeys((m["task"], m["variant"]) for m in measured))
    repeats = max((m["repeat"] for m in measured), default=-1) + 1
    return Study(data["name"], data["title"], SPEED, "variant", _frame(rows, ("repeat", "method", "baseline")),
                 planned, repeats, path, notes=data["notes"])


def read_demo(folder: Path) -> Study:
    """The demo's runs (no KD, KD, KD with each method), one seed each, as a study named after the
    folder ("demo" by default)."""
    records = [json.loads(path.read_text()) for path in sorted(folder.glob(f"*/{RECORD_FILE}"))]
    order = list(DEMO_METHODS)  # no KD first, then KD and the methods in the demo's order
    records.sort(key=lambda r: -1 if r["kind"] == "finetune" else order.index(r["method"]) if r["method"] in order
                 else len(order))
    rows = [_row(r["task"], variant_label(r), r) for r in records]
    planned = list(dict.fromkeys((row["task"], row["variant"]) for row in rows))
    notes = [f"students: {r['config']['model']}, {r['config']['train']['num_train_epochs']:g} epochs at learning "
             f"rate {r['config']['train']['learning_rate']:g}" for r in records[:1]]  # the same for every student
    return Study(folder.name, "no KD, KD and KD with each augmentation method on an SST-2 subset, one seed",
                 COMPARISON, "variant", _frame(rows), planned, 1, folder, notes=[*notes, DEMO_PROFILE])


def find_studies(folders: list[Path], *, storage: str | None = None, names: list[str] | None = None) -> list[Study]:
    """Every study in `folders` (ablation, speed or demo results), or only those called `names`."""
    absent = [str(folder) for folder in folders if not folder.is_dir()]
    if absent:
        raise KdbenchError(f"no results folder {', '.join(absent)}: run `kdbench demo`, `kdbench ablate SPEC` or "
                           "`kdbench speed` first, or give the folders they wrote to (their --output-dir)")
    found: dict[str, tuple[Path, Callable[[Path], Study]]] = {}

    def add(name: str, path: Path, reader: Callable[[Path], Study]) -> None:
        if name in found:
            raise KdbenchError(f"two studies are called {name!r}: {found[name][0]} and {path}; report them apart")
        found[name] = path, reader

    for folder in folders:
        for manifest in sorted((folder / MANIFEST_DIR).glob("*.json")):
            add(manifest.stem, manifest, lambda path: read_ablation(path, storage))
        for path in sorted(folder.glob("*.json")):
            if json.loads(path.read_text()).get("kind") == SPEED:
                add(path.stem, path, read_speed)
        if any(folder.glob(f"*/{RECORD_FILE}")):
            add(folder.name, folder, read_demo)
    for name in names or []:
        if name not in found:
            raise UnknownNameError("study", name, found)
    chosen = names or list(found)
    if not chosen:
        raise KdbenchError(f"no study found in {', '.join(map(str, folders))}: run `kdbench demo`, `kdbench ablate "
                           "SPEC` or `kdbench speed` first, or give their --output-dir folders")
    return [found[name][1](found[name][0]) for name in chosen]


# The labels of the built-in methods, for records written before records kept their labels.
EARLIER_LABELS = {"none": "KD", "ad2": "AD2", "eda": "EDA", "backtranslation": "back-translation", "mlm": "masked-LM"}


def variant_label(record: dict) -> str:
    """A run's name in tables, from its record: "no KD" (labels only), "KD", or the method's label,
    joined by the objective's and the scheme's where they are not the defaults ("AD2 + annealing")."""
    if record["kind"] == "finetune":
        return "no KD"
    method = record.get("method_info", {}).get("label") or EARLIER_LABELS.get(record["method"], record["method"])
    infos = [(record.get(f"{role.name}_info"), role.default) for role in ROLES[1:]]
    others = [info["label"] for info, default in infos if info and info["name"] != default]
    if others and method == "KD":
        return " + ".join(others)
    return " + ".join([method, *others])


def _row(task: str, variant: str, record: dict) -> dict:
    return {"task": task, "variant": variant, "seed": record["seed"], "score": record["best"]["value"],
            "record": record}


def _frame(rows: list[dict], extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """The runs table, with its columns even when there are no runs yet."""
    return pd.DataFrame(rows, columns=["task", "variant", "seed", "score", "record", *extra])
