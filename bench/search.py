"""The paper's protocol on Optuna: grid over learning rate x batch size, then the best one over seeds.

Two Optuna studies per configuration (task, method, parameters, models, profile), in one storage:
  NAME/grid   every point of the learning-rate x batch-size grid, at the first seed;
  NAME/seeds  every seed, at the grid's best learning rate and batch size.
Optuna's storage is the results store: every trial carries its full run record in its user
attributes. A SQLite file in the results folder is the default; any SQLAlchemy URL or a journal
file (`journal:PATH`) lets many `kdbench worker` processes share the studies.

A study is complete when every planned point has a finished trial of its own. Points are handed
out here, not by Optuna's GridSampler: each trial is enqueued with the parameters of a point that
has no finished, running or queued trial (`enqueue_trial`), so a point whose trial failed or was
interrupted is simply run again, by this worker or another. (GridSampler counts a failed trial's
point as visited and, once every point is visited, re-samples finished ones, so an interrupted
seed was never retried and another seed's run was counted twice.) A trial whose worker died is
failed once its heartbeat is stale and its point is retried. A run that already finished (the
grid's best at the first seed) is read back, not trained again; two workers that reach one run
together take turns on a file lock, so it is never trained twice at once.
Workers advance a search one trial at a time (`advance`), so a worker given many searches (an
ablation) moves to another one while a search's remaining points run elsewhere.
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import sqlalchemy
from filelock import FileLock
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from bench.cache import digest
from bench.config import MIN_MAX_LENGTH
from bench.errors import KdbenchError, UnknownNameError
from bench.fields import AT_LEAST_ONE, POSITIVE, SEED, Range, check_ranges
from bench.records import RECORD_FILE, read_record
from bench.runs import RunConfig, identity, run_distill, run_finetune
from bench.storage import write_json

GRID, SEEDS = "grid", "seeds"


@dataclass(frozen=True)
class SearchProfile:
    """How much of the paper's protocol to run; recorded with every trial. Values are range-checked
    when a profile is made (a spec's overrides included), before anything runs."""

    name: str
    learning_rates: tuple[float, ...] = field(metadata={"range": POSITIVE})
    batch_sizes: tuple[int, ...] = field(metadata={"range": AT_LEAST_ONE})
    num_train_epochs: float = field(metadata={"range": POSITIVE})
    max_length: int = field(metadata={"range": Range(MIN_MAX_LENGTH)})
    max_train_examples: int | None = field(metadata={"range": AT_LEAST_ONE})
    seeds: tuple[int, ...] = field(default=(42, 43, 44, 45, 46), metadata={"range": SEED})

    def __post_init__(self) -> None:
        check_ranges(self)


PROFILES = {
    # METHODS.md as is: 6 epochs, lr in {1e-5 .. 1e-4}, batch size in {16, 32}, length 512 (a GPU job)
    "paper": SearchProfile("paper", (1e-5, 3e-5, 5e-5, 7e-5, 9e-5, 1e-4), (16, 32), 6, 512, None),
    # for a CPU: a 1,000-example subset, length 64, 2 epochs, a 2 x 2 grid
    "quick": SearchProfile("quick", (5e-5, 1e-4), (16, 32), 2, 64, 1000),
}


def open_storage(url: str, *, heartbeat_interval: int = 60, grace_period: int = 180,
                 max_retry: int = 3, must_exist: bool = False) -> optuna.storages.BaseStorage:
    """`sqlite:///file.db`, any SQLAlchemy URL (heartbeats: a killed worker's trial is failed after
    `grace_period` seconds and retried up to `max_retry` times), or `journal:PATH` (Optuna's journal
    file, for machines sharing a file system; it has no heartbeats, so a killed worker's trial
    stays running). `must_exist` is for commands that only read: a SQLite or journal file that is
    not there is an error, not a new empty store."""
    local = url.removeprefix("journal:") if url.startswith("journal:") else url.removeprefix("sqlite:///")
    if must_exist and local != url and not Path(local).is_file():
        raise KdbenchError(f"no Optuna storage at {local}: give --storage the URL that `kdbench search` or "
                           "`kdbench ablate` used (default sqlite:///OUTPUT_DIR/studies.db)")
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
    fixed = identity(replace(config, output_dir=None, resume=False))
    fixed["train"].update(learning_rate=0, per_device_train_batch_size=0, seed=0)  # the same name for every point
    parts = "+".join([config.method] + [name for name, default in ((config.objective, "kd"), (config.scheme, "plain"))
                                        if name != default])
    return f"{config.data.task}-{kind}-{parts}-{digest(fixed, dataclasses.asdict(profile))}"


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
        _skip_if_taken(trial)
        values = {**fixed, **{k: trial.suggest_categorical(k, v) for k, v in space.items()}}
        train = replace(config.train, learning_rate=values["learning_rate"],
                        per_device_train_batch_size=values["per_device_train_batch_size"], seed=values["seed"])
        folder = results / "runs" / digest(identity(config), kind, values)
        locks = results / ".locks"  # beside the run folders, not among them
        locks.mkdir(parents=True, exist_ok=True)
        with FileLock(locks / f"{folder.name}.lock"):  # a worker reaching a run being trained waits for it
            if (folder / RECORD_FILE).is_file():  # the same run already finished (e.g. the grid's best at seed 1)
                record = read_record(folder)
            else:
                record = run(replace(config, train=train, output_dir=str(folder), resume=True))
        trial.set_user_attr("record", record)
        trial.set_user_attr("profile", profile.name)
        return record["best"]["value"]

    return objective


def _skip_if_taken(trial: optuna.Trial) -> None:
    """End `trial` as pruned (never a run) when it was not queued (another worker took the queued
    trial first, and Optuna made a new one), or when its point already has a finished trial or a
    running one with a lower number (two workers queued the same point at once)."""
    trials = trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.COMPLETE))
    me = next(t for t in trials if t.number == trial.number)
    if "fixed_params" not in me.system_attrs:
        raise optuna.TrialPruned("not queued: its point was taken by another worker")
    mine = _point(me)
    for other in trials:
        if other.number != trial.number and _point(other) == mine and (
                other.state == TrialState.COMPLETE and _own_run(other) or other.number < trial.number):
            raise optuna.TrialPruned(f"its point is trial {other.number}'s")


