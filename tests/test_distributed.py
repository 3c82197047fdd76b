"""Data parallelism comes from the engine: two CPU processes under torchrun share one KD run, with
plain KD and with in-loop methods (AD2 runs several forwards through the DDP-wrapped student; MATE-KD
also trains its generator, outside that wrapper, whose gradients the harness averages across workers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench.pipeline.records import RECORD_FILE
from tests.conftest import write_sst2


PORTS = {"none": "29517", "ad2": "29519", "mate-kd": "29521"}


@pytest.mark.parametrize("method", list(PORTS))
def test_two_processes_split_the_data(tiny_teacher, tiny_generator, tmp_path, method):
    glue = write_sst2(tmp_path / "glue", n_train=64, n_dev=16)
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", PORTS[method],
               "-m", "bench.cli", "distill", "--task", "sst2", "--data-dir", str(glue), "--teacher", str(tiny_teacher),
               "--student", "teacher-layers:0", "--max-length", "32", "--num-train-epochs", "1",
               "--per-device-train-batch-size", "8", "--output-dir", str(out), "--method", method]
    if method == "mate-kd":  # one generator step, then one student step, and again
        command += ["--param", f"generator={tiny_generator}", "--param", "generator_steps=1", "--param",
                    "student_steps=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KDBENCH_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((out / RECORD_FILE).read_text())
    assert record["throughput"]["world_size"] == 2
    # 64 examples, 8 per process and step, 2 processes: 4 steps for the whole epoch
    assert record["throughput"]["global_steps"] == 4
    assert record["throughput"]["train_examples"] == 64
    assert len(list((tmp_path / "cache" / "teacher-outputs").glob("*.npy"))) == 1
    if method == "mate-kd":
        assert (record["in_loop"]["generator_steps"], record["in_loop"]["student_steps"]) == (2, 2)
