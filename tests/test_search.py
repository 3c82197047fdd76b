"""The search on a tiny model: the whole grid, then the seeds; a finished search is reused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from types import SimpleNamespace

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

import bench.store.search
import bench.store.studies
from bench.pipeline.runs import DataConfig
from bench.store.record_store import trial_records
from bench.store.search import create_search, search
from bench.store.studies import SearchProfile, _point, open_storage, spread
from tests.conftest import STEPS_PER_EPOCH, communicate_all
from tests.test_resume import _evaluations
from tests.test_runs import distill_config

TINY = SearchProfile("tiny", (1e-3, 3e-3), (8, 16), 1, 32, None, seeds=(1, 2, 3))


def test_a_journal_storage_keeps_its_records_beside_the_journal(glue_dir, tiny_teacher, tmp_path, monkeypatch):
    monkeypatch.setitem(bench.store.search.PROFILES, "tiny", TINY)
    config = distill_config(glue_dir, tiny_teacher, tmp_path / "unused",
                            data=DataConfig(task="sst2", data_dir=str(glue_dir)))
    journal = tmp_path / "shared" / "journal.log"
    journal.parent.mkdir()
    result = search(config, profile="tiny", storage=f"journal:{journal}", results_dir=str(tmp_path / "results"))
    assert len(list((tmp_path / "shared" / "journal.log.records").glob("*.json"))) == 6  # 4 grid points, 2 new seeds
    storage = open_storage(f"journal:{journal}", must_exist=True)
    state = bench.store.studies.search_state(storage, bench.store.studies.load_search(storage, result["study"]))
    assert state.complete and [r["best"]["value"] for r in state.records] == result["scores"]


def test_a_profile_sets_the_length_the_rows_and_the_epochs_and_nothing_else():
    from bench.pipeline.config import RunConfig, TrainConfig

    config = RunConfig(data=DataConfig(task="sst2", max_length=128, max_train_examples=5),
                       train=TrainConfig(num_train_epochs=9, learning_rate=7e-4))
    applied = bench.store.search.apply_profile(config, SearchProfile("p", (1e-3,), (8,), 2, 48, 100))
    assert applied.data == DataConfig(task="sst2", max_length=48, max_train_examples=100)
    assert applied.train == TrainConfig(num_train_epochs=2, learning_rate=7e-4)
    assert replace(applied, data=config.data, train=config.train) == config


def test_spread_of_seed_scores():
    assert spread([0.5, 0.9, 0.7, 0.6, 0.8]) == {"median": 0.7, "min": 0.5, "max": 0.9, "iqr": pytest.approx(0.2),
                                                 "n": 5}


def test_grid_then_seeds_on_a_tiny_model(glue_dir, tiny_teacher, tmp_path, monkeypatch):
    monkeypatch.setitem(bench.store.search.PROFILES, "quick", TINY)  # the default profile
    monkeypatch.chdir(tmp_path)
    config = distill_config(glue_dir, tiny_teacher, tmp_path / "unused",
                            data=DataConfig(task="sst2", data_dir=str(glue_dir)))
    slept = []
    monkeypatch.setattr(bench.store.search, "time", SimpleNamespace(sleep=slept.append))
    result = search(config)  # the library's defaults: distillation, the quick profile, kdbench-results/search
    assert slept == []  # a worker with points to run never waits
    results = tmp_path / "kdbench-results" / "search"
    storage = f"sqlite:///{results / 'studies.db'}"
    grid = optuna.load_study(study_name=f"{result['study']}/grid", storage=storage)
    points = sorted((t.params["learning_rate"], t.params["per_device_train_batch_size"]) for t in grid.trials)
    assert points == [(1e-3, 8), (1e-3, 16), (3e-3, 8), (3e-3, 16)]
    assert all(r["seed"] == 1 for r in trial_records(open_storage(storage), grid.trials))
    assert all(len(json.dumps(t.user_attrs)) < 2000 for t in grid.trials)  # a summary and a key, not the record
    assert {t.user_attrs["profile"] for t in grid.trials} == {"tiny"}  # each trial names its profile
    assert result["n"] == 3 and result["best_params"] == grid.best_params
    seeds = optuna.load_study(study_name=f"{result['study']}/seeds", storage=storage)
    for trial, record in zip(grid.trials + seeds.trials, trial_records(open_storage(storage), grid.trials + seeds.trials)):
        # every evaluation reported as it came (the reused run at seed 1: from its record), for the dashboard's curves
        assert trial.intermediate_values == {e["step"]: e["eval_validation_score"] for e in record["evaluations"]}
        assert len(trial.intermediate_values) == 1
        train = record["config"]["train"]  # a tracker's name: the search's, then the point
        assert train["run_name"] == (f"{result['study']} lr={train['learning_rate']:g} "
                                     f"batch={train['per_device_train_batch_size']} seed={train['seed']}")
    assert result["median"] == sorted(result["scores"])[1]
    again = search(config, profile=TINY, results_dir=str(results))
    assert again["scores"] == result["scores"]
    assert len(optuna.load_study(study_name=f"{result['study']}/grid", storage=storage).trials) == 4


def _worker(storage: str, name: str, results) -> subprocess.Popen:
    """`kdbench worker` in a process of its own, with heartbeats every second and failed after 3 s without one."""
    command = ["worker", "--storage", storage, "--study", name, "--output-dir", str(results),
               "--heartbeat-interval", "1", "--grace-period", "3"]
    return subprocess.Popen([sys.executable, "-m", "bench.cli", *command], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_waiting_for_workers_reads_full_pipes_and_ends_at_its_deadline():
    """The tests' wait for worker processes (`communicate_all`, tests/conftest.py) cannot hang: a worker that
    writes more than a pipe holds (64 KiB) before it exits is read to its end (`wait()` then `read()` would
    wait forever), and one that runs on is killed at the deadline, failing the test with a message."""
    chatty = subprocess.Popen([sys.executable, "-c", "import sys; sys.stderr.write('x' * 1_000_000)"],
                              stderr=subprocess.PIPE, text=True)
    (_, err), = communicate_all([chatty], timeout=120)
    assert chatty.returncode == 0 and len(err) == 1_000_000
    stuck = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], stderr=subprocess.PIPE, text=True)
    with pytest.raises(pytest.fail.Exception, match="1 of 2 worker processes still running after 2 s: killed"):
        communicate_all([stuck, subprocess.Popen([sys.executable, "-c", "pass"], stderr=subprocess.PIPE)], timeout=2)
    assert stuck.returncode == -signal.SIGKILL


def _prepared(glue_dir, tiny_teacher, tmp_path, monkeypatch, storage: str | None = None) -> tuple[str, str]:
    monkeypatch.setitem(bench.store.search.PROFILES, "tiny", TINY)
    config = distill_config(glue_dir, tiny_teacher, tmp_path / "unused",
                            data=DataConfig(task="sst2", data_dir=str(glue_dir)))
    storage = storage or f"sqlite:///{tmp_path / 'studies.db'}"
    name = create_search(config, kind="distill", profile="tiny", storage=open_storage(storage)).name
    return storage, name


def _assert_complete_without_duplicates(storage: str, name: str) -> None:
    grid = optuna.load_study(study_name=f"{name}/grid", storage=storage)
    done = [t for t in grid.trials if t.state == TrialState.COMPLETE]  # a point queued twice at once is pruned
    points = sorted((t.params["learning_rate"], t.params["per_device_train_batch_size"]) for t in done)
    assert points == [(1e-3, 8), (1e-3, 16), (3e-3, 8), (3e-3, 16)]
    seeds = optuna.load_study(study_name=f"{name}/seeds", storage=storage)
    assert sorted(t.params["seed"] for t in seeds.trials if t.state == TrialState.COMPLETE) == [1, 2, 3]


def test_two_workers_share_one_study(storage_url, glue_dir, tiny_teacher, tmp_path, monkeypatch):
    """On one machine (SQLite: one results folder, whose file locks keep two workers from training one
    run) or two (PostgreSQL, whose row locks hand each queued trial to one worker: a results folder
    each, the grid's best at the first seed read back from the database wherever it was trained)."""
    storage, name = _prepared(glue_dir, tiny_teacher, tmp_path, monkeypatch, storage_url)
    folders = [tmp_path / "results"] * 2 if storage.startswith("sqlite") else [tmp_path / f"machine{i}" for i in (1, 2)]
    workers = [_worker(storage, name, folder) for folder in folders]
    for worker, (_, err) in zip(workers, communicate_all(workers, timeout=300)):
        assert worker.returncode == 0, err[-3000:]
    _assert_complete_without_duplicates(storage, name)
    trained = [path.parent.name for folder in set(folders) for path in (folder / "runs").glob("*/record.json")]
    assert len(trained) == len(set(trained)) == 6  # 4 grid points and 2 new seeds, no run trained twice


def _wait_for_a_running_trial(worker: subprocess.Popen, trials, deadline: float) -> None:
    """Poll until one of `trials()` runs; fail, saying why, if `worker` exits first (it would never start
    one) or `deadline` (time.monotonic()) passes, rather than wait forever. The worker is killed either way."""
    while not any(t.state == TrialState.RUNNING for t in trials()):
        if worker.poll() is not None or time.monotonic() > deadline:
            exited = worker.poll() is not None
            worker.kill()
            err = worker.communicate(timeout=60)[1] or ""
            pytest.fail(f"the worker {f'exited with code {worker.returncode}' if exited else 'was still starting'} "
                        f"and no grid trial was running by the deadline; its stderr ends:\n{err[-3000:]}",
                        pytrace=False)
        time.sleep(0.2)


def test_a_killed_worker_is_replaced_and_the_study_completes(storage_url, glue_dir, tiny_teacher, tmp_path,
                                                            monkeypatch):
    """A worker killed with SIGKILL in a grid trial: once its heartbeat is stale the trial is failed and its
    point runs again in the next worker. Every wait has a deadline: 240 s to get a worker killed inside a
    trial, 300 s for the next one to finish the study (pyproject.toml's 600 s per test covers both)."""
    storage, name = _prepared(glue_dir, tiny_teacher, tmp_path, monkeypatch, storage_url)

    def grid_trials():
        return optuna.load_study(study_name=f"{name}/grid", storage=storage).trials

    killed, deadline = [], time.monotonic() + 240
    while not killed:  # a worker killed between two trials leaves none running: start another and try again
        # (each try ends in a trial, or after one finished: at most one try per grid point)
        victim = _worker(storage, name, tmp_path / "results")
        _wait_for_a_running_trial(victim, grid_trials, deadline)
        # into the trial: killed between Optuna's ask and its first heartbeat (milliseconds), a trial has no
        # heartbeat to go stale, and Optuna never fails it
        time.sleep(0.5)
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=60)  # gone at once; its pipe read to the end and closed
        killed = [t.number for t in grid_trials() if t.state == TrialState.RUNNING]  # it died in this one
        assert killed or sum(t.state == TrialState.COMPLETE for t in grid_trials()) < 4, "no grid point left"
    restarted = _worker(storage, name, tmp_path / "results")
    (_, err), = communicate_all([restarted], timeout=300)
    assert restarted.returncode == 0, err[-3000:]
    _assert_complete_without_duplicates(storage, name)
    grid = {t.number: t for t in grid_trials()}
    assert grid[killed[0]].state == TrialState.FAIL  # failed once its heartbeat went stale
    retried = [t for t in grid.values() if t.state == TrialState.COMPLETE and _point(t) == _point(grid[killed[0]])]
    assert len(retried) == 1 and retried[0].number > killed[0]  # its point ran again, in a later trial