DONE, RAN, BUSY = "done", "ran", "busy"  # what one call of `advance` did


@dataclass(frozen=True)
class StoredSearch:
    """What a search's grid study holds for its workers: the run configuration, kind and profile."""

    name: str
    config: RunConfig
    kind: str
    profile: SearchProfile


def advance(storage: optuna.storages.BaseStorage, search: StoredSearch, results: Path) -> str:
    """Run at most one trial of `search`: RAN after a trial, DONE when every point of its grid and
    seeds has a finished run of its own, BUSY when every remaining point is running in another
    worker (then stale trials are failed, so their points come free) rather than start a duplicate.
    A trial queued and never run (its worker was stopped first) is run by the next worker."""
    name, config, kind, profile = search.name, search.config, search.kind, search.profile
    fixed: dict = {"seed": profile.seeds[0]}
    for stage, space in _stages(profile):
        study = _study(storage, name, stage)
        trials = study.get_trials(deepcopy=False)
        done = finished_runs(trials, space)
        if len(done) < len(_points(space)):
            taken = {_point(t) for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)}
            free = [point for point in _points(space) if _key(point) not in done.keys() | taken]
            if not any(t.state == TrialState.WAITING for t in trials):
                if not free:
                    with warnings.catch_warnings():  # marked experimental in Optuna
                        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                        fail_stale_trials(study)
                    return BUSY
                study.enqueue_trial(free[0])
            try:
                study.optimize(_objective(config, kind, profile, results, fixed, space), n_trials=1)
            except ValueError as error:
                # SQLite has no row locks: two workers can pop one queued trial; both train its run in turn
                # (under the run's file lock, the second reads the first's record) and the later tell fails
                if not str(error).startswith("Cannot tell a COMPLETE trial"):
                    raise
            return RAN
        fixed = _best(done.values()).params
    return DONE


def finished_runs(trials: list[FrozenTrial], space: dict[str, list]) -> dict[tuple, FrozenTrial]:
    """Each planned point's finished trial (the first, should two workers have run it): only a
    complete trial whose record is the run of its own parameters counts."""
    planned = {_key(point) for point in _points(space)}
    runs: dict[tuple, FrozenTrial] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        point = _point(trial)
        if trial.state == TrialState.COMPLETE and point in planned and point not in runs and _own_run(trial):
            runs[point] = trial
    return runs


def _own_run(trial: FrozenTrial) -> bool:
    """Whether a trial's record was trained with the trial's own seed, learning rate and batch size
    (a study written before points were handed out here may hold another point's record)."""
    record = trial.user_attrs.get("record", {})
    train = record.get("config", {}).get("train", {})
    return all((record.get("seed") if key == "seed" else train.get(key)) == value for key, value in trial.params.items())


def _best(trials) -> FrozenTrial:
    """The highest-scoring trial; the first one on a tie, as Optuna's `best_trial`."""
    return max(sorted(trials, key=lambda t: t.number), key=lambda t: t.value)


def _points(space: dict[str, list]) -> list[dict]:
    """Every point of a grid, in a fixed order (learning rates outer, batch sizes inner)."""
    return [dict(zip(space, values)) for values in itertools.product(*space.values())]


