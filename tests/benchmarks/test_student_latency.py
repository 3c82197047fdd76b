"""CPU latency of the students of `ablations/students.toml` and `ablations/intermediate.toml` against their
teacher (pytest-benchmark; `tox -e bench`): each built from the offline MiniLM as a run builds it, then
classifying SST-2 dev sentences one at a time (batch 1, max length 64, no gradient, eval mode) on one
thread, as a deployed student would, and in batches of 32, as a bulk scorer would. The weights do not change
the time, so the students are not trained. The summary prints milliseconds per sentence, parameters and the
speed-up over the teacher, side by side.
"""

from __future__ import annotations

import os

import pytest
import torch

from bench.parts.features import Collator, tokenize
from bench.parts.models import MINILM, load_classifier, load_tokenizer
from bench.parts.tasks import get_task
from bench.pipeline.data import load_task
from bench.pipeline.students import build_student
from tests.conftest import write_sst2

SENTENCES, MAX_LENGTH = 64, 64
STUDENTS = ["teacher", "teacher-layers:0,2,4", "teacher-layers:0,3", "kronecker:kroneckerbert8",
            "kronecker:kroneckerbert21"]
SST2 = get_task("sst2")
GLUE_DIR = os.environ.get("KDBENCH_GLUE_DIR")  # read on import: each test runs without it (tests/conftest.py)
BATCH_SIZES = [1, 32]
RESULTS: dict[tuple[str, int], dict[str, float]] = {}  # (student, batch size) -> ms per sentence and parameters


@pytest.fixture(scope="module")
def sentences(tmp_path_factory):
    data_dir = GLUE_DIR or write_sst2(tmp_path_factory.mktemp("latency") / "glue", n_dev=SENTENCES)
    dev = load_task("sst2", data_dir=data_dir, splits=["validation"]).splits["validation"].select(range(SENTENCES))
    tokenizer = load_tokenizer(MINILM)
    return tokenize(dev, tokenizer, MAX_LENGTH).remove_columns(["labels"]), Collator(tokenizer)


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
@pytest.mark.parametrize("student", STUDENTS)
def test_latency_per_sentence(benchmark, sentences, student, batch_size):
    rows, collate = sentences
    batches = [collate([rows[i] for i in range(start, min(start + batch_size, len(rows)))])
               for start in range(0, len(rows), batch_size)]
    teacher = load_classifier(MINILM, SST2)
    model = (teacher if student == "teacher" else build_student(student, teacher, SST2)).eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def classify_all():
        with torch.inference_mode():
            for batch in batches:
                model(**batch)

    try:
        benchmark.pedantic(classify_all, rounds=3, warmup_rounds=1)
    finally:
        torch.set_num_threads(threads)
    RESULTS[student, batch_size] = {"ms": 1000 * benchmark.stats.stats.median / len(rows),
                        "parameters": model.num_parameters()}
