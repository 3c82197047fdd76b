"""Out-of-domain evaluation sets: scored once with a run's kept weights, beside the dev set that selects them.

A run names them in `DataConfig.eval_task` (`--eval-task hans`): either a set the suite knows (`OOD_SETS`)
or `file:PATH`, a file of the trained task's own columns (its text fields as the hub names them, e.g.
`sentence` or `sentence1,sentence2`, and `label` in the task's values), read by the task loader's reader, so
a user with internet adds PAWS for QQP or IMDb for SST-2 as a file. A known set has labels of its own
(HANS: entailment or non-entailment) and says how each task's classes map onto them (MNLI's neutral and
contradiction are both non-entailment, as HANS's evaluation counts them); it is scored by accuracy over
its labels, and by group (HANS: heuristic and gold label, as its evaluate_heur_output.py reports).

HANS (McCoy et al., ACL 2019): its data files are not in the repository snapshot we can reach, so the set
is regenerated from its own templates (bench/third_party/hans, MIT) with seed 0, 1,000 examples for each of
the 30 subcases as the original, checked against `HANS_SHA256` and cached. Its draws differ from the
published file's (that was drawn under Python 2's generator), its templates and counts do not.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np

from bench.parts.errors import KdbenchError, UnknownNameError
from bench.parts.tasks import TaskSpec, get_task
from bench.pipeline.cache import cache_root
from bench.pipeline.config import DataConfig
from bench.pipeline.data import TEXT_COLUMNS, parse_label, read_records, train_subset
from bench.pipeline.metrics import compute_metrics, predictions_from_logits
from bench.pipeline.storage import atomic_file

FILE_PREFIX = "file:"
HANS_COLUMNS = ("gold_label", "sentence1", "sentence2", "pairID", "heuristic", "subcase", "template")
# sha256 of the regenerated file (seed 0, 1,000 per subcase, HANS_COLUMNS): a generator that drew otherwise
# (another numpy or Python) is caught before a score is reported against it
HANS_SHA256 = "1eb0f23a8b16659b6ef8c92432885d76c977968392db235a33333241506fe3d0"


@dataclass(frozen=True)
class OODSet:
    """A known out-of-domain set: its labels, and the class of each task it tests mapped onto them."""

    name: str
    description: str
    label_names: tuple[str, ...]
    label_of_class: dict[str, str]  # a task's class name -> this set's label; a task all of whose classes map is tested

    def tests(self, task: TaskSpec) -> bool:
        return not task.is_regression and all(name in self.label_of_class for name in task.label_names)


OOD_SETS = {
    "hans": OODSet("hans", "HANS (McCoy et al. 2019), regenerated from its templates: 30,000 premise-hypothesis "
                   "pairs that a lexical-overlap, subsequence or constituent heuristic gets wrong half the time",
                   ("entailment", "non-entailment"),
                   {"entailment": "entailment", "not_entailment": "non-entailment",
                    "neutral": "non-entailment", "contradiction": "non-entailment"}),
}


@dataclass
class OODData:
    """One out-of-domain set ready to score: `rows` has the task's text columns and `label` in `label_names`;
    `groups` names each row's group (empty for a file)."""

    name: str
    source: str
    rows: datasets.Dataset
    label_names: tuple[str, ...] | None  # None: the task's own classes (a file set)
    class_to_label: np.ndarray | None  # task class index -> label index (None: the same)
    groups: list[str]


def eval_task_names(config: DataConfig) -> list[str]:
    return [name.strip() for name in config.eval_task.split(",") if name.strip()]


def check_eval_tasks(config: DataConfig, task: TaskSpec | None = None) -> None:
    """Refuse an unknown set, a missing file, or a set that does not test the task (`task`, else the GLUE task
    the config names; an own task's classes are known once it is read), before any model loads."""
    if task is None and not config.train_file:
        task = get_task(config.task)
    for name in eval_task_names(config):
        if name.startswith(FILE_PREFIX):
            path = Path(name.removeprefix(FILE_PREFIX))
            if not path.is_file():
                columns = f" with the columns {', '.join(_file_columns(task))}" if task else ""
                raise KdbenchError(f"out-of-domain file {path} not found (--eval-task {name}): give a .csv, .tsv or "
                                   f".jsonl file{columns}")
            continue
        if name not in OOD_SETS:
            raise UnknownNameError("out-of-domain set", name, [*OOD_SETS, "file:PATH"])
        if task is not None and not OOD_SETS[name].tests(task):
            testable = ", ".join(OOD_SETS[name].label_of_class)
            raise KdbenchError(f"out-of-domain set {name} tests tasks whose classes are among {testable}; "
                               f"task {task.name} has {', '.join(task.label_names or ('a score',))}: give a file "
                               f"of the task's own labels instead (--eval-task file:PATH)")


