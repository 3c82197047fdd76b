"""The demo comparison (the suite's main job), small enough for 2 CPU cores and offline.

SST-2, a 1,000-example seeded subset (the quick search profile's), max length 64. The MiniLM
teacher (6 layers) is fine-tuned once and cached; a student taken from its layers is trained
without KD (labels only), with plain KD, and with KD under each augmentation method, from the same
initialisation and seed. The student is the profile's (`bench.pipeline.config.DEMO_PROFILES`): by default
one layer (layer 0) trained 4 epochs, where the methods separate beyond the seed spread (docs/results.md:
Where methods separate); `three-layer` takes layers 0, 2, 4 for 2 epochs. Pool methods make one
augmented copy per original, where the papers use 4 to 20, and a quickly trained masked-LM
generator serves masked-LM generation and MATE-KD, which keeps the whole comparison, from an empty
cache, within 10 minutes on 2 CPU cores (15 on a machine 1.6x slower); the output says so.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd

from bench.parts.models import MINILM
from bench.parts.tasks import get_task
from bench.pipeline.generator import INFO_FILE as GENERATOR_INFO
from bench.pipeline.generator import GeneratorSettings, make_generator
from bench.pipeline.runs import DataConfig, RunConfig, finetune_teacher, run_distill, run_finetune
from bench.pipeline.config import (DEFAULT_DEMO_PROFILE, DEMO_METHODS, DEMO_PROFILES, DEMO_TRAIN_EXAMPLES, PROFILE_NOTE,
                          TrainConfig)
from methods import get_method, takes_generator
from methods.base import MethodContext
from reports.speed import rows_per_epoch

TRAIN_EXAMPLES = DEMO_TRAIN_EXAMPLES
TEACHER_TRAIN = TrainConfig(learning_rate=5e-5, num_train_epochs=3)
GENERATOR = GeneratorSettings(max_steps=100)  # `make-generator` trains 300 steps by default


def _row(name: str, record: dict, cached: bool = False) -> dict:
    timings = record["timings_s"]
    augmentation = record.get("augmentation") or {}
    return {
        "model": name,
        "layers": record["model"]["layers"],
        "dev accuracy": round(record["best"]["metrics"]["validation_accuracy"], 4),
        "best epoch": record["best"]["epoch"],
        "train examples": rows_per_epoch(record),
        "augment s": round(augmentation["generation_s"], 1) if augmentation else None,
        "label s": round(timings["teacher_labelling"], 1) if "teacher_labelling" in timings else None,
        "train s": round(timings["training"], 1),
        "total s": f"{timings['total']:.1f}" + (" (cached)" if cached else ""),
    }


def check_prerequisites(methods: list[str], train_size: int) -> None:
    """Build each pool method once before any training, so a missing WordNet or Apertium is
    reported in the first second rather than after the teacher has trained. The masked-LM
    generator does not exist yet at this point: methods that take one are checked when the demo has
    made it."""
    context = MethodContext(task=get_task("sst2"), train_size=train_size, teacher=MINILM)
    for name in methods:
        spec = get_method(name)
        if spec.kind == "pool" and not takes_generator(name):
            spec.implementation(spec.parse_params(spec.demo_params), context)


def run_demo(*, data_dir: str | None = None, output_dir: str = "kdbench-results/demo", cache_dir: str | None = None,
             max_train_examples: int = TRAIN_EXAMPLES, seed: int = 42, methods: list[str] | None = None,
             profile: str = DEFAULT_DEMO_PROFILE) -> str:
    """Train the teacher (cached), the no-KD student and one KD student per method; return the table."""
    methods = methods or list(DEMO_METHODS)
    chosen = DEMO_PROFILES[profile]
    # the configs check the subset size and seed when built: first, so a bad value costs no loading
    data = DataConfig(task="sst2", data_dir=data_dir, max_train_examples=max_train_examples, max_length=64)
    teacher_train = replace(TEACHER_TRAIN, seed=seed)
    student_train = TrainConfig(learning_rate=chosen.learning_rate, num_train_epochs=chosen.num_train_epochs, seed=seed)
    check_prerequisites(methods, max_train_examples)
    out = Path(output_dir)
    teacher_dir, teacher_record, cached = finetune_teacher(RunConfig(
        data=data, student=MINILM, teacher_train=teacher_train, cache_dir=cache_dir))
    common = dict(data=data, train=student_train, student=chosen.student, teacher=str(teacher_dir),
                  cache_dir=cache_dir)
    notes = [f"demo profile {profile}: {chosen.description}; {PROFILE_NOTE}"]
    rows = [_row("teacher (MiniLM)", teacher_record, cached),
            _row("student, no KD", run_finetune(RunConfig(**common, output_dir=str(out / "finetune"))))]
    generator = None
    for method in methods:
        params = dict(get_method(method).demo_params)
        if takes_generator(method):  # mlm, mate-kd: one generator, made once
            if generator is None:
                generator, generator_cached = make_generator(str(teacher_dir), data, GENERATOR, cache_dir=cache_dir)
                info = json.loads((generator / GENERATOR_INFO).read_text())
                notes.append(f"masked-LM generator: {generator}{' (cached)' if generator_cached else ''}, trained "
                             f"in {info['train_seconds']} s, dev masked-LM loss {info['eval_loss_before']:.2f} -> "
                             f"{info['eval_loss_after']:.2f}")
            params["generator"] = str(generator)
        record = run_distill(RunConfig(**common, method=method, method_params=params,
                                       output_dir=str(out / f"distill-{method}")))
        rows.append(_row("student, KD" + ("" if method == "none" else f" + {method}"), record))
    table = pd.DataFrame(rows)
    from reports.report import build_report  # reports read the demo's records: imported here, not at the top

    build_report([out], out / "report")
    return (f"SST-2, {max_train_examples} training examples (subset seed {data.subset_seed}), max length 64, "
            f"dev set of {teacher_record['data']['eval_examples']['validation']}; seed {seed}; "
            f"teacher: {teacher_dir}\n" + "\n".join(notes) + "\n"
            f"{table.to_string(index=False, na_rep='-')}\nrun records: {out}/*/record.json\n"
            f"report (tables, figures): {out / 'report' / 'index.html'}")