def _every_grid_point_taken(url: str, name: str) -> tuple[optuna.storages.RDBStorage, list[int]]:
    """The storage, with heartbeats every second and failed after 2 s without one, and the ids of trials that
    hold every grid point, each with one heartbeat, all at one moment (SQLite stamps a heartbeat to the second,
    and trials taken across a second would go stale a second apart)."""
    from bench.store.studies import _grid_space, _points, _study

    storage = open_storage(url, heartbeat_interval=1, grace_period=2)
    grid = _study(storage, name, "grid")
    ids = []
    for point in _points(_grid_space(TINY)):
        grid.enqueue_trial(point)
        ids.append(grid.ask()._trial_id)
        storage.record_heartbeat(ids[-1])
    with storage.engine.begin() as connection:
        connection.execute(sqlalchemy.text("UPDATE trial_heartbeats SET heartbeat = "
                                           "(SELECT MAX(heartbeat) FROM trial_heartbeats)"))
    return storage, ids


def _waiting_notes(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if "running in another worker" in line]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_worker_waiting_on_a_dead_workers_points_says_so_and_for_how_long(glue_dir, tiny_teacher, tmp_path,
                                                                             monkeypatch, capsys):
    """Said once, however many times it looks again; and it looks every `poll_s` seconds."""
    from bench.store.search import run_searches

    url, name = _prepared(glue_dir, tiny_teacher, tmp_path, monkeypatch)
    storage, _ = _every_grid_point_taken(url, name)  # workers took every grid point, then died together
    slept = []
    monkeypatch.setattr(bench.store.search, "time", SimpleNamespace(sleep=lambda s: (slept.append(s), time.sleep(s))))
    run_searches(storage, [bench.store.studies.load_search(storage, name)], tmp_path / "results", poll_s=0.2)
    waits = _waiting_notes(capsys)
    assert len(waits) == 1 and "sent no heartbeat for 2 s (at most 3 s from now) and its point runs here" in waits[0]
    assert len(slept) >= 5 and set(slept) == {0.2}  # 2 s at least, waiting for the heartbeats to go stale
    _assert_complete_without_duplicates(url, name)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_worker_that_waits_again_after_running_says_so_again(glue_dir, tiny_teacher, tmp_path, monkeypatch,
                                                               capsys):
    """Two grid points held by workers that died, two by workers still alive until the first two points have run
    here (then they die too): the worker waits, runs the first two, and says it waits again."""
    from bench.store.search import run_searches

    url, name = _prepared(glue_dir, tiny_teacher, tmp_path, monkeypatch)
    storage, ids = _every_grid_point_taken(url, name)
    grid_id = storage.get_study_id_from_name(f"{name}/grid")

    def alive_until_two_points_ran():
        while sum(t.state == TrialState.COMPLETE for t in storage.get_all_trials(grid_id)) < 2:
            for trial_id in ids[2:]:
                storage.record_heartbeat(trial_id)
            time.sleep(0.3)

    alive = threading.Thread(target=alive_until_two_points_ran, daemon=True)
    alive.start()
    try:
        run_searches(storage, [bench.store.studies.load_search(storage, name)], tmp_path / "results", poll_s=0.2)
    finally:
        alive.join(timeout=60)
    assert len(_waiting_notes(capsys)) == 2
    _assert_complete_without_duplicates(url, name)


