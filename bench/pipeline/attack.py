"""Adversarial testing of a finished student with TextAttack: a recipe's attack on a seeded sample of dev
examples, under a query budget, as the Combined-KD paper tests the robustness of distilled students.

A run names the recipes in `DataConfig.attack_recipe` (`--attack-recipe pwws`) and is attacked once with its
kept weights after training; `kdbench attack RUN_FOLDER` attacks a saved run afterwards. The sample is drawn
with `subset_seed`, so every run of a study is attacked on the same examples and the tests can pair them;
the attack's own draws (DeepWordBug's characters) follow `attack_seed`. Only recipes whose resources are
offline are offered: PWWS swaps words for WordNet synonyms (NLTK's WordNet), DeepWordBug edits characters.

TextAttack is used as published (its recipes, goal function, search and metrics), with three things done
around it, because it cannot share this suite's environment as its package declares it:
  - it imports flair at import time for part-of-speech tagging that these recipes never call, and every flair
    release requires transformers < 5: where flair does not import, a stand-in that refuses any use is
    registered in its place;
  - its stop-word constraint reads NLTK's stopwords corpus (at import too), which is not offline here: NLTK's own English list
    ships in bench/third_party/nltk_stopwords and is placed first on NLTK's data path;
  - its WordNet swap calls `nltk.download("omw-1.4")` (other languages' WordNets) at every build: the build
    runs with NLTK's downloader turned off, since English WordNet needs no OMW and a download would reach
    the network.
"""

from __future__ import annotations

import copy
import importlib
import math
import sys
import types
from contextlib import contextmanager
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import datasets
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from bench.parts.errors import KdbenchError, UnknownNameError
from bench.parts.tasks import TaskSpec, get_task
from bench.parts.models import load_classifier, load_tokenizer
from bench.pipeline.config import DataConfig
from bench.pipeline.data import TaskData, load_data, train_subset
from bench.pipeline.records import package_version, read_run, write_record

TEXTATTACK_VERSION = "0.3.10"
INSTALL = f"pip install -e '.[attack]' && pip install --no-deps textattack=={TEXTATTACK_VERSION}"
# recipe name -> (TextAttack's recipe class in textattack.attack_recipes, what it does)
ATTACK_RECIPES = {
    "pwws": ("PWWSRen2019", "PWWS (Ren et al. 2019): WordNet synonym swaps, greedy by weighted word saliency"),
    "deepwordbug": ("DeepWordBugGao2018", "DeepWordBug (Gao et al. 2018): character swaps, substitutions, "
                    "deletions and insertions in the most important words, at most 30 edits"),
}
STOPWORDS_DIR = Path(__file__).resolve().parent.parent / "third_party" / "nltk_stopwords"
STUDENT_RUNS = ("distill", "finetune")  # the kinds of run record whose kept weights can be attacked
OUTCOMES = {"SuccessfulAttackResult": "succeeded", "FailedAttackResult": "failed", "SkippedAttackResult": "skipped"}


def attack_recipe_names(config: DataConfig) -> list[str]:
    return [name.strip() for name in config.attack_recipe.split(",") if name.strip()]


def check_attack(config: DataConfig, task: TaskSpec | None = None) -> None:
    """Refuse an unknown recipe, a regression task, or a missing TextAttack, before any model loads."""
    names = attack_recipe_names(config)
    if not names:
        return
    for name in names:
        if name not in ATTACK_RECIPES:
            raise UnknownNameError("attack recipe", name, ATTACK_RECIPES)
    if task is None and not config.train_file:
        task = get_task(config.task)
    if task is not None and task.is_regression:
        raise KdbenchError(f"task {task.name} is a regression: TextAttack's recipes attack classifiers only; "
                           "drop --attack-recipe")
    try:
        _textattack()
    except ImportError as error:
        raise KdbenchError(f"--attack-recipe needs TextAttack, which did not import ({error}): install it with "
                           f"`{INSTALL}`") from None


def attack_run(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, data: TaskData, config: DataConfig) -> dict:
    """Each recipe `config` names attacking `model` on the task's first dev split: the record's `attack`."""
    dev = data.splits[data.task.eval_splits[0]]
    return {recipe: attack_student(model, tokenizer, data.task, dev, recipe, config)
            for recipe in attack_recipe_names(config)}


def attack_student(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, task: TaskSpec,
                   rows: datasets.Dataset, recipe: str, config: DataConfig) -> dict:
    """Attack `model` with `recipe` on a seeded sample of `config.attack_examples` of `rows` (text_a, text_b,
    label); returns the record's entry: its settings, metrics (`score` is the accuracy under attack) and
    each example's row in `rows`, label, prediction after the attack, outcome, queries and perturbed text."""
    textattack = _textattack()
    sample = train_subset(rows.add_column("row", list(range(len(rows)))), config.attack_examples, config.subset_seed)
    columns = [c for c in ("text_a", "text_b") if c in sample.column_names]
    dataset = textattack.datasets.Dataset([(tuple(row[c] for c in columns), int(row["label"])) for row in sample],
                                          input_columns=task.hub_text_fields)
    sized = copy.copy(tokenizer)
    sized.model_max_length = config.max_length  # the run's own truncation, so unattacked predictions match dev's
    with _offline_nltk():
        attack = getattr(textattack.attack_recipes, ATTACK_RECIPES[recipe][0]).build(
            textattack.models.wrappers.HuggingFaceModelWrapper(model.eval(), sized))
    args = textattack.AttackArgs(num_examples=len(dataset), query_budget=config.attack_query_budget,
                                 random_seed=config.attack_seed, disable_stdout=True, silent=True)
    results = textattack.Attacker(attack, dataset, args).attack_dataset()
    return {"recipe": recipe, "examples": len(results), "query_budget": config.attack_query_budget,
            "subset_seed": config.subset_seed, "attack_seed": config.attack_seed,
            "textattack": package_version("textattack"), "metrics": attack_metrics(results), "score_metrics": ["accuracy"],
            "rows": list(sample["row"]), "labels": [int(r.original_result.ground_truth_output) for r in results],
            "predictions": [int(r.perturbed_result.output) for r in results],
            "outcomes": [OUTCOMES[type(r).__name__] for r in results],
            "queries": [int(r.perturbed_result.num_queries) for r in results],
            "perturbed": [r.perturbed_result.attacked_text.text for r in results]}


