"""The paper's protocol on Optuna: grid over learning rate x batch size, then the best one over seeds.

Two Optuna studies per configuration (task, method, parameters, models, profile), in one storage:
  NAME/grid   every point of the learning-rate x batch-size grid, at the first seed;
  NAME/seeds  every seed, at the grid's best learning rate and batch size.
Optuna's storage is the results store: every trial carries a summary of its run and the key of its
whole record, which is kept beside the studies (a table of the same database, or files beside a
journal; bench/store/record_store.py). A SQLite file in the results folder is the default; any SQLAlchemy
URL (PostgreSQL: `pip install -e .[postgres]`) or a journal file (`journal:PATH`) lets many
`kdbench worker` processes share the studies.

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
import os
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import optuna
from filelock import FileLock
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage, fail_stale_trials
from optuna.trial import TrialState
from transformers import TrainerCallback

from bench.parts.errors import KdbenchError
from bench.pipeline.cache import digest
from bench.pipeline.config import RunConfig, stored
from bench.pipeline.content import check_content, keyed_settings, study_content
from bench.pipeline.records import RECORD_FILE, read_record
from bench.pipeline.choice import choose_parts
from bench.pipeline.runs import run_distill, run_finetune
from bench.pipeline.storage import write_json
from bench.roles import ROLES
from bench.store.record_store import point_to_record, record_store
from bench.store.studies import (GRID, PROFILES, SearchProfile, StoredSearch, _best, _key, _own_run, _point, _points,
                           _stages, _study, default_storage, finished_runs, load_search, open_storage,
                           search_summary)


def study_key(config: RunConfig, kind: str, profile: SearchProfile) -> tuple[str, str, dict]:
    """A search's name, the digest of its settings alone, and its content (bench/pipeline/content.py): what is
    searched (lr, batch size, seed) is left out, folders stand for their content, parameters are parsed."""
    settings = keyed_settings(with_parsed_params(config, kind))
    settings["train"].update(learning_rate=0, per_device_train_batch_size=0, seed=0)  # the same name for every point
    content = study_content(config)
    named = [role for role in ROLES if role.named_in_studies]
    names = [getattr(config, role.name) for role in named]  # the method, then the others where not the default
    parts = "+".join(names[:1] + [name for name, role in zip(names[1:], named[1:]) if name != role.default])
    profile_values = dataclasses.asdict(profile)
    name = f"{config.data.task}-{kind}-{parts}-{digest(settings, profile_values, content)}"
    return name, digest(settings, profile_values), content


def with_parsed_params(config: RunConfig, kind: str) -> RunConfig:
    """`config` with its method's, objective's and scheme's parameters parsed and spelled out in full
    (`eps="1e-5"` from the command line becomes the float a spec gives), as records then store them."""
    return replace(config, **choose_parts(config, distill=kind == "distill").spelled_out())


def apply_profile(config: RunConfig, profile: SearchProfile) -> RunConfig:
    data = replace(config.data, max_length=profile.max_length, max_train_examples=profile.max_train_examples)
    return replace(config, data=data, train=replace(config.train, num_train_epochs=profile.num_train_epochs))


def _objective(storage: optuna.storages.BaseStorage, search: StoredSearch, results: Path, fixed: dict,
               space: dict[str, list]):
    name, config, kind, profile = search.name, search.config, search.kind, search.profile
    run = run_distill if kind == "distill" else run_finetune

    def objective(trial: optuna.Trial) -> float:
        _skip_if_taken(trial)
        values = {**fixed, **{k: trial.suggest_categorical(k, v) for k, v in space.items()}}
        point = f"lr={values['learning_rate']:g} batch={values['per_device_train_batch_size']} seed={values['seed']}"
        train = replace(config.train, learning_rate=values["learning_rate"],
                        per_device_train_batch_size=values["per_device_train_batch_size"], seed=values["seed"],
                        run_name=f"{config.train.run_name or name} {point}")  # a tracker's name for this trial
        folder = results / "runs" / digest(name, values)  # the search's name holds its kind and settings
        locks = results / ".locks"  # beside the run folders, not among them
        locks.mkdir(parents=True, exist_ok=True)
        store = record_store(storage)
        with FileLock(locks / f"{folder.name}.lock"):  # a worker reaching a run being trained waits for it
            record, kept = _finished_run(store, folder)  # e.g. the grid's best at the first seed, trained anywhere
            if record is None:
                record = run(replace(config, train=train, output_dir=str(folder), resume=True),
                             callbacks=[_ReportEvaluations(trial)])
            else:
                for evaluation in record["evaluations"]:  # the curve its training reported
                    _report(trial, evaluation[f"eval_{record['best']['metric']}"], evaluation["step"])
            if not kept:
                store.put(folder.name, record)
        point_to_record(trial, folder.name, record)
        trial.set_user_attr("profile", profile.name)
        return record["best"]["value"]

    return objective


def _finished_run(store, folder: Path) -> tuple[dict | None, bool]:
    """The record of the run `folder` names if it has finished, and whether `store` keeps it already:
    kept there by whichever worker trained it (on any machine: run keys are content), or only in this
    worker's run folder (its worker stopped before keeping it)."""
    stored = store.get_many([folder.name])
    if stored:
        return stored[folder.name], True
    return (read_record(folder) if (folder / RECORD_FILE).is_file() else None), False


