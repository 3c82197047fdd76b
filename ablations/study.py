"""`kdbench ablate SPEC`: every task x variant of a spec searched with the paper's protocol, then one table.

Each (task, variant) is one search of `bench.search` (grid over learning rate x batch size, then
the best point over the seeds) in one Optuna storage, so an ablation resumes where it stopped and
scales out: the same command on other machines with the same `--storage` takes the trials that
are left, moving to another search while a search's remaining points run elsewhere. Runs with
the same configuration are shared between searches and specs (the eps sweep's 1e-5 is the
default AD2 of the steps sweep), because run folders and study names are keyed by configuration.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from ablations.spec import AblationSpec, Variant
from bench.generator import make_generator
from bench.runs import DataConfig, RunConfig, finetune_teacher
from bench.search import apply_profile, create_search, default_storage, open_storage, run_searches
from bench.storage import write_json
from methods import get_method
from reports.tables import describe_machines, profile_note, write_tables


@dataclass(frozen=True)
class TaskSetup:
    """What every variant of one task shares: the profile's data, the teacher and the mlm generator."""

    data: DataConfig
    teacher: str
    generator: str | None


def prepare_task(spec: AblationSpec, task: str, *, data_dir: str | None, cache_dir: str | None) -> TaskSetup:
    """Fine-tune the spec's teacher on the task's profile data (cached) and, when an `mlm` variant
    names no generator, make one from that teacher with the spec's [generator] settings (cached)."""
    data = DataConfig(**{**spec.data, "task": task, "data_dir": data_dir})
    data = apply_profile(RunConfig(data=data), spec.profile).data
    teacher = spec.teacher
    if spec.finetune_teacher:
        folder, _, _ = finetune_teacher(RunConfig(data=data, model=spec.teacher, teacher_train=spec.teacher_train,
                                                  cache_dir=cache_dir))
        teacher = str(folder)
    generator = None
    if any(v.method == "mlm" and "generator" not in v.params for v in spec.variants):
        folder, _ = make_generator(teacher, data, spec.generator, cache_dir=cache_dir)
        generator = str(folder)
    return TaskSetup(data, teacher, generator)


def run_config(spec: AblationSpec, setup: TaskSetup, variant: Variant, *, cache_dir: str | None) -> RunConfig:
    """The run of one variant; learning rate, batch size, seed and epochs are the search's to set.
    Method parameters are spelled out in full, so equal configurations get equal keys."""
    params = dict(variant.params)
    if variant.method == "mlm" and "generator" not in params:
        params["generator"] = setup.generator
    parsed = get_method(variant.method).parse_params(params)
    return RunConfig(data=setup.data, train=spec.train, kd=replace(spec.kd, **variant.kd), model=spec.student,
                     teacher=setup.teacher, method=variant.method, method_params=dataclasses.asdict(parsed),
                     pool_seed=spec.pool_seed, cache_dir=cache_dir)


def plan(spec: AblationSpec) -> str:
    """What `ablate` will run, without running it."""
    profile = spec.profile
    runs = len(profile.learning_rates) * len(profile.batch_sizes) + len(profile.seeds) - 1
    lines = [f"{spec.name}: {spec.description}", f"tasks: {', '.join(spec.tasks)}; teacher {spec.teacher}"
             f"{' (fine-tuned per task)' if spec.finetune_teacher else ''}; student {spec.student}",
             profile_note(profile), f"{len(spec.tasks)} tasks x {len(spec.variants)} variants = "
             f"{len(spec.tasks) * len(spec.variants)} searches of up to {runs} trainings each:"]
    lines += [f"  {v.label}: {v.baseline} method={v.method} params={v.params} kd={v.kd}" for v in spec.variants]
    return "\n".join(lines)


def run_ablation(spec: AblationSpec, *, data_dir: str | None = None, output_dir: str = "kdbench-results/ablations",
                 storage: str | None = None, cache_dir: str | None = None) -> pd.DataFrame:
    """Run (or resume, or join) every search of the spec; write and return its table."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = open_storage(storage or default_storage(out))
    arms = []
    for task in spec.tasks:
        setup = prepare_task(spec, task, data_dir=data_dir, cache_dir=cache_dir)
        for variant in spec.variants:
            config = run_config(spec, setup, variant, cache_dir=cache_dir)
            arms.append((task, variant, create_search(config, kind=variant.baseline, profile=spec.profile,
                                                      storage=store)))
    summaries = run_searches(store, [name for _, _, name in arms], out)
    table = ablation_table(spec, [(task, variant, summary) for (task, variant, _), summary in zip(arms, summaries)])
    records = [record for summary in summaries for record in summary["records"]]
    write_json(out / "summaries" / f"{spec.name}.json",
               {"spec": spec.source, "profile": dataclasses.asdict(spec.profile),
                "searches": [{"task": task, "variant": variant.label, **{k: v for k, v in s.items() if k != "records"}}
                             for (task, variant, _), s in zip(arms, summaries)]})
    write_tables(out / "tables" / spec.name, f"{spec.name}: {spec.description}",
                 [profile_note(spec.profile), _teacher_note(summaries, spec), describe_machines(records),
                  f"cells: median over {len(spec.profile.seeds)} seeds [min, max] of the task's score "
                  "(the GLUE mean of its metrics); IQR, best learning rate and batch size in the CSV"],
                 {"": _wide(table, spec.swept)}, table)
    return table


def ablation_table(spec: AblationSpec, results: list[tuple[str, Variant, dict]]) -> pd.DataFrame:
    """One row per task and variant: the spread of the per-seed scores, the search's best point and
    the median training time."""
    rows = []
    for task, variant, summary in results:
        training = [record["timings_s"]["training"] for record in summary["records"]]
        rows.append({"task": task, spec.swept: variant.label.removeprefix(f"{spec.swept}="),
                     "metric": summary["records"][0]["best"]["metric"],
                     **{k: summary[k] for k in ("median", "min", "max", "iqr", "n")},
                     "learning_rate": summary["best_params"]["learning_rate"],
                     "batch_size": summary["best_params"]["per_device_train_batch_size"],
                     "train_s_median": float(pd.Series(training).median())})
    return pd.DataFrame(rows)


def _wide(table: pd.DataFrame, swept: str) -> pd.DataFrame:
    """Variants as rows, tasks as columns, cells 'median [min, max]', and the average over tasks."""
    cells = table.assign(cell=[f"{r.median:.4f} [{r.min:.4f}, {r.max:.4f}]" for r in table.itertuples()])
    wide = cells.pivot(index=swept, columns="task", values="cell").reindex(table[swept].unique())
    wide = wide[list(table["task"].unique())]
    if table["task"].nunique() > 1:
        wide["average (median)"] = table.groupby(swept, sort=False)["median"].mean().map("{:.4f}".format)
    return wide.reset_index()


def _teacher_note(summaries: list[dict], spec: AblationSpec) -> str:
    scores = {}
    for summary in summaries:
        for record in summary["records"]:
            teacher = record.get("teacher") or {}
            if teacher.get("best"):
                scores[record["task"]] = teacher["best"]["value"]
    kind = "fine-tuned on each task's profile data, one run" if spec.finetune_teacher else "as given"
    return (f"teacher {spec.teacher} ({kind}): " + ", ".join(f"{t} {v:.4f}" for t, v in scores.items())
            if scores else f"teacher {spec.teacher}")
