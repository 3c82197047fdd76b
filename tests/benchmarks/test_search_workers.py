"""Search throughput: trials per hour with one and with two `kdbench worker` processes sharing one
SQLite study (pytest-benchmark; `tox -e bench`). Tiny BERT teacher and student, a 4 x 2 grid and
2 seeds (10 trials, one read back), 512 examples, each worker on one thread; on 2 cores, close to 2x is expected."""

from __future__ import annotations

import itertools

import optuna
import pytest
from optuna.trial import TrialState

import bench.store.search
from bench.pipeline.runs import DataConfig
from bench.store.search import create_search
from bench.store.studies import SearchProfile, open_storage
from tests.conftest import communicate_all, write_sst2
from tests.test_runs import distill_config
from tests.test_search import _worker

GRID = SearchProfile("bench", (1e-3, 2e-3, 3e-3, 4e-3), (8, 16), 2, 32, None, seeds=(1, 2))
TRIALS_PER_HOUR: dict[int, float] = {}  # read by conftest's summary
_fresh = itertools.count()


def _search(workers: int, root, teacher) -> None:
    folder = root / f"run-{next(_fresh)}"
    glue = write_sst2(folder / "glue", n_train=512, n_dev=32)
    config = distill_config(glue, teacher, folder / "unused", data=DataConfig(task="sst2", data_dir=str(glue)))
    storage = f"sqlite:///{folder / 'studies.db'}"
    name = create_search(config, kind="distill", profile="bench", storage=open_storage(storage)).name
    processes = [_worker(storage, name, folder / "results") for _ in range(workers)]
    for process, (_, err) in zip(processes, communicate_all(processes, timeout=900)):
        assert process.returncode == 0, err[-3000:]
    done = [t for stage in ("grid", "seeds") for t in optuna.load_study(study_name=f"{name}/{stage}",
                                                                        storage=storage).trials]
    # a worker that finds its queued trial taken by the other ends its own as pruned (bench/store/search.py)
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in done), [(t.number, t.state) for t in done]
    assert sum(t.state == TrialState.COMPLETE for t in done) == 10


@pytest.mark.parametrize("workers", [1, 2])
def test_trials_per_hour(benchmark, tiny_teacher, tmp_path_factory, monkeypatch, workers):
    monkeypatch.setitem(bench.store.search.PROFILES, "bench", GRID)
    root = tmp_path_factory.mktemp("search-bench")
    benchmark.group = "search: 10 trials (4 x 2 grid, 2 seeds), tiny models"
    benchmark.pedantic(_search, args=(workers, root, tiny_teacher), rounds=2, warmup_rounds=0)
    TRIALS_PER_HOUR[workers] = 10 / benchmark.stats.stats.mean * 3600
    benchmark.extra_info["trials_per_hour"] = TRIALS_PER_HOUR[workers]
