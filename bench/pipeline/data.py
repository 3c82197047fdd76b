"""Loading a task's data into `datasets.Dataset`s with one normalised schema.

Every split has the columns `text_a` (str), `text_b` (str, sentence-pair tasks only) and `label`:
an int index into `TaskSpec.label_names`, a float for regression, and `UNLABELED` (-1, or nan for
regression) in unlabeled test splits. The rest of the suite reads only these columns, so it does not
care whether the data came from a GLUE folder, the hub or the user's own files.

GLUE comes from, in this order: a folder in the layout of GLUE's `download_glue_data.py` (the
`data_dir` argument or `KDBENCH_GLUE_DIR`), else the hub dataset `nyu-mll/glue` when the hub is
reachable. The TSVs are read with quoting disabled, because several hold unbalanced `"` that a
quote-aware reader would take as the start of a field spanning many lines.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import datasets
import numpy as np

from bench.parts.errors import DataFormatError, KdbenchError, UnknownNameError
from bench.parts.hub import hub_reachable
from bench.parts.tasks import FileLayout, TaskSpec, get_task
from bench.pipeline.config import DataConfig

HUB_DATASET = "nyu-mll/glue"
GLUE_DIR_ENV = "KDBENCH_GLUE_DIR"
UNLABELED = -1  # label of a classification example without a label; regression uses nan
TEXT_COLUMNS = ("text_a", "text_b")

_OFFLINE_OPTIONS = (
    f"pass --data-dir DIR or set {GLUE_DIR_ENV} to a folder in the layout of GLUE's "
    "download_glue_data.py (DIR/SST-2/train.tsv, DIR/RTE/dev.tsv, ...), "
    "or use --train-file/--validation-file for your own data"
)


@dataclass
class TaskData:
    """A task's spec, its loaded splits and where they came from (for run records)."""

    task: TaskSpec
    splits: dict[str, datasets.Dataset]  # "train", the eval splits, optionally test splits
    source: str  # the task's folder, "hub:nyu-mll/glue/<config>", or the custom file paths
    label_noise: dict | None = None  # what `add_label_noise` corrupted in the train split, for run records


def load_task(
    task: str,
    *,
    data_dir: str | Path | None = None,
    splits: Sequence[str] | None = None,
    max_train_examples: int | None = None,
    seed: int = 42,
) -> TaskData:
    """Load a GLUE task from a local GLUE folder, else from the hub.

    `splits` defaults to "train" and the task's eval splits; test splits are loaded only when
    named. `max_train_examples` keeps a seeded subset of the train split (see `train_subset`).
    """
    spec = get_task(task)
    names = tuple(splits) if splits is not None else ("train", *spec.eval_splits)
    for name in names:
        if name not in spec.splits:
            raise UnknownNameError(f"split of task {spec.name}", name, spec.splits)

    env_dir = os.environ.get(GLUE_DIR_ENV)
    if data_dir is not None or env_dir:
        from_env = f" (from {GLUE_DIR_ENV})" if data_dir is None else ""
        folder = Path(data_dir if data_dir is not None else env_dir) / spec.glue_dir
        loaded = _load_glue_folder(spec, folder, names, from_env)
        source = str(folder)
    elif hub_reachable():
        loaded = _load_hub(spec, names)
        source = f"hub:{HUB_DATASET}/{spec.hub_config}"
    else:
        raise KdbenchError(
            f"cannot load task {spec.name}: no GLUE folder was given and the Hugging Face hub is "
            f"unreachable; {_OFFLINE_OPTIONS}"
        )

    if "train" in loaded:
        loaded["train"] = train_subset(loaded["train"], max_train_examples, seed)
    return TaskData(spec, loaded, source)