class _ReportEvaluations(TrainerCallback):
    """Each evaluation's score reported to the trial as it comes (`trial.report`), so optuna-dashboard
    draws every trial's learning curve. Nothing is pruned: every point of the protocol runs whole."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def on_evaluate(self, args, state, control, metrics=None, **kwargs) -> None:
        _report(self.trial, metrics[args.metric_for_best_model], state.global_step)


def _report(trial: optuna.Trial, value: float, step: int) -> None:
    """`trial.report`, unless another worker that popped the same queued trial (SQLite) has finished it."""
    try:
        trial.report(value, step)
    except UpdateFinishedTrialError:
        pass  # its curve is the other worker's, from the same run


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


def advance(storage: optuna.storages.BaseStorage, search: StoredSearch, results: Path) -> str:
    """Run at most one trial of `search`: RAN after a trial, DONE when every point of its grid and
    seeds has a finished run of its own, BUSY when every remaining point is running in another
    worker (then stale trials are failed, so their points come free) rather than start a duplicate.
    A trial queued and never run (its worker was stopped first) is run by the next worker."""
    name, profile = search.name, search.profile
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
                study.optimize(_objective(storage, search, results, fixed, space), n_trials=1)
            except (ValueError, UpdateFinishedTrialError) as error:
                # SQLite has no row locks: two workers can pop one queued trial; both train its run in turn
                # (under the run's file lock, the second reads the first's record) and the later tell fails,
                # before Optuna's write (ValueError) or in it (UpdateFinishedTrialError)
                if isinstance(error, ValueError) and not str(error).startswith("Cannot tell a COMPLETE trial"):
                    raise
            return RAN
        fixed = _best(done.values()).params
    return DONE


def run_searches(storage: optuna.storages.BaseStorage, searches: list[StoredSearch], results_dir: str | Path,
                 poll_s: float = 1.0) -> list[StoredSearch]:
    """Work on `searches` until all are complete, one trial at a time in turn, so workers on other
    machines running the same list spread over its searches; return the searches."""
    check_one_process("worker")
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


def create_search(config: RunConfig, *, kind: str, profile: str | SearchProfile,
                  storage: optuna.storages.BaseStorage, labels: dict | None = None,
                  teacher_origin: str | None = None) -> StoredSearch:
    """Create (or find) the studies of this configuration, with what a worker needs to run it and
    readable attributes (task, kind, parts, and `labels` such as spec, variant and swept value).
    A search with the same settings and the same `teacher_origin` (what the teacher was made from,
    when it was fine-tuned here; else the teacher itself) but other data or teacher weights
    already in the storage is refused: another machine's copy differs, and its runs would not compare."""
    chosen = PROFILES[profile] if isinstance(profile, str) else profile
    config = with_parsed_params(apply_profile(config, chosen), kind)
    name, settings, content = study_key(config, kind, chosen)
    origin = digest(settings, teacher_origin or content["teacher"])
    for other in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if other.user_attrs.get("origin") == origin and other.study_name != f"{name}/{GRID}":
            check_content(other.study_name.removesuffix(f"/{GRID}"), other.user_attrs["content"], content)
    readable = {"task": config.data.task, "kind": kind, **{role.name: getattr(config, role.name) for role in ROLES},
                **(labels or {})}
    for stage, _ in _stages(chosen):
        study = _study(storage, name, stage)
        if not study.user_attrs:  # new: the first worker to create it describes it
            for key, value in readable.items():
                study.set_user_attr(key, value)
    grid = _study(storage, name, GRID)
    if "config" not in grid.user_attrs:
        grid.set_user_attr("config", stored(config))
        grid.set_user_attr("profile", dataclasses.asdict(chosen))
        grid.set_user_attr("content", content)
        grid.set_user_attr("origin", origin)
    return StoredSearch(name, config, kind, chosen, content)


def join_search(storage: optuna.storages.BaseStorage, name: str, *, data_dir: str | None = None,
                teacher: str | None = None, cache_dir: str | None = None) -> StoredSearch:
    """Search `name` as this worker runs it: the stored configuration with this machine's folders
    where given, refused (one line) if its data or teacher differ from the study's."""
    stored = load_search(storage, name)
    config = replace(stored.config, data=replace(stored.config.data, data_dir=data_dir or stored.config.data.data_dir),
                     teacher=teacher or stored.config.teacher, cache_dir=cache_dir or stored.config.cache_dir)
    if stored.content is not None:  # studies made before content keys have none to check
        check_content(name, stored.content, study_content(config))
    return replace(stored, config=config)


def check_one_process(command: str) -> None:
    """Refuse a search under torchrun, where every process would pull a trial of its own."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise KdbenchError(f"`kdbench {command}` takes trials one process at a time: under torchrun each of the "
                           f"{os.environ['WORLD_SIZE']} processes would pull its own. Start one worker per device "
                           "instead (`CUDA_VISIBLE_DEVICES=I kdbench worker --storage URL --study NAME`, one per I; "
                           "docs/scale-out.md)")


def run_worker(storage: optuna.storages.BaseStorage, search: StoredSearch, results_dir: str | Path) -> dict:
    """Take part in `search` until its grid and its seeds are complete; return the summary."""
    return search_summary(storage, run_searches(storage, [search], results_dir)[0])


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
