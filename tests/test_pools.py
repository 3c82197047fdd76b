"""Pools: one side of a pair changes at a time, copies and duplicates are handled, a pool is cached
under its key and identical across runs; a plugin pool method distils end to end."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import datasets
import pytest

from bench.cli import main
from bench.pipeline.pools import cached_pool, generate_pool, side_copies
from bench.pipeline.records import RECORD_FILE
from bench.pipeline.runs import DataConfig, run_distill
from methods import get_method, load_plugins
from methods.base import PoolAugmenter
from tests.test_runs import distill_config

PLUGIN = "examples/word_dropout.py"


class Tagger(PoolAugmenter):
    """Appends '#k' for copy k; the first copy of every third sentence is the sentence itself."""

    copies = 3

    def augment(self, sentences, copies, seed):
        rng = random.Random(seed)
        return [[s if (i % 3 == 0 and k == 0) else f"{s} #{k}{rng.choice('xy')}" for k in range(n)] + [f"{s} #0x"]
                for i, (s, n) in enumerate(zip(sentences, copies))]


def pairs(n: int = 6) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"text_a": [f"premise {i}" for i in range(n)],
                                       "text_b": [f"hypothesis {i}" for i in range(n)], "label": [i % 2 for i in range(n)]})


def test_side_copies_alternate_between_the_two_sentences():
    assert side_copies(3, 2, pair=False) == {"text_a": [2, 2, 2]}
    assert side_copies(4, 1, pair=True) == {"text_a": [1, 0, 1, 0], "text_b": [0, 1, 0, 1]}
    assert side_copies(2, 3, pair=True) == {"text_a": [2, 1], "text_b": [1, 2]}


def test_each_augmented_pair_changes_one_side_and_keeps_the_other():
    data = pairs()
    pool = generate_pool(Tagger(), data, seed=1)
    assert set(pool.column_names) == {"text_a", "text_b", "label", "origin_id", "origin_side", "origin_copy",
                                        "origin_operation"}
    for row in pool:
        original = data[row["origin_id"]]
        changed = [side for side in ("text_a", "text_b") if row[side] != original[side]]
        assert changed == [("text_a", "text_b")[row["origin_side"]]] and row["label"] == original["label"]
    frame = pool.to_pandas()
    assert frame.groupby("origin_id").size().max() <= Tagger.copies
    for _, versions in frame.groupby(["origin_id", "origin_side"]):  # each side's versions numbered 1, 2, ...
        assert versions["origin_copy"].tolist() == list(range(1, len(versions) + 1))
    assert sorted(frame["origin_side"].unique()) == [0, 1]
    texts = frame[["text_a", "text_b"]].apply(tuple, axis=1)
    assert not texts.duplicated().any()  # repeated versions are dropped
    assert not any(row["text_a"] == data[row["origin_id"]]["text_a"] and row["text_b"] == data[row["origin_id"]]["text_b"]
                   for row in pool)  # versions identical to the original are dropped


def test_a_version_dropped_as_the_original_takes_no_copy_number():
    # Tagger's first version of sentence 0 is the sentence itself: the kept ones are numbered from 1
    pool = generate_pool(Tagger(), datasets.Dataset.from_dict({"text_a": ["a", "b"], "label": [0, 1]}), seed=1)
    first = pool.filter(lambda row: row["origin_id"] == 0)
    assert first["origin_copy"] == [1, 2, 3] and first["origin_side"] == [0, 0, 0]
    assert [text.split(" #")[1][0] for text in first["text_a"]] == ["1", "2", "0"]


def test_pool_is_cached_under_its_key_and_identical_across_runs(tmp_path):
    method = get_method("none")  # any spec: the key uses its name and parameters
    data = pairs()
    built = []

    def build():
        built.append(1)
        return Tagger()

    first = cached_pool(method, method.parse_params(), build, data, seed=1, cache_dir=tmp_path)
    again = cached_pool(method, method.parse_params(), build, data, seed=1, cache_dir=tmp_path)
    assert (first.cache_hit, again.cache_hit, len(built)) == (False, True, 1)
    assert first.examples.to_list() == again.examples.to_list()
    assert again.generation_s == pytest.approx(first.generation_s, abs=1e-3)
    fresh = cached_pool(method, method.parse_params(), Tagger, data, seed=1, cache_dir=tmp_path / "other")
    assert fresh.examples.to_list() == first.examples.to_list()  # regenerated from scratch: same pool
    other_seed = cached_pool(method, method.parse_params(), Tagger, data, seed=2, cache_dir=tmp_path)
    assert not other_seed.cache_hit and other_seed.folder != first.folder


def test_plugin_method_is_listed_with_its_parameters(capsys):
    assert main(["methods", "--plugin", PLUGIN]) == 0
    out = capsys.readouterr().out
    assert "word-dropout (pool)" in out and "p " in out and "copies" in out
    assert main(["methods", "--plugin", "no_such_module_here"]) == 2
    assert "cannot import plugin" in capsys.readouterr().err


def test_plugin_pool_method_distils_and_records_its_pool(glue_dir, tiny_teacher, tmp_path):
    load_plugins([PLUGIN])
    config = distill_config(glue_dir, tiny_teacher, tmp_path / "run", method="word-dropout",
                            method_params={"p": "0.3", "copies": "2"})
    record = run_distill(config)
    augmentation = record["augmentation"]
    assert record["method_info"]["params"] == {"p": 0.3, "copies": 2}
    assert augmentation["cache_hit"] is False and 0 < augmentation["pool_size"] <= 2 * 48
    assert record["throughput"]["train_examples"] == 2 * (48 + augmentation["pool_size"])  # 2 epochs
    assert {"augmentation", "teacher_labelling"} <= set(record["timings_s"])
    second = run_distill(config.__class__(**{**config.__dict__, "output_dir": str(tmp_path / "again")}))
    assert second["augmentation"]["cache_hit"] is True
    assert second["augmentation"]["pool_size"] == augmentation["pool_size"]


def test_distill_cli_rejects_unknown_parameters_before_loading_anything(glue_dir, tmp_path, capsys):
    code = main(["distill", "--teacher", str(tmp_path / "missing"), "--data-dir", str(glue_dir),
                 "--method", "ad2", "--param", "radius=1e-3"])
    assert code == 2
    assert "unknown parameter of method ad2 'radius'" in capsys.readouterr().err
    assert main(["distill", "--teacher", "x", "--method", "ad2", "--param", "eps"]) == 2
    assert "key=value" in capsys.readouterr().err


def test_record_written_by_cli_for_an_in_loop_method(glue_dir, tiny_teacher, tmp_path):
    out = tmp_path / "cli"
    code = main(["distill", "--teacher", str(tiny_teacher), "--data-dir", str(glue_dir), "--max-length", "32",
                 "--student", "teacher-layers:0", "--num-train-epochs", "1", "--per-device-train-batch-size", "16",
                 "--method", "ad2", "--param", "eps=1e-3", "--param", "norm=sign", "--output-dir", str(out)])
    assert code == 0
    record = json.loads((out / RECORD_FILE).read_text())
    assert record["method_info"]["params"]["eps"] == 1e-3 and record["method_info"]["params"]["norm"] == "sign"
    assert record["augmentation"] is None


def test_regression_pairs_flow_through_a_pool_method(glue_dir, tiny_regression_teacher, tmp_path):
    load_plugins([PLUGIN])
    config = distill_config(glue_dir, tiny_regression_teacher, tmp_path / "run", method="word-dropout",
                            data=DataConfig(task="stsb", data_dir=str(glue_dir), max_length=32))
    record = run_distill(config)
    assert record["augmentation"]["pool_size"] > 0 and record["best"]["metric"] == "validation_score"


def test_entry_points_of_installed_packages_are_loaded(monkeypatch):
    import bench.parts.registry
    from methods.registry import METHODS

    loaded = []

    class EntryPoint:
        def load(self):
            loaded.append(bench.parts.registry._import_file(Path(PLUGIN)))

    monkeypatch.setattr(bench.parts.registry, "entry_points",
                        lambda group: [EntryPoint()] if group == "kdbench.methods" else [])
    monkeypatch.setattr(METHODS, "_plugins_loaded", False)  # a registry as in a new process: no plugin yet
    monkeypatch.setattr(METHODS, "_parts", {k: v for k, v in METHODS._parts.items() if k != "word-dropout"})
    monkeypatch.delitem(sys.modules, "kdbench_plugin_word_dropout", raising=False)
    assert get_method("word-dropout").kind == "pool" and loaded  # found on the first look-up of an unknown name


def test_versions_that_differ_only_in_spacing_are_the_original():
    class Respacer(PoolAugmenter):
        copies = 3

        def augment(self, sentences, copies, seed):
            return [[" ".join(s.split()), f"{s}  ", f"new {s}", f" new  {s}"] for s in sentences]

    data = datasets.Dataset.from_dict({"text_a": ["a film ", "two  spaces"], "label": [0, 1]})
    pool = generate_pool(Respacer(), data, seed=0)
    assert pool["text_a"] == ["new a film ", "new two  spaces"]
