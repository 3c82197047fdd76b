"""Out-of-domain evaluation sets (bench/pipeline/ood.py): HANS regenerated and read with its labels mapped
onto each task's classes, files of the task's own columns, and their scores in a run's record."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from ablations.spec import load_spec
from bench.parts.errors import KdbenchError, UnknownNameError
from bench.parts.tasks import get_task
from bench.pipeline.config import DataConfig
from bench.pipeline.ood import HANS_SHA256, _sha256, check_eval_tasks, hans_file, load_ood_sets, score_ood
from bench.pipeline.records import RECORD_FILE
from bench.pipeline.runs import run_distill
from bench.store.run_table import record_columns
from tests.test_runs import distill_config


@pytest.fixture(scope="module")
def hans_cache(tmp_path_factory):
    """One regeneration (about 10 s) for the module's tests."""
    cache = tmp_path_factory.mktemp("ood-cache")
    hans_file(cache)
    return cache


def test_hans_is_regenerated_to_its_checksum_and_a_damaged_copy_is_rebuilt(hans_cache):
    path = hans_file(hans_cache)
    assert _sha256(path) == HANS_SHA256
    lines = path.read_text().splitlines()
    assert len(lines) == 30_001  # a header and 1,000 examples for each of the 30 subcases, as the original
    assert lines[1].split("\t")[:3] == ["non-entailment", "The scientists thanked the president .",
                                        "The president thanked the scientists ."]
    path.write_text(path.read_text().replace("scientists", "students", 1))
    assert _sha256(hans_file(hans_cache)) == HANS_SHA256


@pytest.mark.parametrize("task, classes", [("rte", [0, 1]), ("qnli", [0, 1]), ("mnli", [0, 1, 1]), ("wnli", [1, 0])])
def test_hans_labels_and_each_tasks_classes_map_onto_entailment_or_not(hans_cache, task, classes):
    (hans,) = load_ood_sets(DataConfig(task=task, eval_task="hans"), get_task(task), hans_cache)
    assert hans.label_names == ("entailment", "non-entailment")
    assert hans.class_to_label.tolist() == classes  # MNLI's neutral and contradiction are non-entailment
    assert hans.rows[0] == {"text_a": "The scientists thanked the president .",
                            "text_b": "The president thanked the scientists .", "label": 1}
    # HANS is balanced: 5,000 examples of each heuristic and gold label
    assert Counter(hans.groups) == {f"{h}/{label}": 5000 for h in ("lexical_overlap", "subsequence", "constituent")
                                    for label in ("entailment", "non-entailment")}
    assert all(group.endswith(hans.label_names[label]) for group, label in zip(hans.groups, hans.rows["label"]))


def test_a_seeded_subset_keeps_each_rows_group(hans_cache):
    config = DataConfig(task="rte", eval_task="hans", eval_task_examples=300, subset_seed=3)
    (first,), (again,) = (load_ood_sets(config, get_task("rte"), hans_cache) for _ in range(2))
    assert len(first.rows) == 300 and first.rows["text_a"] == again.rows["text_a"]
    assert all(group.endswith(first.label_names[label]) for group, label in zip(first.groups, first.rows["label"]))


def test_mnli_predictions_are_scored_on_hans_labels_by_hand(hans_cache):
    config = DataConfig(task="mnli", eval_task="hans", eval_task_examples=6)
    (hans,) = load_ood_sets(config, get_task("mnli"), hans_cache)
    labels = hans.rows["label"]
    # entailment predicted on every row, except contradiction on the first and neutral on the second
    logits = np.tile([2.0, 0.0, 0.0], (6, 1))
    logits[0], logits[1] = [0.0, 0.0, 2.0], [0.0, 2.0, 0.0]
    predicted = [1, 1, 0, 0, 0, 0]
    scored = score_ood(hans, logits, get_task("mnli"))
    assert scored["predictions"] == predicted and scored["labels"] == labels
    assert scored["metrics"]["accuracy"] == pytest.approx(np.mean(np.array(predicted) == labels))
    for group, accuracy in scored["groups"].items():
        rows = [i for i, g in enumerate(hans.groups) if g == group]
        assert accuracy == pytest.approx(np.mean([predicted[i] == labels[i] for i in rows]))


def test_bad_sets_are_refused_before_anything_loads(tmp_path):
    with pytest.raises(UnknownNameError, match="did you mean hans"):
        check_eval_tasks(DataConfig(task="rte", eval_task="hnas"))
    with pytest.raises(KdbenchError, match="task sst2 has negative, positive"):
        check_eval_tasks(DataConfig(task="sst2", eval_task="hans"))
    with pytest.raises(KdbenchError, match=r"not found .*columns sentence1, sentence2, label"):
        check_eval_tasks(DataConfig(task="rte", eval_task=f"file:{tmp_path / 'paws.tsv'}"))


def test_a_file_set_equal_to_the_dev_set_scores_the_kept_weights_dev_score(glue_dir, tiny_teacher, tmp_path):
    dev = glue_dir / "SST-2" / "dev.tsv"
    record = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "run", data=DataConfig(
        task="sst2", data_dir=str(glue_dir), max_length=32, eval_task=f"file:{dev}")))
    scored = json.loads((tmp_path / "run" / RECORD_FILE).read_text())["ood"][f"file:{dev}"]
    assert scored["examples"] == 24 and scored["source"] == str(dev) and scored["groups"] == {}
    assert scored["metrics"] == pytest.approx({name: record["best"]["metrics"][f"validation_{name}"]
                                               for name in ("accuracy", "score")})
    assert scored["predictions"] == record["predictions"]["validation"]["predictions"]
    assert "ood_evaluation" in record["timings_s"]
    assert record_columns(record)[f"ood.file:{dev}"] == scored["metrics"]["score"]  # a column of `kdbench results`


def test_a_spec_naming_a_set_that_does_not_test_its_task_stops_at_loading(tmp_path):
    spec = tmp_path / "robust.toml"
    spec.write_text('name = "robust"\ntasks = ["sst2"]\n[data]\neval_task = "hans"\n[[variants]]\nlabel = "KD"\n')
    with pytest.raises(KdbenchError, match=r"robust.toml: variant KD on sst2: out-of-domain set hans"):
        load_spec(spec)
