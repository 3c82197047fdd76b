"""The Python API: the README's example end to end on a tiny teacher, runs as one table with their
settings as columns (from a folder and from a storage), and a rerun from a record."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import bench.store.search
from bench.api import load_runs
from bench.parts.errors import KdbenchError
from bench.pipeline.runs import DataConfig
from bench.store.search import search
from tests.test_runs import distill_config
from tests.test_search import TINY

EXAMPLE = Path(__file__).parent.parent / "examples" / "python_api.py"


def _example():
    spec = importlib.util.spec_from_file_location("python_api", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_example_compares_tabulates_and_reruns(glue_dir, tiny_teacher, tmp_path):
    runs, again = _example().compare(str(glue_dir), tmp_path / "runs", teacher=str(tiny_teacher))
    assert sorted(zip(runs["method"], runs["seed"])) == [("ad2", 42), ("ad2", 43), ("none", 42), ("none", 43)]
    assert set(runs.loc[runs["method"] == "ad2", "method.eps"]) == {1e-5}
    assert (runs["student"] == "teacher-layers:0").all() and (runs["teacher"] == str(tiny_teacher)).all()
    assert (runs["kd.temperature"] == 1.0).all() and (runs["train.learning_rate"] == 3e-4).all()
    assert runs["teacher_fingerprint"].nunique() == 1 and runs["score"].between(0, 1).all()
    first = runs[(runs["method"] == "ad2") & (runs["seed"] == 42)].iloc[0]
    assert again["best"]["value"] == first["score"]  # same seed, same numbers


def test_runs_of_a_storage_as_one_table(glue_dir, tiny_teacher, tmp_path, monkeypatch):
    monkeypatch.setitem(bench.store.search.PROFILES, "tiny", TINY)
    config = distill_config(glue_dir, tiny_teacher, tmp_path / "unused", method="ad2", method_params={"eps": "1e-3"},
                            data=DataConfig(task="sst2", data_dir=str(glue_dir)))
    summary = search(config, profile="tiny", results_dir=str(tmp_path / "results"))
    runs = load_runs(f"sqlite:///{tmp_path / 'results' / 'studies.db'}")
    assert len(runs) == 7 and set(runs["method.eps"]) == {1e-3}  # 4 grid points, 3 seeds
    seeds = runs[runs["study"].str.endswith("/seeds")]
    assert sorted(seeds["score"]) == sorted(summary["scores"]) and sorted(seeds["train.seed"]) == [1, 2, 3]
    assert len(load_runs(tmp_path / "results")) == 6  # the run folders: the grid's best at seed 1 is one run


def test_a_source_that_is_neither_folder_nor_storage(tmp_path):
    with pytest.raises(KdbenchError, match="no results folder or storage URL"):
        load_runs(tmp_path / "nowhere")
