"""The paper's protocol on Optuna: grid over learning rate x batch size, then the best one over seeds.

Two Optuna studies per configuration (task, method, parameters, models, profile), in one storage:
  NAME/grid   GridSampler over the learning-rate x batch-size grid, at the first seed;
  NAME/seeds  GridSampler over the seeds, at the grid's best learning rate and batch size.
Optuna's storage is the results store: every trial carries its full run record in its user
attributes. A SQLite file in the results folder is the default; any SQLAlchemy URL or a journal
file (`journal:PATH`) lets many `kdbench worker` processes share the studies. GridSampler gives
trial number i the i-th grid point, so workers never run one point twice; a trial whose worker
died is failed once its heartbeat is stale and retried (RetryHeartbeatStaleTrialCallback). A run
that already finished (the grid's best at the first seed) is read back, not trained again.
Workers advance a search one trial at a time (`advance`), so a worker given many searches (an
ablation) moves to another one while a search's remaining points run elsewhere.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import sqlalchemy
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from bench.cache import digest
from bench.errors import UnknownNameError
from bench.records import RECORD_FILE, read_record
from bench.runs import RunConfig, run_distill, run_finetune
from bench.storage import write_json

GRID, SEEDS = "grid", "seeds"


@dataclass(frozen=True)
class SearchProfile:
    """How much of the paper's protocol to run; recorded with every trial."""

    name: str
    learning_rates: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    num_train_epochs: float
    max_length: int
    max_train_examples: int | None
    seeds: tuple[int, ...] = (42, 43, 44, 45, 46)


PROFILES = {
    # METHODS.md as is: 6 epochs, lr in {1e-5 .. 1e-4}, batch size in {16, 32}, length 512 (a GPU job)
    "paper": SearchProfile("paper", (1e-5, 3e-5, 5e-5, 7e-5, 9e-5, 1e-4), (16, 32), 6, 512, None),
    # for a CPU: a 1,000-example subset, length 64, 2 epochs, a 2 x 2 grid
    "quick": SearchProfile("quick", (5e-5, 1e-4), (16, 32), 2, 64, 1000),
}


def open_storage(url: str, *, heartbeat_interval: int = 60, grace_period: int = 180,
                 max_retry: int = 3) -> optuna.storages.BaseStorage:
    """`sqlite:///file.db`, any SQLAlchemy URL (heartbeats: a killed worker's trial is failed after
    `grace_period` seconds and retried up to `max_retry` times), or `journal:PATH` (Optuna's journal
    file, for machines sharing a file system; it has no heartbeats, so a killed worker's trial
    stays running)."""
    if url.startswith("journal:"):
        return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    for attempt in range(3):
        try:
            with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                                  heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry))
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):
            # workers started together race to create a new database's schema; the loser finds it made
            if attempt == 2:
                raise
            time.sleep(1 + attempt)


def study_name(config: RunConfig, kind: str, profile: SearchProfile) -> str:
    """A name per configuration: what is searched (lr, batch size, seed) is left out of the key."""
    fixed = dataclasses.asdict(replace(config, output_dir=None, resume=False,
                                       train=replace(config.train, learning_rate=0, per_device_train_batch_size=0,
                                                     seed=0)))
    return f"{config.data.task}-{kind}-{config.method}-{digest(fixed, dataclasses.asdict(profile))}"


def apply_profile(config: RunConfig, profile: SearchProfile) -> RunConfig:
    data = replace(config.data, max_length=profile.max_length, max_train_examples=profile.max_train_examples)
    return replace(config, data=data, train=replace(config.train, num_train_epochs=profile.num_train_epochs))


def spread(values: list[float]) -> dict[str, float]:
    """Median, min, max and inter-quartile range of per-seed scores."""
    q1, q3 = np.percentile(values, [25, 75])
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "iqr": float(q3 - q1),
            "n": len(values)}


def _objective(config: RunConfig, kind: str, profile: SearchProfile, results: Path, fixed: dict,
               space: dict[str, list]):
    run = run_distill if kind == "distill" else run_finetune

    def objective(trial: optuna.Trial) -> float:
        values = {**fixed, **{k: trial.suggest_categorical(k, v) for k, v in space.items()}}
        train = replace(config.train, learning_rate=values["learning_rate"],
                        per_device_train_batch_size=values["per_device_train_batch_size"], seed=values["seed"])
        folder = results / "runs" / digest(dataclasses.asdict(config), kind, values)
        if (folder / RECORD_FILE).is_file():  # the same run already finished (e.g. the grid's best at seed 1)
            record = read_record(folder)
        else:
            record = run(replace(config, train=train, output_dir=str(folder), resume=True))
        trial.set_user_attr("record", record)
        trial.set_user_attr("profile", profile.name)
        return record["best"]["value"]

    return objective


