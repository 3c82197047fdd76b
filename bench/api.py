"""kdbench from Python: what the commands do, as functions on config objects (docs/running.md, "Python API").

    from bench.api import DataConfig, RunConfig, distill, load_runs
    record = distill(RunConfig(data=DataConfig(task="sst2", data_dir="../shared/glue"), teacher=TEACHER,
                               method="ad2", method_params={"eps": 1e-5}, output_dir="runs/ad2"))
    runs = load_runs("runs")   # one row per run, its parameters as columns

`examples/python_api.py` runs a small comparison this way, end to end.
"""

from __future__ import annotations

from pathlib import Path

from bench.pipeline.config import DataConfig, KDConfig, RunConfig, TrainConfig
from bench.pipeline.runs import RUNS_BY_KIND, finetune_teacher, rerun_config
from bench.pipeline.runs import run_distill as distill
from bench.pipeline.runs import run_finetune as finetune
from bench.store.run_table import load_runs
from bench.store.search import search

__all__ = ["DataConfig", "KDConfig", "RunConfig", "TrainConfig", "distill", "finetune", "finetune_teacher",
           "load_runs", "rerun", "search"]


def rerun(record: str | Path, output_dir: str | Path | None = None) -> dict:
    """Run a recorded run again (its record.json, or the folder holding it) into `output_dir`, a new
    folder by default; returns the new record (same seed, same numbers on a CPU)."""
    original, config = rerun_config(record, output_dir)
    return RUNS_BY_KIND[original["kind"]](config)