def load_custom(
    train_file: str | Path,
    validation_file: str | Path,
    *,
    text_columns: Sequence[str],
    label_column: str,
    regression: bool = False,
    test_file: str | Path | None = None,
    max_train_examples: int | None = None,
    seed: int = 42,
) -> TaskData:
    """Load the user's own task from CSV, TSV or JSON Lines files, chosen by file extension.

    `text_columns` names one column (single-sentence task) or two (sentence pair). The classes
    are the distinct label strings of the train file, sorted; the validation file may use only
    those. A test file is read as unlabeled: its label column, if any, is ignored.
    """
    if len(text_columns) not in (1, 2):
        raise KdbenchError(
            f"give one or two text columns, not {len(text_columns)}: {list(text_columns)}"
        )
    if label_column in text_columns:
        raise KdbenchError(f"column {label_column!r} cannot be both a text column and the label column")

    paths = {"train": Path(train_file), "validation": Path(validation_file)}
    if test_file is not None:
        paths["test"] = Path(test_file)
    records = {
        split: read_records(path, [*text_columns, *([label_column] if split != "test" else [])])
        for split, path in paths.items()
    }

    labels = None if regression else tuple(sorted({values[label_column] for _, values in records["train"]}))
    if labels is not None and len(labels) < 2:
        raise KdbenchError(
            f"{paths['train']}: the label column {label_column!r} has only the value(s) {list(labels)}; "
            "classification needs at least two classes (use regression=True for scores)"
        )
    if regression:
        metrics = ("pearson", "spearmanr")
    else:
        metrics = ("f1", "accuracy") if len(labels) == 2 else ("accuracy",)
    spec = TaskSpec(
        name="custom",
        glue_dir="",
        hub_config="",
        hub_text_fields=tuple(text_columns),
        label_names=labels,
        label_values=labels,
        metrics=metrics,
        splits={split: FileLayout(str(path), True, (), None) for split, path in paths.items()},
    )

    loaded = {}
    for split, path in paths.items():
        columns = _empty_columns(spec)
        for line, values in records[split]:
            for name, column in zip(TEXT_COLUMNS, text_columns):
                columns[name].append(values[column])
            if split == "test":
                columns["label"].append(_unlabeled(spec))
            else:
                columns["label"].append(parse_label(values[label_column], spec, path, line))
        loaded[split] = datasets.Dataset.from_dict(columns, features=_features(spec))
    loaded["train"] = train_subset(loaded["train"], max_train_examples, seed)
    return TaskData(spec, loaded, ", ".join(str(path) for path in paths.values()))


def train_subset(ds: datasets.Dataset, n: int | None, seed: int) -> datasets.Dataset:
    """A seeded random subset of `n` rows, kept in file order; the whole set if `n` is None or >= len.

    The rows depend only on (data, n, seed), so runs that share them train on the same examples.
    """
    if n is None or n >= len(ds):
        return ds
    if n < 1:
        raise KdbenchError(f"the number of training examples must be at least 1, not {n}")
    rows = np.sort(np.random.default_rng(seed).choice(len(ds), size=n, replace=False))
    return ds.select(rows.tolist())


def _features(spec: TaskSpec) -> datasets.Features:
    """The normalised schema, fixed up front so empty and full files give the same one."""
    features = {name: datasets.Value("string") for name in TEXT_COLUMNS[: len(spec.hub_text_fields)]}
    features["label"] = datasets.Value("float32" if spec.is_regression else "int64")
    return datasets.Features(features)


def _empty_columns(spec: TaskSpec) -> dict[str, list]:
    return {name: [] for name in _features(spec)}


def _unlabeled(spec: TaskSpec) -> int | float:
    return math.nan if spec.is_regression else UNLABELED


def parse_label(value: str, spec: TaskSpec, path: Path, line: int) -> int | float:
    """A label as written in a file -> its class index, or its score for regression."""
    if spec.is_regression:
        try:
            score = float(value)
        except ValueError:
            score = math.nan
        if not math.isfinite(score):
            raise DataFormatError(str(path), line, f"expected a number as the score, found {value!r}")
        return score
    if value not in spec.label_values:
        raise DataFormatError(
            str(path), line, f"label {value!r} is not one of {', '.join(spec.label_values)}"
        )
    return spec.label_values.index(value)


