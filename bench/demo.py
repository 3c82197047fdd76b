"""The demo comparison (the suite's main job), small enough for 2 CPU cores and offline.

SST-2, a 2,000-example seeded subset, max length 64. The MiniLM teacher (6 layers) is fine-tuned
once and cached; a 3-layer student taken from its layers 0, 2, 4 is trained without KD (labels
only) and with plain KD (`--method none`), from the same initialisation and seed.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from bench.models import MINILM
from bench.runs import DataConfig, RunConfig, finetune_teacher, run_distill, run_finetune
from bench.training import TrainConfig

STUDENT = "teacher-layers:0,2,4"
TEACHER_TRAIN = TrainConfig(learning_rate=5e-5, num_train_epochs=3)
STUDENT_TRAIN = TrainConfig(learning_rate=1e-4, num_train_epochs=3)


def _row(name: str, record: dict, cached: bool = False) -> dict:
    metrics = record["best"]["metrics"]
    timings = record["timings_s"]
    return {
        "model": name,
        "layers": record["model"]["layers"],
        "params (M)": round(record["model"]["parameters"] / 1e6, 1),
        "dev accuracy": round(metrics["validation_accuracy"], 4),
        "best epoch": record["best"]["epoch"],
        "train s": round(timings["training"], 1),
        "total s": f"{timings['total']:.1f}" + (" (cached)" if cached else ""),
    }


def run_demo(*, data_dir: str | None = None, output_dir: str = "kdbench-results/demo", cache_dir: str | None = None,
             max_train_examples: int = 2000, seed: int = 42) -> str:
    """Run the three trainings and return the comparison table as text."""
    data = DataConfig(task="sst2", data_dir=data_dir, max_train_examples=max_train_examples, max_length=64)
    out = Path(output_dir)
    teacher_dir, teacher_record, cached = finetune_teacher(RunConfig(
        data=data, model=MINILM, teacher_train=replace(TEACHER_TRAIN, seed=seed),
        cache_dir=cache_dir))
    student_train = replace(STUDENT_TRAIN, seed=seed)
    common = dict(data=data, train=student_train, model=STUDENT, teacher=str(teacher_dir), cache_dir=cache_dir)
    no_kd = run_finetune(RunConfig(**common, output_dir=str(out / "finetune")))
    kd = run_distill(RunConfig(**common, method="none", output_dir=str(out / "distill")))
    table = pd.DataFrame([_row("teacher (MiniLM)", teacher_record, cached), _row("student, no KD", no_kd),
                          _row("student, KD", kd)])
    return (f"SST-2, {max_train_examples} training examples (subset seed {data.subset_seed}), max length 64, "
            f"dev set of {kd['data']['eval_examples']['validation']}; seed {seed}; teacher: {teacher_dir}\n"
            f"{table.to_string(index=False)}\nrun records: {out}/finetune/record.json, {out}/distill/record.json")
