"""The results store: searches as Optuna keeps them, read without training anything.

What a search is (bench/store/search.py runs them): two Optuna studies per configuration in one storage,
NAME/grid (every learning-rate x batch-size point at the first seed) and NAME/seeds (every seed at
the grid's best point), each trial carrying a summary of its run and the key of its record
(bench/store/record_store.py). This module opens storages, rebuilds a stored search and tells how far it
is (`search_state`, `search_summary`); `kdbench report` and `kdbench results` (bench/store/run_table.py)
use it, so they never load a model or a training library."""

from __future__ import annotations

import itertools
import statistics
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
import sqlalchemy
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from bench.parts.errors import KdbenchError, UnknownNameError
from bench.parts.fields import AT_LEAST_ONE, POSITIVE, SEED, Range, check_ranges
from bench.pipeline.config import MIN_MAX_LENGTH, RunConfig, from_identity
from bench.store.record_store import trial_records, trial_summary

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
        except ImportError as error:
            raise KdbenchError(f"no database driver for {_shown(url)} ({error.__cause__ or error}): for PostgreSQL "
                               "`pip install -e .[postgres]`; for another database, its SQLAlchemy driver") from None
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError) as error:
            # workers started together race to create a new database's schema; the loser finds it made
            if attempt == 2:
                reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
                raise KdbenchError(f"cannot open the storage {_shown(url)}: {reason}. Is its server running and "
                                   "the URL right? (docs/scale-out.md)") from None
            time.sleep(1 + attempt)


def _shown(url: str) -> str:
    """A storage URL fit to print: without its password."""
    return sqlalchemy.make_url(url).render_as_string(hide_password=True)


def spread(values: list[float]) -> dict[str, float]:
    """Median, min, max and inter-quartile range of per-seed scores."""
    q1, q3 = np.percentile(values, [25, 75])
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "iqr": float(q3 - q1),
            "n": len(values)}


@dataclass(frozen=True)
class StoredSearch:
    """What a search's grid study holds for its workers: the run configuration, kind and profile."""

    name: str
    config: RunConfig
    kind: str
    profile: SearchProfile
    content: dict | None = None  # the data's and the teacher's hashes (bench/pipeline/content.py); None before they were kept


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
    summary = trial_summary(trial)
    return all(summary.get(key) == value for key, value in trial.params.items())


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
    records = trial_records(storage, sorted(seed_runs.values(), key=lambda t: t.params["seed"]))
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
    return StoredSearch(name, from_identity(attrs["config"]), attrs["kind"], profile, attrs.get("content"))


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