DONE, RAN, BUSY = "done", "ran", "busy"  # what one call of `advance` did


@dataclass(frozen=True)
class StoredSearch:
    """What a search's grid study holds for its workers: the run configuration, kind and profile."""

    name: str
    config: RunConfig
    kind: str
    profile: SearchProfile


def advance(storage: optuna.storages.BaseStorage, search: StoredSearch, results: Path) -> str:
    """Run at most one trial of `search`: RAN after a trial, DONE when its grid and seeds are
    complete, BUSY when every remaining point is running in another worker (then stale trials are
    failed, and their retries come back as waiting trials) rather than start a duplicate."""
    name, config, kind, profile = search.name, search.config, search.kind, search.profile
    fixed: dict = {"seed": profile.seeds[0]}
    for stage, space in ((GRID, _grid_space(profile)), (SEEDS, {"seed": list(profile.seeds)})):
        study = _study(storage, name, stage, space)
        states = [t.state for t in study.get_trials(deepcopy=False)]
        complete, running = states.count(TrialState.COMPLETE), states.count(TrialState.RUNNING)
        points = math.prod(map(len, space.values()))
        if complete < points:
            if complete + running >= points and TrialState.WAITING not in states:
                fail_stale_trials(study)
                return BUSY
            study.optimize(_objective(config, kind, profile, results, fixed, space), n_trials=1)
            return RAN
        fixed = study.best_params
    return DONE


def run_searches(storage: optuna.storages.BaseStorage, names: list[str], results_dir: str | Path,
                 poll_s: float = 1.0) -> list[StoredSearch]:
    """Work on searches `names` until all are complete, one trial at a time in turn, so workers on
    other machines running the same list spread over its searches; return the searches."""
    searches = [load_search(storage, name) for name in names]  # an unknown name fails before any training
    pending = list(searches)
    while pending:
        states = [advance(storage, search, Path(results_dir)) for search in pending]
        pending = [search for search, state in zip(pending, states) if state != DONE]
        if pending and all(state == BUSY for state in states if state != DONE):
            time.sleep(poll_s)
    return searches


@dataclass(frozen=True)
class SearchState:
    """How far a search has got: grid points and seeds complete, and the finished seed runs' records."""

    grid_done: int
    grid_points: int
    seeds_done: int
    seeds: int
    best_params: dict | None
    records: list[dict]

    @property
    def complete(self) -> bool:
        return self.grid_done == self.grid_points and self.seeds_done == self.seeds


def search_state(storage: optuna.storages.BaseStorage, search: StoredSearch) -> SearchState:
    """Where `search` stands, read from the storage (a search still running elsewhere included)."""
    (grid_id, grid), (_, seeds) = (_complete_trials(storage, f"{search.name}/{stage}") for stage in (GRID, SEEDS))
    seeds = sorted(seeds, key=lambda t: t.params["seed"])
    best = storage.get_best_trial(grid_id).params if grid else None  # Optuna's choice, as in `advance`
    points = math.prod(map(len, _grid_space(search.profile).values()))
    return SearchState(len(grid), points, len(seeds), len(search.profile.seeds), best,
                       [t.user_attrs["record"] for t in seeds])


def _complete_trials(storage: optuna.storages.BaseStorage, study: str) -> tuple[int | None, list]:
    """A study's id and complete trials; none when it does not exist yet (read only: nothing is created)."""
    try:
        study_id = storage.get_study_id_from_name(study)
    except KeyError:
        return None, []
    return study_id, storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE,))


def search_summary(storage: optuna.storages.BaseStorage, search: StoredSearch) -> dict:
    """The grid's best point and the spread of its per-seed scores."""
    state = search_state(storage, search)
    scores = [record["best"]["value"] for record in state.records]
    return {"study": search.name, "profile": search.profile.name, "best_params": state.best_params,
            "scores": scores, **spread(scores)}