def test_search_and_results_commands(glue_dir, tiny_teacher, tmp_path, monkeypatch, capsys):
    import pandas as pd

    from bench.cli import main

    monkeypatch.setitem(bench.store.search.PROFILES, "quick", TINY)
    out = tmp_path / "search"
    assert main(["search", "--data-dir", str(glue_dir), "--teacher", str(tiny_teacher), "--student",
                 "teacher-layers:0", "--output-dir", str(out), "--method", "ad2", "--param", "eps=1e-3"]) == 0
    summary = json.loads(next((out / "summaries").glob("*.json")).read_text())
    assert summary["n"] == 3 and summary["profile"] == "tiny"
    storage = f"sqlite:///{out / 'studies.db'}"
    assert main(["results", "--storage", storage, "--output", str(tmp_path / "runs.parquet")]) == 0
    table = pd.read_parquet(tmp_path / "runs.parquet")
    assert len(table) == 7 and set(table["method"]) == {"ad2"} and (table["state"] == "COMPLETE").all()
    seeds = table[table["study"].str.endswith("/seeds")]
    assert sorted(seeds["seed"]) == [1, 2, 3]
    assert summary["median"] == sorted(seeds["value"])[1]
    assert len(list((out / "runs").glob("*/record.json"))) == 6  # the grid's best at seed 1 is reused, not retrained