def load_ood_sets(config: DataConfig, task: TaskSpec, cache_dir: str | Path | None = None) -> list[OODData]:
    """Each set the config names, checked, read, and cut to a seeded subset of `eval_task_examples` rows."""
    check_eval_tasks(config, task)
    loaded = []
    for name in eval_task_names(config):
        data = _read_file(name, task) if name.startswith(FILE_PREFIX) else _read_hans(OOD_SETS[name], task, cache_dir)
        rows = train_subset(data.rows.add_column("group", data.groups), config.eval_task_examples, config.subset_seed)
        data.rows, data.groups = rows.remove_columns("group"), rows["group"]
        loaded.append(data)
    return loaded


def score_ood(data: OODData, logits: np.ndarray, task: TaskSpec) -> dict:
    """The set's metrics (a known set: accuracy over its labels; a file: the task's metrics and `score`), the
    accuracy of each group, and each row's prediction and label, as a record keeps them."""
    labels = np.asarray(data.rows["label"])
    if data.class_to_label is None:
        metrics = compute_metrics(task, logits, labels)
        predictions = predictions_from_logits(task, logits)
    else:
        predictions = data.class_to_label[np.asarray(logits).argmax(-1)]
        accuracy = float(np.mean(predictions == labels))
        metrics = {"accuracy": accuracy, "score": accuracy}
    groups = np.asarray(data.groups)
    by_group = {group: float(np.mean(predictions[groups == group] == labels[groups == group]))
                for group in sorted(set(data.groups) - {""})}
    return {"source": data.source, "examples": len(labels), "label_names": data.label_names, "metrics": metrics,
            "groups": by_group, "labels": labels.tolist(), "predictions": predictions.tolist()}


def _file_columns(task: TaskSpec) -> tuple[str, ...]:
    return (*task.hub_text_fields, "label")


def _read_file(name: str, task: TaskSpec) -> OODData:
    path = Path(name.removeprefix(FILE_PREFIX))
    columns = {column: [] for column in (*TEXT_COLUMNS[:len(task.hub_text_fields)], "label")}
    for line, values in read_records(path, _file_columns(task)):
        for column, field in zip(TEXT_COLUMNS, task.hub_text_fields):
            columns[column].append(values[field])
        columns["label"].append(parse_label(values["label"], task, path, line))
    return OODData(name, str(path), datasets.Dataset.from_dict(columns), None, None, [""] * len(columns["label"]))


def _read_hans(ood: OODSet, task: TaskSpec, cache_dir: str | Path | None) -> OODData:
    """HANS from its regenerated file, labelled in `ood`'s labels, grouped by heuristic and gold label (the one
    known set: another would bring its own reader)."""
    path = hans_file(cache_dir)
    columns = {"text_a": [], "text_b": [], "label": []}
    groups = []
    for line, values in read_records(path, HANS_COLUMNS[:5]):
        if values["gold_label"] not in ood.label_names:
            raise KdbenchError(f"{path}:{line}: label {values['gold_label']!r} is not one of {ood.label_names}")
        columns["text_a"].append(values["sentence1"])
        columns["text_b"].append(values["sentence2"])
        columns["label"].append(ood.label_names.index(values["gold_label"]))
        groups.append(f"{values['heuristic']}/{values['gold_label']}")
    class_to_label = np.array([ood.label_names.index(ood.label_of_class[name]) for name in task.label_names])
    return OODData(ood.name, str(path), datasets.Dataset.from_dict(columns), ood.label_names, class_to_label, groups)


def hans_file(cache_dir: str | Path | None = None) -> Path:
    """The regenerated HANS evaluation set as a TSV in the cache: generated once (about 10 s), verified
    against `HANS_SHA256` on every read, and generated again if the cached file was damaged."""
    path = cache_root(cache_dir) / "ood" / "hans-seed0.tsv"
    if path.is_file() and _sha256(path) == HANS_SHA256:
        return path
    from bench.third_party.hans.corpus_generator import generate

    text = "".join("\t".join(row) + "\n" for row in
                   [HANS_COLUMNS, *([row[c] for c in HANS_COLUMNS] for row in generate(1000, seed=0))])
    if hashlib.sha256(text.encode()).hexdigest() != HANS_SHA256:
        raise KdbenchError("the HANS generator drew a different set than the one the suite's scores are "
                           "checked against (another Python or numpy random generator?); report this with "
                           "`python --version` and numpy's version")
    with atomic_file(path) as handle:
        handle.write(text)
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
