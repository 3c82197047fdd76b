"""Adversarial testing with TextAttack (bench/pipeline/attack.py): a finished student attacked on a seeded
sample of its dev examples, in the run and again from its folder, with the same numbers each time."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import replace

import numpy as np
import pytest

from ablations.spec import load_spec
from bench.cli import main
from bench.parts.errors import KdbenchError, UnknownNameError
from bench.pipeline import attack
from bench.pipeline.attack import STOPWORDS_DIR, attack_saved_run, check_attack
from bench.pipeline.config import DataConfig
from bench.pipeline.records import RECORD_FILE
from bench.pipeline.runs import run_finetune
from bench.store.run_table import record_columns
from tests.test_runs import TRAIN, distill_config

pytestmark = pytest.mark.skipif(importlib.util.find_spec("textattack") is None,
                                reason="the attack extra is not installed (docs/running.md); CI installs it")

RECIPES = ("pwws", "deepwordbug")
ATTACKED = dict(attack_recipe=",".join(RECIPES), attack_examples=16, attack_query_budget=300)
EPOCHS, LEARNING_RATE = 20, 3e-3
STOPWORDS_SHA256 = "019f104ba2ed07436d05f9cdd3383034ad66014edc27fc651f837e1a038b6451"  # nltk_data 5db857e


@pytest.fixture
def attacked_run(glue_dir, tiny_teacher, tmp_path):
    """A tiny SST-2 student trained on labels long enough to lean on the sentiment words, attacked by both
    recipes in its run: (folder, record)."""
    folder = tmp_path / "run"
    run_finetune(distill_config(glue_dir, tiny_teacher, folder, train=replace(TRAIN, num_train_epochs=EPOCHS, learning_rate=LEARNING_RATE),
                                data=DataConfig(task="sst2", data_dir=str(glue_dir), max_length=32, **ATTACKED)))
    return folder, json.loads((folder / RECORD_FILE).read_text())


def test_a_run_attacked_again_from_its_folder_gets_the_same_numbers(attacked_run):
    folder, record = attacked_run
    assert set(record["attack"]) == set(RECIPES) and "attack" in record["timings_s"]
    again = attack_saved_run(folder, ATTACKED)
    assert json.loads(json.dumps(again)) == record["attack"]
    assert json.loads((folder / RECORD_FILE).read_text())["attack"] == record["attack"]  # rewritten whole
    assert record_columns(record)["attack.pwws"] == record["attack"]["pwws"]["metrics"]["score"]


def test_unattacked_predictions_are_the_kept_weights_dev_predictions_on_a_seeded_sample(attacked_run):
    _, record = attacked_run
    dev = record["predictions"]["validation"]
    expected_rows = np.sort(np.random.default_rng(42).choice(24, size=16, replace=False)).tolist()  # subset_seed
    for entry in record["attack"].values():
        assert entry["rows"] == expected_rows and entry["examples"] == 16
        assert entry["labels"] == [dev["labels"][row] for row in entry["rows"]]
        # an example is skipped exactly when the kept weights already get it wrong: the wrapper feeds the
        # model the text as the run tokenised it
        assert [outcome != "skipped" for outcome in entry["outcomes"]] == \
               [dev["predictions"][row] == dev["labels"][row] for row in entry["rows"]]


def test_outcomes_predictions_and_metrics_agree(attacked_run):
    _, record = attacked_run
    for recipe, entry in record["attack"].items():
        outcomes, labels, predictions = (np.asarray(entry[k]) for k in ("outcomes", "labels", "predictions"))
        assert (predictions[outcomes == "failed"] == labels[outcomes == "failed"]).all()
        assert (predictions[outcomes != "failed"] != labels[outcomes != "failed"]).all()
        assert (outcomes == "succeeded").any(), f"{recipe} flipped no prediction of the tiny student"
        m = entry["metrics"]
        assert m["score"] == m["accuracy_under_attack"] == pytest.approx(np.mean(predictions == labels))
        assert m["original_accuracy"] == pytest.approx(np.mean(outcomes != "skipped"))
        attacked = outcomes != "skipped"
        assert m["attack_success_rate"] == pytest.approx(np.mean(outcomes[attacked] == "succeeded"), abs=1e-4)
        assert m["queries_per_example"] == pytest.approx(np.mean(np.asarray(entry["queries"])[attacked]), abs=1e-2)
        assert entry["score_metrics"] == ["accuracy"] and entry["query_budget"] == 300
        assert max(entry["queries"]) <= 300 + 64  # the budget, past which an example counts as failed
        assert m["score"] < m["original_accuracy"]  # some example was right before and wrong after


def test_words_perturbed_counts_the_changed_words_of_successful_attacks(attacked_run):
    """DeepWordBug edits characters inside words, so the words changed are the positions that differ."""
    _, record = attacked_run
    entry = record["attack"]["deepwordbug"]
    changed = []
    for outcome, row, text in zip(entry["outcomes"], entry["rows"], entry["perturbed"]):
        if outcome == "succeeded":
            original = _dev_sentences(record)[row].split()
            changed.append(sum(a != b for a, b in zip(original, text.split())))
            assert len(text.split()) == len(original)
    assert changed and entry["metrics"]["words_perturbed"] == pytest.approx(np.mean(changed))
    assert 0 < entry["metrics"]["words_perturbed_pct"] <= 100


def test_the_attack_command_prints_the_summary_and_records_the_same_numbers(attacked_run, glue_dir, capsys):
    folder, record = attacked_run
    main(["attack", str(folder), "--attack-recipe", "pwws", "--attack-examples", "16", "--attack-query-budget", "300",
          "--data-dir", str(glue_dir)])
    m = record["attack"]["pwws"]["metrics"]
    assert f"pwws: 16 examples, accuracy {100 * m['original_accuracy']:.2f} -> {100 * m['score']:.2f} under attack" \
        in capsys.readouterr().out
    assert json.loads((folder / RECORD_FILE).read_text())["attack"] == record["attack"]


def test_the_attack_seed_draws_deepwordbugs_characters(attacked_run):
    folder, record = attacked_run
    other = attack_saved_run(folder, {**ATTACKED, "attack_recipe": "deepwordbug", "attack_seed": 1})["deepwordbug"]
    assert other["attack_seed"] == 1 and other["rows"] == record["attack"]["deepwordbug"]["rows"]
    assert other["perturbed"] != record["attack"]["deepwordbug"]["perturbed"]


def test_refusals_come_before_any_model_loads(monkeypatch, tmp_path):
    with pytest.raises(UnknownNameError, match="did you mean pwws"):
        check_attack(DataConfig(task="sst2", attack_recipe="pwsw"))
    with pytest.raises(KdbenchError, match="stsb is a regression"):
        check_attack(DataConfig(task="stsb", attack_recipe="pwws"))
    check_attack(DataConfig(task="sst2"))  # nothing asked, nothing checked
    monkeypatch.setattr(attack, "_textattack", lambda: (_ for _ in ()).throw(ImportError("No module named 'x'")))
    with pytest.raises(KdbenchError, match=r"pip install --no-deps textattack==0\.3\.10"):
        check_attack(DataConfig(task="sst2", attack_recipe="deepwordbug"))
    spec = tmp_path / "robust.toml"
    spec.write_text('name = "robust"\ntasks = ["sst2"]\n[data]\nattack_recipe = "textfooler"\n'
                    '[[variants]]\nlabel = "KD"\n')
    with pytest.raises(KdbenchError, match=r"robust.toml: variant KD on sst2: unknown attack recipe 'textfooler'"):
        load_spec(spec)


def test_a_teacher_folder_or_a_folder_without_a_record_is_refused(tmp_path, tiny_teacher):
    with pytest.raises(KdbenchError, match="no such run record: give a record.json file or the run folder"):
        attack_saved_run(tmp_path, ATTACKED)
    (tmp_path / RECORD_FILE).write_text(json.dumps({"kind": "finetune-teacher", "config": {}}))
    with pytest.raises(KdbenchError) as error:
        attack_saved_run(tmp_path, ATTACKED)
    assert str(error.value) == (f"{tmp_path / RECORD_FILE}: not a kdbench run record of a distill or finetune run (a "
                                "finetune-teacher run's): it needs a config and one of those kinds; a cached teacher's "
                                "folder is sealed and is not attacked in place")
    (tmp_path / RECORD_FILE).write_text(json.dumps({"kind": "distill", "config": {}}))
    with pytest.raises(KdbenchError, match=f"no weights in {tmp_path / 'model'}"):
        attack_saved_run(tmp_path / RECORD_FILE, ATTACKED)


def test_nltks_english_stop_words_ship_with_the_suite_and_flairs_stand_in_refuses_use():
    import nltk

    attack._textattack()
    path = STOPWORDS_DIR / "corpora" / "stopwords" / "english"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == STOPWORDS_SHA256
    with attack._offline_nltk():
        assert nltk.corpus.stopwords.words("english") == path.read_text().split()
    with pytest.raises(KdbenchError, match="needs flair"):
        attack._flair_stand_in()["flair.data"].Sentence("a sentence")


def _dev_sentences(record: dict) -> list[str]:
    from bench.pipeline.data import load_data
    from bench.pipeline.config import from_identity

    return load_data(from_identity(record["config"]).data).splits["validation"]["text_a"]