def test_a_worker_for_an_unknown_search_names_the_known_ones(glue_dir, tiny_teacher, tmp_path, monkeypatch):
    from bench.parts.errors import UnknownNameError
    from bench.store.search import join_search

    storage, name = _prepared(glue_dir, tiny_teacher, tmp_path, monkeypatch)
    with pytest.raises(UnknownNameError, match=name):
        join_search(open_storage(storage), name[:-1] + "x")


def _interrupt_once(monkeypatch, when, error: BaseException) -> list:
    """Make the search's runs raise `error` (Ctrl-C, a crash) the first time `when(config)` holds."""
    real, raised = bench.store.search.run_distill, []

    def flaky(config, **kwargs):
        if when(config) and not raised:
            raised.append(config.train)
            raise error
        return real(config, **kwargs)

    monkeypatch.setattr(bench.store.search, "run_distill", flaky)
    return raised


@pytest.mark.parametrize("stage", ["seeds", "grid"])
def test_an_interrupted_point_is_run_again_and_no_run_counts_twice(stage, glue_dir, tiny_teacher, tmp_path,
                                                                   monkeypatch):
    """Interrupted at seed 3 (or at a grid point), the rerun trains that point; it never counts another
    point's run in its place (GridSampler counted the failed point as visited and re-picked seed 2)."""
    monkeypatch.setitem(bench.store.search.PROFILES, "tiny", TINY)
    config = distill_config(glue_dir, tiny_teacher, tmp_path / "unused",
                            data=DataConfig(task="sst2", data_dir=str(glue_dir)))
    if stage == "seeds":
        raised = _interrupt_once(monkeypatch, lambda c: c.train.seed == 3, KeyboardInterrupt())
    else:
        raised = _interrupt_once(monkeypatch, lambda c: (c.train.learning_rate, c.train.per_device_train_batch_size)
                                 == (3e-3, 8), RuntimeError("the machine fell over"))
    results = str(tmp_path / "results")
    with pytest.raises((KeyboardInterrupt, RuntimeError)):
        search(config, profile="tiny", results_dir=results)
    assert raised
    storage = open_storage(f"sqlite:///{tmp_path / 'results' / 'studies.db'}")
    name = bench.store.search.study_key(bench.store.search.apply_profile(config, TINY), "distill", TINY)[0]
    state = bench.store.studies.search_state(storage, bench.store.studies.load_search(storage, name))
    assert state.failed == 1 and not state.complete  # the failed trial is shown as such, not as a run
    summary = search(config, profile="tiny", results_dir=results)
    _assert_complete_without_duplicates(f"sqlite:///{tmp_path / 'results' / 'studies.db'}", name)
    for study in (f"{name}/grid", f"{name}/seeds"):
        trials = optuna.load_study(study_name=study, storage=storage).trials
        for trial in trials:
            if trial.state == TrialState.COMPLETE:  # each finished run is its own point's
                record = trial_records(storage, [trial])[0]
                assert record["seed"] == trial.params.get("seed", 1)
                assert record["config"]["train"]["learning_rate"] == trial.params.get(
                    "learning_rate", summary["best_params"]["learning_rate"])
    assert [t.state for t in optuna.load_study(study_name=f"{name}/{stage}", storage=storage).trials].count(
        TrialState.FAIL) == 1
    assert summary["n"] == 3
    assert len(set(bench.store.studies.search_state(storage, bench.store.studies.load_search(storage, name)).records[i]["seed"]
                   for i in range(3))) == 3