def load_search(storage: optuna.storages.BaseStorage, name: str) -> StoredSearch:
    """The configuration, kind (distill or finetune) and profile stored with search `name`."""
    try:
        attrs = storage.get_study_user_attrs(storage.get_study_id_from_name(f"{name}/{GRID}"))
    except KeyError:
        searches = [s.study_name.removesuffix(f"/{GRID}") for s in optuna.get_all_study_summaries(storage)
                    if s.study_name.endswith(f"/{GRID}")]
        raise UnknownNameError("search", name, searches) from None
    profile = SearchProfile(**{k: tuple(v) if isinstance(v, list) else v for k, v in attrs["profile"].items()})
    return StoredSearch(name, config_from_dict(attrs["config"]), attrs["kind"], profile)


def config_from_dict(values: dict) -> RunConfig:
    """The RunConfig stored with a study (nested dataclasses rebuilt from their dicts)."""
    nested = {f.name: f.default_factory for f in dataclasses.fields(RunConfig)
              if dataclasses.is_dataclass(f.default_factory)}
    return RunConfig(**{k: nested[k](**v) if k in nested else v for k, v in values.items()})


def create_search(config: RunConfig, *, kind: str, profile: str | SearchProfile,
                  storage: optuna.storages.BaseStorage) -> str:
    """Create (or find) the grid study of this configuration and store what a worker needs to run it."""
    chosen = PROFILES[profile] if isinstance(profile, str) else profile
    config = apply_profile(config, chosen)
    name = study_name(config, kind, chosen)
    grid = _study(storage, name, GRID, _grid_space(chosen))
    grid.set_user_attr("config", dataclasses.asdict(config))
    grid.set_user_attr("kind", kind)
    grid.set_user_attr("profile", dataclasses.asdict(chosen))
    return name


def run_worker(storage: optuna.storages.BaseStorage, name: str, results_dir: str | Path) -> dict:
    """Take part in search `name` until its grid and its seeds are complete; return the summary."""
    return search_summary(storage, run_searches(storage, [name], results_dir)[0])


def search(config: RunConfig, *, kind: str = "distill", profile: str | SearchProfile = "quick",
           storage: str | None = None, results_dir: str = "kdbench-results/search") -> dict:
    """Grid, then seeds, in this process (other workers may join); returns the best configuration
    and the spread of its per-seed scores, also written to RESULTS/summaries/STUDY.json."""
    results = Path(results_dir)
    results.mkdir(parents=True, exist_ok=True)
    store = open_storage(storage or default_storage(results))
    summary = run_worker(store, create_search(config, kind=kind, profile=profile, storage=store), results)
    write_json(results / "summaries" / f"{summary['study']}.json", summary)
    return summary


def default_storage(results_dir: str | Path) -> str:
    return f"sqlite:///{Path(results_dir) / 'studies.db'}"


def _grid_space(profile: SearchProfile) -> dict[str, list]:
    return {"learning_rate": list(profile.learning_rates), "per_device_train_batch_size": list(profile.batch_sizes)}


def _study(storage, name: str, stage: str, space: dict[str, list]) -> optuna.Study:
    sampler = optuna.samplers.GridSampler(space, seed=0)
    try:  # loading first: create_study(load_if_exists=True) logs a line each time a worker polls
        return optuna.load_study(study_name=f"{name}/{stage}", storage=storage, sampler=sampler)
    except KeyError:
        return optuna.create_study(storage=storage, study_name=f"{name}/{stage}", direction="maximize",
                                   load_if_exists=True, sampler=sampler)


def export_results(storage: optuna.storages.BaseStorage, path: str | Path) -> pd.DataFrame:
    """Every trial of every study, one row each (params, value, state, the record's main fields),
    written as CSV or Parquet by the file's suffix."""
    rows = []
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        for trial in study.trials:
            record = trial.user_attrs.get("record", {})
            rows.append({"study": summary.study_name, "trial": trial.number, "state": trial.state.name,
                         "value": trial.value, **trial.params, "profile": trial.user_attrs.get("profile"),
                         "task": record.get("task"), "method": record.get("method"), "seed": record.get("seed"),
                         **{f"best_{k}": v for k, v in record.get("best", {}).get("metrics", {}).items()},
                         **{f"seconds_{k}": v for k, v in record.get("timings_s", {}).items()}})
    table = pd.DataFrame(rows)
    path = Path(path)
    (table.to_parquet if path.suffix == ".parquet" else table.to_csv)(path, index=False)
    return table
