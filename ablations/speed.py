"""`kdbench speed SPEC`: wall-clock and memory of every method of a spec, side by side in one run.

Each variant trains once per repeat (repeats interleaved: variant 1, 2, ..., then again), at the
profile's first grid point and seed, with the profile's data and epochs. Every measurement starts
from an empty cache, so pool generation and teacher labelling are timed, not read back, and runs
in a process of its own, so its peak memory is its own. The teacher's fine-tuning and the masked-LM
generator's training happen before (cached) and are not counted: every method shares the teacher,
and TinyBERT's augmentation uses a pre-trained BERT, where offline we have to make one.

Figures per variant (the median over repeats): generation time of the augmented pool, teacher
time (loading plus soft labels of training set and pool), training time per epoch, time to the
best dev score (everything before training, plus training and evaluation up to the best
checkpoint), examples per second, peak memory, and the dev score; then every figure divided by
plain KD's and by AD2's (reports/speed.py).
"""

from __future__ import annotations

import multiprocessing
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

from ablations.spec import AblationSpec
from ablations.study import prepare_task, run_config
from bench.pipeline.runs import RunConfig
from reports.speed import write_speed_tables
from reports.studies import read_speed, write_speed_results


def run_speed(spec: AblationSpec, *, data_dir: str | None = None, output_dir: str = "kdbench-results/speed",
              cache_dir: str | None = None, repeats: int = 1, plugins: Sequence[str] = ()) -> Path:
    """Measure every task x variant `repeats` times; write the records (`NAME.json`, read by
    `kdbench report`) and the tables, and return the Markdown table's path."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    measurements = []
    for task in spec.tasks:
        setup = prepare_task(spec, task, data_dir=data_dir, cache_dir=cache_dir)
        for repeat in range(repeats):
            for variant in spec.variants:
                config = _measured_config(spec, run_config(spec, setup, variant, cache_dir=None))
                with tempfile.TemporaryDirectory(dir=out, prefix=".fresh-") as fresh:
                    record = measure(variant.baseline, replace(config, cache_dir=fresh, output_dir=f"{fresh}/run"),
                                     plugins)
                measurements.append({"task": task, "variant": variant.label, "method": variant.method,
                                     "baseline": variant.baseline, "repeat": repeat, "record": record})
    write_speed_results(out / f"{spec.name}.json", name=spec.name, title=spec.description,
                        notes=_notes(spec, repeats), measurements=measurements)
    return write_speed_tables(read_speed(out / f"{spec.name}.json"), out)


def measure(kind: str, config: RunConfig, plugins: Sequence[str] = ()) -> dict:
    """One run in a new process (its own peak memory, nothing warm); returns its record."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context, max_tasks_per_child=1) as pool:
        return pool.submit(_run, kind, config, tuple(plugins)).result()


def _run(kind: str, config: RunConfig, plugins: tuple[str, ...]) -> dict:
    from bench.pipeline.progress import quiet_libraries
    from bench.pipeline.runs import run_distill, run_finetune
    from methods import load_plugins

    quiet_libraries()
    load_plugins(plugins)
    return (run_distill if kind == "distill" else run_finetune)(config)


def _measured_config(spec: AblationSpec, config: RunConfig) -> RunConfig:
    """The run at the profile's first grid point and seed (the search is not what is measured)."""
    p = spec.profile
    return replace(config, train=replace(config.train, learning_rate=p.learning_rates[0],
                                         per_device_train_batch_size=p.batch_sizes[0], seed=p.seeds[0],
                                         num_train_epochs=p.num_train_epochs))


def _notes(spec: AblationSpec, repeats: int) -> list[str]:
    p = spec.profile
    return [f"each variant trained {repeats} time(s), repeats interleaved, at learning rate {p.learning_rates[0]}, "
            f"batch size {p.batch_sizes[0]}, seed {p.seeds[0]}, {p.num_train_epochs:g} epochs, "
            f"{p.max_train_examples or 'all'} training examples, max length {p.max_length} (profile {p.name})",
            "every run in a new process with an empty cache: pools generated and labelled, not read back; teacher "
            "fine-tuning and the masked-LM generator's training are done beforehand and not counted"]
