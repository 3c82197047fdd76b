"""kdbench against the tool researchers would use instead: Hugging Face `Trainer` with its defaults
(pytest-benchmark; run with `tox -e bench`, not part of the default run).

Side by side in one run, on the same model (the offline MiniLM), data and settings, per task (RTE
sentence pairs at length 128, all 2,490 training examples; SST-2 at length 64, a seeded 4,000-example
subset; 2 epochs, batch 32, learning rate 5e-5, 10% warm-up, weight decay 0.01, seed 42, dev
evaluated after each epoch):
  hf-finetune        Trainer as its documentation shows it: DataCollatorWithPadding, random batches
  kdbench-random     `finetune-teacher` with Trainer's random order (`--train-sampling-strategy random`)
  kdbench-finetune   `finetune-teacher` as it runs by default (length-grouped batches)
  hf-distill         Trainer with the KD loss in `compute_loss`, the teacher run on every batch (the
                     usual recipe), student = teacher layers 0, 2, 4
  kdbench-distill    `distill`: the teacher's outputs computed once in length-sorted batches, then the
                     student trained on length-grouped batches; the same student and KD loss
Each is timed whole (loading, tokenising, training, evaluation, saving); kdbench's own phases come
from its run record. The distillations use kdbench-finetune's teacher. `KDBENCH_PEER_MAX_TRAIN=N`
caps the training examples (a quick check of the benchmark itself).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bench.parts.models import MINILM, resolve_model
from bench.pipeline.config import DataConfig, RunConfig, TrainConfig
from bench.pipeline.runs import finetune_teacher, run_distill
from tests.trainer_recipe import trainer_run

TASKS = {"rte": (128, None), "sst2": (64, 4000)}  # max length, training examples (None: all)
SETTINGS = TrainConfig(learning_rate=5e-5, per_device_train_batch_size=32, num_train_epochs=2, seed=42)
GLUE_DIR = os.environ.get("KDBENCH_GLUE_DIR")  # read on import: each test runs without it (tests/conftest.py)
CAP = int(os.environ["KDBENCH_PEER_MAX_TRAIN"]) if os.environ.get("KDBENCH_PEER_MAX_TRAIN") else None
RESULTS: dict[tuple[str, str], dict] = {}  # (task, variant) -> seconds, dev score, phases; read by conftest
TEACHERS: dict[str, str] = {}  # task -> kdbench-finetune's teacher folder, for the distillations


def _train_examples(task: str) -> int | None:
    limit = TASKS[task][1]
    return min(x for x in (limit, CAP) if x is not None) if (limit or CAP) else None


def _data_config(task: str) -> DataConfig:
    return DataConfig(task=task, data_dir=GLUE_DIR, max_length=TASKS[task][0],
                      max_train_examples=_train_examples(task))


def hf_run(task: str, output_dir: Path, *, teacher_dir: str | None = None) -> dict:
    """Fine-tune MiniLM (or, given a teacher, distil it into its layers 0, 2, 4) with Trainer's defaults."""
    started = time.perf_counter()
    evaluations = trainer_run(task, GLUE_DIR, teacher_dir or resolve_model(MINILM), SETTINGS, output_dir,
                              max_length=TASKS[task][0], max_train_examples=_train_examples(task),
                              student_layers=[0, 2, 4] if teacher_dir else None)
    scores = [e["eval_accuracy"] for e in evaluations]
    return {"seconds": time.perf_counter() - started, "score": scores[-1], "best_epoch_score": max(scores)}


def kdbench_run(task: str, output_dir: Path, variant: str) -> dict:
    started = time.perf_counter()
    cache = output_dir / "cache"
    train = replace(SETTINGS, train_sampling_strategy="random") if variant == "kdbench-random" else SETTINGS
    if variant == "kdbench-distill":
        record = run_distill(RunConfig(data=_data_config(task), train=train, teacher=TEACHERS[task],
                                       student="teacher-layers:0,2,4", output_dir=str(output_dir / "run"),
                                       cache_dir=str(cache)))
    else:
        folder, record, _ = finetune_teacher(RunConfig(data=_data_config(task), train=train, teacher_train=train,
                                                       output_dir=str(output_dir / "teacher"), cache_dir=str(cache)))
        if variant == "kdbench-finetune":
            TEACHERS[task] = str(folder)
    return {"seconds": time.perf_counter() - started, "score": record["best"]["value"],
            "last_epoch_score": record["evaluations"][-1][f"eval_{next(iter(record['data']['eval_examples']))}_score"],
            "phases": record["timings_s"]}


VARIANTS = ["hf-finetune", "kdbench-random", "kdbench-finetune", "hf-distill", "kdbench-distill"]


@pytest.mark.parametrize("task, variant", [(task, variant) for task in TASKS for variant in VARIANTS])
def test_against_trainer(benchmark, task, variant, tmp_path_factory):
    benchmark.group = f"kdbench vs Trainer, {task}"
    if not GLUE_DIR:
        pytest.skip("needs GLUE's RTE and SST-2: set KDBENCH_GLUE_DIR")
    if variant.endswith("distill") and task not in TEACHERS:
        pytest.skip("the distillations need kdbench-finetune's teacher")
    folder = tmp_path_factory.mktemp(f"{task}-{variant}")

    def once():
        with tempfile.TemporaryDirectory(dir=folder) as scratch:
            if variant.startswith("hf"):
                return hf_run(task, Path(scratch), teacher_dir=TEACHERS.get(task) if variant == "hf-distill" else None)
            return kdbench_run(task, Path(scratch) if variant != "kdbench-finetune" else folder, variant)

    RESULTS[task, variant] = benchmark.pedantic(once, rounds=1, iterations=1)
    benchmark.extra_info.update(RESULTS[task, variant])
