"""What preparing a training set costs as it grows (pytest-benchmark; `tox -e bench`): loading the GLUE
files, tokenising, fingerprinting the tokenised data (the cache keys) and reading the teacher's cached
outputs, for SST-2 subsets of 2k, 8k and 32k sentences and the whole 67,349, with the MiniLM tokenizer at
length 64. Each size runs in a fresh process, so the memory it holds once prepared is its own. Time and
memory should grow at most linearly (a fixed cost, e.g. reading the whole file for any subset, plus a
constant per example) and stay a small fraction of one training epoch (about 100 examples per second
for the 3-layer student on 2 cores: over ten minutes for all of SST-2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

SIZES = [2000, 8000, 32000, 67349]
GLUE_DIR = os.environ.get("KDBENCH_GLUE_DIR")  # read on import: each test runs without it (tests/conftest.py)
RESULTS: dict[int, dict[str, float]] = {}  # size -> seconds per phase, MB held; read by conftest's summary


def resident_mb() -> float:
    """This process's resident memory now (Linux), in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024


def prepare(size: int, glue_dir: str) -> dict[str, float]:
    """Runs in a fresh process: each phase of preparing `size` examples, timed, and the memory it added."""
    import bench.pipeline.cache
    from bench.parts.features import Collator
    from bench.parts.models import MINILM, load_tokenizer
    from bench.pipeline.cache import cached_teacher_logits, dataset_fingerprint
    from bench.pipeline.config import DataConfig
    from bench.pipeline.runs import prepare_data

    tokenizer = load_tokenizer(MINILM)
    before_mb = resident_mb()
    timings = {}
    started = time.perf_counter()
    prepared = prepare_data(DataConfig(task="sst2", data_dir=glue_dir, max_length=64,
                                       max_train_examples=size if size < 67349 else None), tokenizer)
    timings["load + tokenise s"] = time.perf_counter() - started
    started = time.perf_counter()
    for ds in (prepared.train, *prepared.evals.values()):
        dataset_fingerprint(ds)
    timings["fingerprint s"] = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as cache:  # a cache entry of the right shape, then the timed look-up
        real = bench.pipeline.cache.predict_logits
        bench.pipeline.cache.predict_logits = lambda model, ds, *a, **k: np.zeros((len(ds), 2), np.float32)
        teacher = type("Teacher", (), {"config": type("Config", (), {"num_labels": 2})})()
        cached_teacher_logits(teacher, prepared.train, Collator(tokenizer), batch_size=128, cache_dir=cache,
                              teacher_fingerprint="benchmark")
        bench.pipeline.cache.predict_logits = real
        started = time.perf_counter()
        _, hit = cached_teacher_logits(teacher, prepared.train, Collator(tokenizer), batch_size=128, cache_dir=cache,
                                       teacher_fingerprint="benchmark")
        timings["cache look-up s"] = time.perf_counter() - started
    assert hit
    timings["total s"] = sum(timings.values())
    timings["MB held"] = resident_mb() - before_mb  # the prepared data, still referenced
    return {"examples": len(prepared.train), **timings}


@pytest.mark.parametrize("size", SIZES)
def test_preparation_grows_linearly(benchmark, size):
    benchmark.group = "preparing SST-2 for training (load, tokenise, fingerprint, cache look-up)"
    if not GLUE_DIR:
        pytest.skip("needs the whole SST-2: set KDBENCH_GLUE_DIR")
    code = ("import json; from tests.benchmarks.test_preparation import prepare; "
            f"print(json.dumps(prepare({size}, {GLUE_DIR!r})))")

    def once():
        result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2], capture_output=True,
                                text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    row = benchmark.pedantic(once, rounds=1, iterations=1)
    row["s per 1k"] = row["total s"] / row["examples"] * 1000
    RESULTS[size] = row
    benchmark.extra_info.update(row)