TWO_EPOCHS = SearchProfile("two-epochs", (1e-3,), (8,), 2, 32, None, seeds=(1,))  # one run, saved after epoch 1


def test_a_trial_interrupted_after_its_checkpoint_resumes_from_it(glue_dir, tiny_teacher, tmp_path,
                                                                   ctrl_c_in_epoch_2):
    """Ctrl-C in a trial's second epoch, after its first epoch's checkpoint: the search run again retries that
    point in the same run folder and resumes from the checkpoint (`resume=True` in bench/store/search.py's trials),
    to the numbers of a search never interrupted. A retry trained afresh would give the same numbers too,
    so the record's `resumed_from` (the step it started at) is what tells a resumed trial from a restarted one."""
    config = distill_config(glue_dir, tiny_teacher, tmp_path / "unused",
                            data=DataConfig(task="sst2", data_dir=str(glue_dir)))
    results = tmp_path / "results"
    with pytest.raises(KeyboardInterrupt):
        search(config, profile=TWO_EPOCHS, results_dir=str(results))
    checkpoints = list((results / "runs").glob("*/checkpoints/checkpoint-*"))
    assert [c.name for c in checkpoints] == [f"checkpoint-{STEPS_PER_EPOCH}"]  # epoch 1 saved, then interrupted
    ctrl_c_in_epoch_2.undo()

    summary = search(config, profile=TWO_EPOCHS, results_dir=str(results))
    storage = open_storage(f"sqlite:///{results / 'studies.db'}")
    grid = optuna.load_study(study_name=f"{summary['study']}/grid", storage=storage).trials
    assert [t.state for t in grid] == [TrialState.FAIL, TrialState.COMPLETE]  # the point retried in a new trial
    resumed = trial_records(storage, grid[1:])[0]
    assert (resumed["resumed_from"] or {}).get("step") == STEPS_PER_EPOCH, \
        f"the retried trial started from {resumed['resumed_from']}, not from its checkpoint at step {STEPS_PER_EPOCH}"
    assert resumed["config"]["output_dir"] == str(checkpoints[0].parent.parent)  # the interrupted trial's folder
    assert [e["step"] for e in resumed["evaluations"]] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]

    clean = search(config, profile=TWO_EPOCHS, results_dir=str(tmp_path / "clean"))
    clean_storage = open_storage(f"sqlite:///{tmp_path / 'clean' / 'studies.db'}")
    uninterrupted, = trial_records(clean_storage, optuna.load_study(study_name=f"{clean['study']}/grid",
                                                                    storage=clean_storage).trials)
    assert uninterrupted["resumed_from"] is None
    assert _evaluations(resumed) == _evaluations(uninterrupted) and resumed["best"] == uninterrupted["best"]
    assert summary["scores"] == clean["scores"] and summary["best_params"] == clean["best_params"]


