"""What the suite knows about each GLUE task: files, columns, labels and metrics.

The file layouts are those written by GLUE's `download_glue_data.py` and read by GLUE's own
processors (also in `transformers.data.processors.glue`): some files have a header row and some
do not, MRPC's files may start with a UTF-8 byte-order mark, column positions differ by task, and
test files carry no labels. Column positions are 0-based; a negative one counts from the end.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.parts.errors import UnknownNameError


@dataclass(frozen=True)
class FileLayout:
    """Where one split of a task lives inside its GLUE folder, and which columns to read."""

    filename: str
    has_header: bool
    text_columns: tuple[int, ...]
    label_column: int | None  # None: the file is unlabeled (GLUE test sets)


@dataclass(frozen=True)
class TaskSpec:
    """One classification or regression task."""

    name: str
    glue_dir: str  # folder name in the download script's layout
    hub_config: str  # configuration of the hub dataset `nyu-mll/glue`
    hub_text_fields: tuple[str, ...]  # column names in the hub dataset
    label_names: tuple[str, ...] | None  # index order = the hub's ClassLabel order; None: regression
    label_values: tuple[str, ...] | None  # the same labels as written in the TSV files
    metrics: tuple[str, ...]  # GLUE's metrics for the task; their mean is the task's `score`
    splits: dict[str, FileLayout]  # split name -> file layout; evaluation splits start with "validation"

    @property
    def is_regression(self) -> bool:
        return self.label_names is None

    @property
    def num_labels(self) -> int:
        return 1 if self.label_names is None else len(self.label_names)

    @property
    def is_pair(self) -> bool:
        return len(self.hub_text_fields) == 2

    @property
    def eval_splits(self) -> tuple[str, ...]:
        """Labelled dev splits, the first being the one that selects the best checkpoint."""
        return tuple(s for s in self.splits if s.startswith("validation"))


def _pair_layouts(text: tuple[int, int], label: int, test_text: tuple[int, int]) -> dict[str, FileLayout]:
    return {
        "train": FileLayout("train.tsv", True, text, label),
        "validation": FileLayout("dev.tsv", True, text, label),
        "test": FileLayout("test.tsv", True, test_text, None),
    }


_BINARY = ("0", "1")
_ENTAILMENT = ("entailment", "not_entailment")

TASKS: dict[str, TaskSpec] = {
    "cola": TaskSpec(
        "cola", "CoLA", "cola", ("sentence",), ("unacceptable", "acceptable"), _BINARY,
        ("matthews_correlation",),
        {
            "train": FileLayout("train.tsv", False, (3,), 1),
            "validation": FileLayout("dev.tsv", False, (3,), 1),
            "test": FileLayout("test.tsv", True, (1,), None),
        },
    ),
    "sst2": TaskSpec(
        "sst2", "SST-2", "sst2", ("sentence",), ("negative", "positive"), _BINARY, ("accuracy",),
        {
            "train": FileLayout("train.tsv", True, (0,), 1),
            "validation": FileLayout("dev.tsv", True, (0,), 1),
            "test": FileLayout("test.tsv", True, (1,), None),
        },
    ),
    "mrpc": TaskSpec(
        "mrpc", "MRPC", "mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), _BINARY,
        ("f1", "accuracy"), _pair_layouts((3, 4), 0, (3, 4)),
    ),
    "stsb": TaskSpec(
        "stsb", "STS-B", "stsb", ("sentence1", "sentence2"), None, None, ("pearson", "spearmanr"),
        _pair_layouts((7, 8), -1, (7, 8)),
    ),
    "qqp": TaskSpec(
        "qqp", "QQP", "qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), _BINARY,
        ("f1", "accuracy"), _pair_layouts((3, 4), 5, (1, 2)),
    ),
    "mnli": TaskSpec(
        "mnli", "MNLI", "mnli", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"),
        ("entailment", "neutral", "contradiction"), ("accuracy",),
        {
            "train": FileLayout("train.tsv", True, (8, 9), -1),
            "validation_matched": FileLayout("dev_matched.tsv", True, (8, 9), -1),
            "validation_mismatched": FileLayout("dev_mismatched.tsv", True, (8, 9), -1),
            "test_matched": FileLayout("test_matched.tsv", True, (8, 9), None),
            "test_mismatched": FileLayout("test_mismatched.tsv", True, (8, 9), None),
        },
    ),
    "qnli": TaskSpec(
        "qnli", "QNLI", "qnli", ("question", "sentence"), _ENTAILMENT, _ENTAILMENT, ("accuracy",),
        _pair_layouts((1, 2), -1, (1, 2)),
    ),
    "rte": TaskSpec(
        "rte", "RTE", "rte", ("sentence1", "sentence2"), _ENTAILMENT, _ENTAILMENT, ("accuracy",),
        _pair_layouts((1, 2), -1, (1, 2)),
    ),
    "wnli": TaskSpec(
        "wnli", "WNLI", "wnli", ("sentence1", "sentence2"), ("not_entailment", "entailment"), _BINARY,
        ("accuracy",), _pair_layouts((1, 2), -1, (1, 2)),
    ),
}


def get_task(name: str) -> TaskSpec:
    """The spec of a GLUE task by name (case and dashes ignored: `SST-2` is `sst2`)."""
    key = name.lower().replace("-", "")
    if key not in TASKS:
        raise UnknownNameError("task", name, TASKS)
    return TASKS[key]