def attack_saved_run(folder: str | Path, settings: dict) -> dict:
    """Attack the kept weights of the student run saved in `folder` (its `model` folder, on its own data
    settings) with `settings` (DataConfig's attack fields, and `data_dir` where the run's is not found from
    here) and add each recipe's entry to its record's `attack`, the record rewritten whole; returns the
    entries."""
    file, record, config = read_run(folder, STUDENT_RUNS, why="a cached teacher's folder is sealed and is not "
                                    "attacked in place")
    folder = file.parent
    if not (folder / "model").is_dir():
        raise KdbenchError(f"{folder}: no weights in {folder / 'model'}: give the folder of a finished run")
    config = replace(config.data, **settings)
    check_attack(config)
    data = load_data(config)
    model, tokenizer = load_classifier(str(folder / "model"), data.task), load_tokenizer(str(folder / "model"))
    entries = attack_run(model, tokenizer, data, config)
    write_record(folder, {**record, "attack": {**(record.get("attack") or {}), **entries}})
    return entries


def attack_metrics(results: list) -> dict:
    """The summary metrics as fractions: the accuracy before and under attack, the success rate over the
    examples first classified right, the words a successful attack changed (count, and percent of the text)
    and the queries per attacked example; None where no example counts. TextAttack's metrics give all but
    the count of words changed: its `avg_word_perturbed` is the mean number of words per input, which its
    summary labels as such."""
    from textattack.metrics import AttackQueries, AttackSuccessRate, WordsPerturbed

    rate = AttackSuccessRate().calculate(results)
    succeeded = [r for r in results if OUTCOMES[type(r).__name__] == "succeeded"]
    words = WordsPerturbed().calculate(results) if succeeded else {}
    changed = [len(r.original_result.attacked_text.all_words_diff(r.perturbed_result.attacked_text)) for r in succeeded]
    queries = AttackQueries().calculate(results) if len(results) > rate["skipped_attacks"] else {}
    accuracy = rate["failed_attacks"] / len(results)
    return {"score": accuracy, "accuracy_under_attack": accuracy,
            "original_accuracy": rate["original_accuracy"] / 100,
            "attack_success_rate": _finite(rate["attack_success_rate"] / 100
                                           if rate["successful_attacks"] + rate["failed_attacks"] else None),
            "words_perturbed": _finite(sum(changed) / len(changed) if changed else None),
            "words_perturbed_pct": _finite(words.get("avg_word_perturbed_perc")),
            "queries_per_example": _finite(queries.get("avg_num_queries"))}


def _finite(value) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else round(float(value), 6)


def _textattack() -> types.ModuleType:
    """TextAttack, imported with flair's stand-in where flair does not import, and NLTK offline (see the
    module's docstring)."""
    if "textattack" not in sys.modules:
        try:
            importlib.import_module("flair")
        except ImportError:
            sys.modules.update(_flair_stand_in())
    with _offline_nltk():  # its augmentation recipes read the stop words at import
        import textattack

    return textattack


def _flair_stand_in() -> dict[str, types.ModuleType]:
    """The names TextAttack takes from flair at import time, each refusing to be used."""

    def refuse(*args, **kwargs):
        raise KdbenchError("this TextAttack feature needs flair (part-of-speech tagging), which cannot be "
                           "installed beside transformers 5; the suite's recipes (pwws, deepwordbug) do not use it")

    flair, data, models = (types.ModuleType(name) for name in ("flair", "flair.data", "flair.models"))
    data.Tokenizer = type("Tokenizer", (), {})  # a base class TextAttack subclasses at import
    data.Sentence = type("Sentence", (), {"__init__": refuse})
    models.SequenceTagger = type("SequenceTagger", (), {"load": staticmethod(refuse)})
    flair.__path__, flair.data, flair.models = [], data, models
    return {"flair": flair, "flair.data": data, "flair.models": models}


@contextmanager
def _offline_nltk() -> Iterator[None]:
    """NLTK's English stop words first on its data path, and its downloader off (see the module's docstring)."""
    import nltk

    if str(STOPWORDS_DIR) not in nltk.data.path:
        nltk.data.path.insert(0, str(STOPWORDS_DIR))
    download = nltk.download
    nltk.download = lambda *args, **kwargs: True
    try:
        yield
    finally:
        nltk.download = download