def test_a_finished_trial_holding_another_points_record_is_not_a_run():
    """Studies written before points were handed out explicitly may hold such trials: they do not count."""
    from optuna.distributions import CategoricalDistribution

    from bench.store.studies import finished_runs

    study = optuna.create_study(direction="maximize")
    for seed, record_seed in ((1, 1), (2, 1)):
        study.add_trial(optuna.trial.create_trial(
            params={"seed": seed}, distributions={"seed": CategoricalDistribution([1, 2, 3])}, value=0.5,
            user_attrs={"record": {"seed": record_seed, "config": {"train": {}}}}))
    assert list(finished_runs(study.trials, {"seed": [1, 2, 3]})) == [(("seed", 1),)]


def test_ctrl_c_ends_a_search_in_one_line_with_code_130(glue_dir, tiny_teacher, tmp_path, monkeypatch, capsys):
    from bench.cli import main

    monkeypatch.setitem(bench.store.search.PROFILES, "quick", TINY)
    _interrupt_once(monkeypatch, lambda c: c.train.seed == 1, KeyboardInterrupt())
    args = ["search", "--data-dir", str(glue_dir), "--teacher", str(tiny_teacher), "--student", "teacher-layers:0",
            "--output-dir", str(tmp_path / "search")]
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "failed" not in err
    assert err.strip().splitlines()[-1].startswith("kdbench: interrupted: finished runs are kept")


def test_results_of_a_missing_storage_is_an_error_not_a_new_database(tmp_path, capsys):
    from bench.cli import main

    missing = tmp_path / "nope.db"
    assert main(["results", "--storage", f"sqlite:///{missing}", "--output", str(tmp_path / "r.csv")]) == 2
    assert f"no Optuna storage at {missing}" in capsys.readouterr().err
    assert not missing.exists() and not (tmp_path / "r.csv").exists()