def _key(params: dict) -> tuple:
    return tuple(sorted(params.items()))


def _point(trial: FrozenTrial) -> tuple:
    """The point a trial runs: the parameters it was queued with (a running trial may have suggested
    only some of them yet), or, for a trial never queued, its parameters."""
    return _key(trial.system_attrs.get("fixed_params") or trial.params)


def _stages(profile: SearchProfile) -> tuple[tuple[str, dict[str, list]], ...]:
    return (GRID, _grid_space(profile)), (SEEDS, {"seed": list(profile.seeds)})


def run_searches(storage: optuna.storages.BaseStorage, names: list[str], results_dir: str | Path,
                 poll_s: float = 1.0) -> list[StoredSearch]:
    """Work on searches `names` until all are complete, one trial at a time in turn, so workers on
    other machines running the same list spread over its searches; return the searches."""
    searches = [load_search(storage, name) for name in names]  # an unknown name fails before any training
    pending, told = list(searches), set()
    while pending:
        states = [advance(storage, search, Path(results_dir)) for search in pending]
        for search, state in zip(pending, states):
            if state == BUSY and search.name not in told:
                print(f"kdbench: {_waiting_note(storage, search)}", file=sys.stderr, flush=True)
            told = (told | {search.name}) if state == BUSY else told - {search.name}
        pending = [search for search, state in zip(pending, states) if state != DONE]
        if pending and all(state == BUSY for state in states if state != DONE):
            time.sleep(poll_s)
    return searches


def _waiting_note(storage: optuna.storages.BaseStorage, search: StoredSearch) -> str:
    """What a worker waits for when a search's remaining points all run elsewhere, and for how long."""
    head = f"search {search.name}: its remaining points are running in another worker; waiting for them"
    if isinstance(storage, RDBStorage) and storage.heartbeat_interval:
        grace = storage.grace_period or 2 * storage.heartbeat_interval
        return (f"{head}. If that worker was stopped or killed, its trial is failed once it has sent no heartbeat "
                f"for {grace} s (at most {grace + storage.heartbeat_interval} s from now) and its point runs here")
    return (f"{head}. This storage has no heartbeats: if that worker was killed, its trial stays running; "
            "use a SQL storage (sqlite:///... or PostgreSQL) to have such trials retried")


@dataclass(frozen=True)
class SearchState:
    """How far a search has got: grid points and seeds with a finished run, the finished seed runs'
    records (one per seed), and the failed or interrupted trials whose point has no run yet (they
    are run again by the next worker; they never count as runs)."""

    grid_done: int
    grid_points: int
    seeds_done: int
    seeds: int
    best_params: dict | None
    records: list[dict]
    failed: int = 0

    @property
    def complete(self) -> bool:
        return self.grid_done == self.grid_points and self.seeds_done == self.seeds


def search_state(storage: optuna.storages.BaseStorage, search: StoredSearch) -> SearchState:
    """Where `search` stands, read from the storage (a search still running elsewhere included)."""
    (grid_space, grid), (seed_space, seeds) = [(space, _trials(storage, f"{search.name}/{stage}"))
                                               for stage, space in _stages(search.profile)]
    grid_runs, seed_runs = finished_runs(grid, grid_space), finished_runs(seeds, seed_space)
    failed = sum(len({_point(t) for t in trials if t.state == TrialState.FAIL} - runs.keys())
                 for trials, runs in ((grid, grid_runs), (seeds, seed_runs)))
    best = _best(grid_runs.values()).params if grid_runs else None  # the choice `advance` makes
    records = [trial.user_attrs["record"] for trial in sorted(seed_runs.values(), key=lambda t: t.params["seed"])]
    return SearchState(len(grid_runs), len(_points(grid_space)), len(seed_runs), len(search.profile.seeds), best,
                       records, failed)


def _trials(storage: optuna.storages.BaseStorage, study: str) -> list[FrozenTrial]:
    """A study's trials; none when it does not exist yet (read only: nothing is created)."""
    try:
        study_id = storage.get_study_id_from_name(study)
    except KeyError:
        return []
    return storage.get_all_trials(study_id, deepcopy=False)


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
    grid = _study(storage, name, GRID)
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


def _study(storage, name: str, stage: str) -> optuna.Study:
    """Every trial is queued with its point's parameters (`advance`), so the sampler never chooses."""
    try:  # loading first: create_study(load_if_exists=True) logs a line each time a worker polls
        return optuna.load_study(study_name=f"{name}/{stage}", storage=storage)
    except KeyError:
        return optuna.create_study(storage=storage, study_name=f"{name}/{stage}", direction="maximize",
                                   load_if_exists=True)


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