def _read_rows(path: Path, delimiter: str, quoting: int) -> Iterator[tuple[int, list[str]]]:
    """The non-empty rows of a delimited UTF-8 file (BOM stripped), each with its 1-based line number."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter, quoting=quoting)
        line = 1  # where the next row starts; a quoted CSV field may span lines
        try:
            for row in reader:
                if row:
                    yield line, row
                line = reader.line_num + 1
        except csv.Error as e:
            raise DataFormatError(str(path), reader.line_num, str(e)) from None
        except UnicodeDecodeError:
            raise _not_utf8(path) from None


def _not_utf8(path: Path) -> DataFormatError:
    """The error for a file that is not UTF-8, at the line of its first undecodable byte (a text
    reader fails a whole buffer at a time, so the line is found in the raw bytes)."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        return DataFormatError(str(path), line, f"not UTF-8 text ({e.reason}: byte {raw[e.start]:#04x}); "
                                                "save the file as UTF-8")
    return DataFormatError(str(path), 1, "not UTF-8 text; save the file as UTF-8")


def _require_examples(path: Path, count: int) -> None:
    """A data file without a single example stops the run now, not after the teacher's work."""
    if count == 0:
        raise KdbenchError(f"{path}: no examples (the file is empty or holds only its header); "
                           "give a file with at least one example")


# GLUE folders ------------------------------------------------------------------------------------


def _load_glue_folder(
    spec: TaskSpec, folder: Path, names: Sequence[str], from_env: str
) -> dict[str, datasets.Dataset]:
    if not folder.is_dir():
        raise KdbenchError(
            f"no folder {folder}{from_env} for task {spec.name}: {_OFFLINE_OPTIONS}"
        )
    loaded = {}
    for name in names:
        layout = spec.splits[name]
        path = folder / layout.filename
        if not path.is_file():
            raise KdbenchError(
                f"missing file {path} (split {name} of task {spec.name}); the folder should hold "
                f"the files of GLUE's download_glue_data.py: "
                f"{', '.join(layout.filename for layout in spec.splits.values())}"
            )
        loaded[name] = _read_glue_file(spec, layout, path)
    return loaded


def _min_columns(layout: FileLayout) -> int:
    """Columns a row needs so that every position read exists and none is read twice.

    A negative position counts from the end, so it must fall after the last column read from the front.
    """
    positions = [*layout.text_columns, *([layout.label_column] if layout.label_column is not None else [])]
    from_front = max((p + 1 for p in positions if p >= 0), default=0)
    from_back = max((-p for p in positions if p < 0), default=0)
    return from_front + from_back


def _read_glue_file(spec: TaskSpec, layout: FileLayout, path: Path) -> datasets.Dataset:
    """One GLUE TSV, read by the column positions of its layout, quoting disabled."""
    needed = _min_columns(layout)
    columns = _empty_columns(spec)
    rows = _read_rows(path, "\t", csv.QUOTE_NONE)
    if layout.has_header:
        next(rows, None)
    for line, row in rows:
        if len(row) < needed:
            raise DataFormatError(
                str(path), line, f"expected at least {needed} tab-separated columns, found {len(row)}"
            )
        for name, position in zip(TEXT_COLUMNS, layout.text_columns):
            columns[name].append(row[position])
        if layout.label_column is None:
            columns["label"].append(_unlabeled(spec))
        else:
            columns["label"].append(parse_label(row[layout.label_column], spec, path, line))
    _require_examples(path, len(columns["label"]))
    return datasets.Dataset.from_dict(columns, features=_features(spec))


# The hub -----------------------------------------------------------------------------------------


def _load_hub(spec: TaskSpec, names: Sequence[str]) -> dict[str, datasets.Dataset]:
    """The hub's splits renamed to the normalised columns; its ClassLabel order is label_names order."""
    hub = datasets.load_dataset(HUB_DATASET, spec.hub_config)
    features = _features(spec)
    renames = dict(zip(spec.hub_text_fields, TEXT_COLUMNS))
    loaded = {}
    for name in names:
        ds = hub[name].select_columns([*spec.hub_text_fields, "label"]).rename_columns(renames)
        ds = ds.cast(features)
        if spec.splits[name].label_column is None:
            unlabeled = _unlabeled(spec)  # the hub writes -1, also for STS-B scores
            ds = ds.map(lambda _: {"label": unlabeled}, features=features)
        loaded[name] = ds
    return loaded


# Custom files ------------------------------------------------------------------------------------


def read_records(path: Path, columns: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """The named columns of each record of a CSV, TSV or JSON Lines file, with its line number.

    Every named column must be present with a non-empty value. TSV is read without quoting,
    like GLUE's files; CSV with standard quoting. Read here rather than by `datasets`' csv/json
    builders so that every problem is reported with its file and line.
    """
    if not path.is_file():
        raise KdbenchError(f"data file {path} not found")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        records = _read_delimited(path, columns, ",", csv.QUOTE_MINIMAL)
    elif suffix == ".tsv":
        records = _read_delimited(path, columns, "\t", csv.QUOTE_NONE)
    elif suffix in (".jsonl", ".json"):
        records = _read_jsonl(path, columns)
    else:
        raise KdbenchError(
            f"{path}: unknown data file type {suffix!r}; use .csv, .tsv or .jsonl (JSON Lines)"
        )
    for line, values in records:
        for column in columns:
            if values[column] == "":
                raise DataFormatError(str(path), line, f"missing value in column {column!r}")
    _require_examples(path, len(records))
    return records


def _decoded_lines(f, path: Path) -> Iterator[tuple[int, str]]:
    """The lines of a text file opened as UTF-8, numbered from 1; undecodable bytes: one error with the line."""
    try:
        yield from enumerate(f, start=1)
    except UnicodeDecodeError:
        raise _not_utf8(path) from None


def _read_delimited(
    path: Path, columns: Sequence[str], delimiter: str, quoting: int
) -> list[tuple[int, dict[str, str]]]:
    rows = _read_rows(path, delimiter, quoting)
    header_line, header = next(rows, (1, None))
    if header is None:
        raise DataFormatError(str(path), 1, "expected a header row naming the columns, found an empty file")
    for column in columns:
        if column not in header:
            raise DataFormatError(
                str(path), header_line, f"no column {column!r} in the header; columns: {', '.join(header)}"
            )
    positions = {column: header.index(column) for column in columns}
    records = []
    for line, row in rows:
        if len(row) != len(header):
            raise DataFormatError(
                str(path), line, f"expected {len(header)} columns as in the header, found {len(row)}"
            )
        records.append((line, {column: row[i] for column, i in positions.items()}))
    return records


def _read_jsonl(path: Path, columns: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """One JSON object per line; numbers and booleans become their JSON text (1 -> "1")."""
    records = []
    with path.open(encoding="utf-8-sig") as f:
        for line, text in _decoded_lines(f, path):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                problem = f"invalid JSON: {e.msg} at column {e.colno}"
                raise DataFormatError(str(path), line, problem) from None
            if not isinstance(obj, dict):
                problem = f"expected a JSON object, found {type(obj).__name__}"
                raise DataFormatError(str(path), line, problem)
            values = {}
            for column in columns:
                if column not in obj:
                    raise DataFormatError(
                        str(path), line, f"no column {column!r}; this line has: {', '.join(obj)}"
                    )
                value = obj[column]
                if isinstance(value, (dict, list)):
                    problem = f"expected text or a number in column {column!r}, found {type(value).__name__}"
                    raise DataFormatError(str(path), line, problem)
                if value is None:
                    values[column] = ""  # reported as a missing value
                elif isinstance(value, str):
                    values[column] = value
                else:
                    values[column] = json.dumps(value)
            records.append((line, values))
    return records


# The shortest max_length that keeps a word piece of each side of a sentence pair: [CLS] a [SEP] b [SEP].


def load_data(config: DataConfig) -> TaskData:
    """The data a `DataConfig` names: a GLUE task, or the user's own files; with `label_noise`, its
    training labels corrupted (after the subset, so a subset's noise does not depend on the rest)."""
    if config.train_file:
        if not (config.validation_file and config.text_columns):
            raise KdbenchError("an own task needs --train-file, --validation-file and --text-columns")
        data = load_custom(config.train_file, config.validation_file, text_columns=config.text_columns.split(","),
                           label_column=config.label_column, regression=config.regression,
                           max_train_examples=config.max_train_examples, seed=config.subset_seed)
    else:
        data = load_task(config.task, data_dir=config.data_dir, max_train_examples=config.max_train_examples,
                         seed=config.subset_seed)
    if config.label_noise:
        data = add_label_noise(data, config.label_noise, config.label_noise_type, config.label_noise_seed)
    return data


def add_label_noise(data: TaskData, rate: float, kind: str, seed: int) -> TaskData:
    """`data` with exactly round(rate * n) of its n training labels corrupted; dev and test splits untouched.

    The rows are drawn by a numpy Generator seeded with `seed`, so one seed corrupts the same rows the
    same way in every run (the teacher's cache and the student see one noisy set), and the realised
    rate is within 1/n of `rate`. Each chosen label becomes another class: `uniform` one drawn
    uniformly among the K - 1 others, `class-conditional` the fixed pair flip c -> (c + 1) mod K (the
    usual class-conditional noise model of the noisy-label literature; with K = 2 both are one flip).
    What was corrupted is kept in `TaskData.label_noise`.
    """
    if data.task.is_regression:
        raise KdbenchError(f"label noise needs a classification task; {data.task.name} is regression: "
                           "leave --label-noise at 0")
    train = data.splits["train"]
    labels = np.asarray(train["label"])
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(labels), size=round(rate * len(labels)), replace=False))
    classes = data.task.num_labels
    shift = rng.integers(1, classes, size=len(rows)) if kind == "uniform" else 1  # 1..K-1: never the same class
    labels[rows] = (labels[rows] + shift) % classes
    noisy = datasets.Dataset.from_dict({**train.to_dict(), "label": labels.tolist()}, features=train.features)
    record = {"rate": rate, "type": kind, "seed": seed, "realised_rate": len(rows) / len(labels),
              "corrupted": len(rows), "rows": rows.tolist()}
    return replace(data, splits={**data.splits, "train": noisy}, label_noise=record)
