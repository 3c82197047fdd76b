"""Each training row keeps its origin (original, source, side, copy) from the pool's cache into every batch a
part sees, and the selector stage chooses the rows a run trains on (issue 27)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import datasets
import pytest
import torch

from bench.parts.context import TrainingContext
from bench.parts.errors import KdbenchError
from bench.parts.origins import ORIGIN_COLUMNS, Origins, rows_by_source, with_origins
from bench.parts.tasks import get_task
from bench.pipeline.config import RunConfig, identity
from bench.pipeline.pools import POOL_FILE
from bench.pipeline.runs import run_distill
from ablations.spec import parse_spec
from methods import load_plugins
from selection import SELECTORS, register_selector
from selection.base import Selector
from tests.test_runs import distill_config

TRAIN_ROWS = 48  # the tiny SST-2 training set of tests/conftest.py


def test_with_origins_and_pop_give_back_the_columns():
    ds = with_origins(datasets.Dataset.from_dict({"x": [5, 6, 7]}), source=0)
    assert [ds[c] for c in ORIGIN_COLUMNS] == [[0, 1, 2], [0, 0, 0], [-1, -1, -1], [0, 0, 0], [0, 0, 0]]
    pool = with_origins(datasets.Dataset.from_dict({"x": [8, 9]}), source=1,
                        origins={"origin_id": [2, 0], "origin_side": [1, 0], "origin_copy": [1, 3],
                                 "origin_operation": [3, 1]})
    assert [pool[c] for c in ORIGIN_COLUMNS] == [[2, 0], [1, 1], [1, 0], [1, 3], [3, 1]]
    both = datasets.concatenate_datasets([ds, pool])
    assert rows_by_source(both, ("original", "eda")) == {"original": 3, "eda": 2}
    inputs = {"input_ids": torch.zeros(2, 3), **{c: torch.tensor(pool[c]) for c in ORIGIN_COLUMNS}}
    origins = Origins.pop(inputs)
    assert list(inputs) == ["input_ids"] and origins.ids.tolist() == [2, 0] and origins.copies.tolist() == [1, 3]
    assert origins.operations.tolist() == [3, 1]
    assert origins.originals().tolist() == [False, False] and Origins.pop({"input_ids": 1}) is None


def test_every_row_of_every_batch_carries_its_origin(glue_dir, tiny_teacher, tmp_path, origins_seen):
    record = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "run", objective="origin-spy",
                                        method="eda", method_params={"num_aug": 2}, cache_dir=str(tmp_path / "c")))
    pool = [json.loads(line) for line in (Path(record["augmentation"]["pool_folder"]) / POOL_FILE).open()]
    expected = {i: (i, 0, -1, 0, 0) for i in range(TRAIN_ROWS)}  # by example id: the originals, then the pool's rows
    expected |= {TRAIN_ROWS + j: (row["origin_id"], 1, row["origin_side"], row["origin_copy"], row["origin_operation"])
                 for j, row in enumerate(pool)}
    assert {row[0]: row[1:] for row in origins_seen["rows"]} == expected  # every row seen, each with its own origin
    assert {copy for *_, copy, _ in expected.values()} == {0, 1, 2}
    assert {operation for *_, operation in expected.values()} == {0, 1, 2, 3}  # EDA's four edits
    assert origins_seen["sources"] == ("original", "eda") and origins_seen["operations"] == ((), ("sr", "ri", "rs", "rd"))
    assert record["training_rows"] == {"original": TRAIN_ROWS, "eda": len(pool)}
    first, origins_seen["rows"] = set(origins_seen["rows"]), []
    again = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "again", objective="origin-spy",
                                       method="eda", method_params={"num_aug": 2}, cache_dir=str(tmp_path / "c")))
    assert again["augmentation"]["cache_hit"] and set(origins_seen["rows"]) == first  # read back from the cache


def test_two_pool_methods_are_two_sources_of_rows(glue_dir, tiny_teacher, tmp_path, origins_seen):
    load_plugins(["examples/word_dropout.py"])
    cache = str(tmp_path / "c")
    record = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "run", objective="origin-spy",
                                        method="eda+word-dropout", method_params={"num_aug": 1, "p": 0.3},
                                        cache_dir=cache))
    alone = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "eda", method="eda",
                                       method_params={"num_aug": 1}, cache_dir=cache))
    pools = record["augmentation"]["pools"]
    assert [pool["method"] for pool in pools] == ["eda", "word-dropout"] and origins_seen["sources"] == (
        "original", "eda", "word-dropout")
    assert pools[0]["pool_folder"] == alone["augmentation"]["pool_folder"]  # EDA's pool, as EDA alone makes it
    sizes = {pool["method"]: pool["pool_size"] for pool in pools}
    assert record["training_rows"] == {"original": TRAIN_ROWS, **sizes} and min(sizes.values()) > 0
    assert record["augmentation"]["pool_size"] == sum(sizes.values()) and "pool_folder" not in record["augmentation"]
    seen = Counter(row[2] for row in {row[0]: row for row in origins_seen["rows"]}.values())  # by example id
    assert seen == {0: TRAIN_ROWS, 1: sizes["eda"], 2: sizes["word-dropout"]}


def test_the_selector_chooses_the_rows_trained_on(glue_dir, tiny_teacher, tmp_path, origins_seen):
    @register_selector("even-originals", description="the rows of originals with an even id (a test)")
    class EvenOriginals(Selector):
        def select(self, rows):
            return [i for i, origin in enumerate(rows["origin_id"]) if origin % 2 == 0]

    try:
        record = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "run", objective="origin-spy",
                                            method="eda", method_params={"num_aug": 1}, selector="even-originals",
                                            cache_dir=str(tmp_path / "c")))
    finally:
        SELECTORS._parts.pop("even-originals")
    seen = {row[0]: row[1:] for row in origins_seen["rows"]}
    assert {origin for origin, *_ in seen.values()} == set(range(0, TRAIN_ROWS, 2))
    from_pool = sum(1 for _, source, *_ in seen.values() if source == 1)
    assert from_pool > 0 and record["training_rows"] == {"original": TRAIN_ROWS // 2, "eda": from_pool}
    assert len(seen) == TRAIN_ROWS // 2 + from_pool  # example ids number the kept rows
    assert record["selector_info"]["name"] == "even-originals"


def test_a_selector_that_keeps_nothing_is_one_error(glue_dir, tiny_teacher, tmp_path):
    @register_selector("nothing", description="no row (a test)")
    class Nothing(Selector):
        def select(self, rows):
            return []

    try:
        with pytest.raises(KdbenchError, match="kept none of the 48 training rows"):
            run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "run", selector="nothing"))
    finally:
        SELECTORS._parts.pop("nothing")
    assert not (tmp_path / "run" / "record.json").exists()


def test_the_loss_is_the_weighted_sum_a_selector_asks_for(glue_dir, tiny_teacher, tmp_path):
    @register_selector("weightless", description="every row weighted 0 (a test)")
    class Weightless(Selector):
        chooses_each_step = True

        def choose(self, model, batch):
            batch.weights = torch.zeros(len(batch.inputs["input_ids"]))
            return batch

    try:
        record = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "run", selector="weightless"))
    finally:
        SELECTORS._parts.pop("weightless")
    assert record["training_loss"] and all(entry["loss"] == 0 for entry in record["training_loss"])


def test_the_default_selector_keeps_stored_identities_and_a_spec_names_one():
    assert "selector" not in identity(RunConfig()) and "selector_params" not in identity(RunConfig())
    assert identity(RunConfig(selector="other"))["selector"] == "other"
    with pytest.raises(KdbenchError, match="unknown selector 'alll': did you mean all"):
        parse_spec({"tasks": ["sst2"], "variants": [{"method": "eda", "selector": "alll"}]}, name="x")
    with pytest.raises(KdbenchError, match="takes no method, params, kd, objective or selector"):
        parse_spec({"tasks": ["sst2"], "variants": [{"baseline": "finetune", "selector": "all",
                                                     "selector_params": {"k": 1}}]}, name="x")
    spec = parse_spec({"tasks": ["sst2"], "variants": [{"method": "eda"}]}, name="x")
    assert spec.variants[0].parts()["selector"] == "all"


def test_a_context_has_the_training_set_as_its_only_source_by_default():
    assert TrainingContext(get_task("sst2"), 10, "t").sources == ("original",)