def test_a_storage_without_its_driver_or_server_is_one_clear_error(tmp_path, capsys):
    from bench.cli import main

    args = ["results", "--output", str(tmp_path / "r.csv"), "--storage"]
    assert main([*args, "postgresql+pg8000://kdbench:secret@localhost/kdbench"]) == 2
    error = capsys.readouterr().err.strip()
    assert "no database driver for postgresql+pg8000://kdbench:***@localhost/kdbench" in error
    assert "pip install -e .[postgres]" in error and "secret" not in error and "\n" not in error
    assert main([*args, "postgresql://kdbench:secret@localhost:1/kdbench"]) == 2  # nothing listens on port 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("kdbench: error: cannot open the storage postgresql://kdbench:***@localhost:1/kdbench")
    assert "Is its server running" in error and "secret" not in error and "\n" not in error
    assert not (tmp_path / "r.csv").exists()


def test_a_waiting_worker_says_when_a_dead_workers_point_comes_back(tmp_path):
    from bench.pipeline.config import RunConfig
    from bench.store.search import _waiting_note
    from bench.store.studies import PROFILES, StoredSearch

    search_ = StoredSearch("s", RunConfig(), "distill", PROFILES["quick"])
    head = "search s: its remaining points are running in another worker; waiting for them. "
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    assert _waiting_note(open_storage(url, heartbeat_interval=4, grace_period=10), search_) == head + (
        "If that worker was stopped or killed, its trial is failed once it has sent no heartbeat for 10 s (at most "
        "14 s from now) and its point runs here")
    without_grace = optuna.storages.RDBStorage(url, heartbeat_interval=4)  # Optuna's default grace: 2 intervals
    assert "no heartbeat for 8 s (at most 12 s from now)" in _waiting_note(without_grace, search_)
    unbeating = head + ("This storage has no heartbeats: if that worker was killed, its trial stays running; use a SQL "
                        "storage (sqlite:///... or PostgreSQL) to have such trials retried")
    assert _waiting_note(optuna.storages.RDBStorage(url), search_) == unbeating
    assert _waiting_note(open_storage(f"journal:{tmp_path / 'journal.log'}"), search_) == unbeating


def test_the_library_refuses_a_worker_under_torchrun_before_any_trial(tmp_path, monkeypatch):
    """`run_searches` (what `search`, `worker` and `ablate` run) refuses torchrun itself, for callers that are not
    the commands, with the worker's recipe, and before it opens a study."""
    from bench.parts.errors import KdbenchError
    from bench.store.search import run_searches

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(KdbenchError) as refused:
        run_searches(None, [], tmp_path)
    assert str(refused.value) == (
        "`kdbench worker` takes trials one process at a time: under torchrun each of the 2 processes would pull its "
        "own. Start one worker per device instead (`CUDA_VISIBLE_DEVICES=I kdbench worker --storage URL --study "
        "NAME`, one per I; docs/scale-out.md)")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert run_searches(None, [], tmp_path) == []


def test_a_fine_tuning_search_fine_tunes_in_run_folders_of_its_own(glue_dir, tiny_teacher, tmp_path):
    """The no-KD arm's search (kind "finetune") fine-tunes, and the point it shares with a distillation search in
    the same results folder is a run of its own: a run's folder is keyed by its search's name and its point."""
    one_point = SearchProfile("one", (1e-3,), (8,), 1, 32, None, seeds=(1,))
    config = distill_config(glue_dir, tiny_teacher, tmp_path / "unused",
                            data=DataConfig(task="sst2", data_dir=str(glue_dir)))
    results = tmp_path / "results"
    for kind in ("distill", "finetune"):
        study = search(config, kind=kind, profile=one_point, results_dir=str(results))["study"]
        trials = optuna.load_study(study_name=f"{study}/grid", storage=f"sqlite:///{results / 'studies.db'}").trials
        assert [record["kind"] for record in trial_records(open_storage(f"sqlite:///{results / 'studies.db'}"),
                                                           trials)] == [kind]
    assert len(list((results / "runs").iterdir())) == 2


def test_a_finished_run_is_read_from_the_storage_first_then_from_its_folder(tmp_path):
    """A run kept in the storage by any worker is read from there (its folder may be on another machine, or
    gone); one only in this worker's folder (the worker stopped before keeping it) from the folder, to be kept;
    and one in neither is to be trained."""
    from bench.pipeline.records import write_record
    from bench.store.record_store import record_store
    from bench.store.search import _finished_run

    store = record_store(open_storage(f"sqlite:///{tmp_path / 'studies.db'}"))
    elsewhere, here, nowhere = (tmp_path / "runs" / key for key in ("elsewhere", "here", "nowhere"))
    store.put("elsewhere", {"best": "kept"})
    write_record(here, {"best": "on disk"})
    assert _finished_run(store, elsewhere) == ({"best": "kept"}, True)
    assert _finished_run(store, here) == ({"best": "on disk"}, False)
    assert _finished_run(store, nowhere) == (None, False)


def test_a_trial_not_queued_or_on_a_taken_point_is_pruned_and_says_why():
    """A trial Optuna made because another worker popped the queued one first, and one whose point a lower-numbered
    running trial holds (two workers queued it at once), end as pruned with the reason Optuna logs; the lower one
    runs. The reason is what a user reading a worker's log has to go on."""
    from bench.store.search import _skip_if_taken

    study = optuna.create_study(direction="maximize")
    with pytest.raises(optuna.TrialPruned) as pruned:
        _skip_if_taken(study.ask())
    assert str(pruned.value) == "not queued: its point was taken by another worker"
    point = {"learning_rate": 1e-3, "per_device_train_batch_size": 8, "seed": 1}
    study.enqueue_trial(point)
    study.enqueue_trial(point)
    first, second = study.ask(), study.ask()
    _skip_if_taken(first)
    with pytest.raises(optuna.TrialPruned) as pruned:
        _skip_if_taken(second)
    assert str(pruned.value) == f"its point is trial {first.number}'s"


@pytest.mark.parametrize("own_run", [True, False])
def test_a_queued_trial_whose_point_a_later_trial_has_run_is_pruned_unless_that_run_is_anothers(own_run):
    """A trial queued by a worker that stopped, popped after a later trial finished its point: pruned when that
    trial's record is its own run, run when the record is another point's (a study written before points
    were handed out here)."""
    from optuna.distributions import CategoricalDistribution

    from bench.store.search import _skip_if_taken

    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"seed": 1})
    study.add_trial(optuna.trial.create_trial(
        params={"seed": 1}, distributions={"seed": CategoricalDistribution([1, 2])}, value=0.5,
        user_attrs={"record": {"seed": 1 if own_run else 2, "config": {"train": {}}}}))
    queued = study.ask()
    assert queued.number == 0
    if own_run:
        with pytest.raises(optuna.TrialPruned, match="^its point is trial 1's$"):
            _skip_if_taken(queued)
    else:
        _skip_if_taken(queued)


def test_a_trial_another_worker_told_first_counts_once_and_other_errors_stop_the_worker(glue_dir, tiny_teacher,
                                                                                        tmp_path, monkeypatch):
    """SQLite has no row locks, so two workers can pop one queued trial and train its run in turn: the later tell
    fails because the trial is finished, and the worker goes on (the run is the same). Here the other worker's tell
    comes just before this one's. Any other error from a trial stops the worker."""
    one_point = SearchProfile("one", (1e-3,), (8,), 1, 32, None, seeds=(1,))
    config = distill_config(glue_dir, tiny_teacher, tmp_path / "unused",
                            data=DataConfig(task="sst2", data_dir=str(glue_dir)))
    real = bench.store.search._objective

    def told_by_another_worker(*args):
        objective = real(*args)

        def raced(trial):
            value = objective(trial)
            trial.study.tell(trial.number, value)
            return value
        return raced

    monkeypatch.setattr(bench.store.search, "_objective", told_by_another_worker)
    summary = search(config, profile=one_point, results_dir=str(tmp_path / "raced"))
    storage = f"sqlite:///{tmp_path / 'raced' / 'studies.db'}"
    for stage in ("grid", "seeds"):
        trials = optuna.load_study(study_name=f"{summary['study']}/{stage}", storage=storage).trials
        assert [t.state for t in trials] == [TrialState.COMPLETE]
    assert len(summary["scores"]) == 1

    def failing(*args):
        def fails(trial):
            raise ValueError("a trial's own error")
        return fails

    monkeypatch.setattr(bench.store.search, "_objective", failing)
    with pytest.raises(ValueError, match="^a trial's own error$"):
        search(config, profile=one_point, results_dir=str(tmp_path / "failing"))
