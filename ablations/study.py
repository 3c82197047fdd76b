"""`kdbench ablate SPEC`: every task x variant of a spec searched with the paper's protocol, then one table.

Each (task, variant) is one search of `bench.store.search` (grid over learning rate x batch size, then
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

from ablations.spec import AblationSpec, Variant
from bench.parts.registry import composed
from bench.pipeline.config import train_identity
from bench.pipeline.generator import make_generator
from bench.pipeline.runs import DataConfig, RunConfig, finetune_teacher
from bench.roles import ROLES
from bench.store.search import apply_profile, create_search, run_searches, with_parsed_params
from bench.store.studies import SearchProfile, default_storage, open_storage
from methods import takes_generator
from reports.scores import write_score_tables
from reports.studies import MANIFEST_DIR, read_ablation, write_manifest
from reports.tables import profile_note

PROFILE_DATA = ("max_length", "max_train_examples")  # the data fields a search profile sets


@dataclass(frozen=True)
class TaskSetup:
    """What every variant of one task shares: the profile's data, the teacher and the masked-LM generator."""

    data: DataConfig
    teacher: str
    generator: str | None


def prepare_task(spec: AblationSpec, task: str, *, data_dir: str | None, cache_dir: str | None) -> TaskSetup:
    """Fine-tune the spec's teacher on the task's profile data (cached) and, when a variant's method takes a
    masked-LM generator (mlm, mate-kd, ...) and names none, make one from that teacher with the spec's
    [generator] settings (cached)."""
    data = DataConfig(**{**spec.data, "task": task, "data_dir": data_dir})
    data = apply_profile(RunConfig(data=data), profile_with(spec.profile, spec.data)).data
    teacher = spec.teacher
    if spec.finetune_teacher:
        folder, _, _ = finetune_teacher(RunConfig(data=data, student=spec.teacher, teacher_train=spec.teacher_train,
                                                  teacher_trajectory=spec.teacher_trajectory,
                                                  cache_dir=cache_dir))
        teacher = str(folder)
    generator = None
    if any(wanting_generator(v) for v in spec.variants):
        folder, _ = make_generator(teacher, data, spec.generator, cache_dir=cache_dir)
        generator = str(folder)
    return TaskSetup(data, teacher, generator)


def profile_with(profile: SearchProfile, data: dict) -> SearchProfile:
    """`profile` with the data fields it sets (maximum length, training-set size) taken from `data` where a spec's
    [data] or a variant's `data` gives them: else the search would put the profile's back."""
    return replace(profile, **{key: data[key] for key in PROFILE_DATA if key in data})


def wanting_generator(variant: Variant) -> list[str]:
    """The parameter keys of the variant's methods that take a masked-LM `generator` the variant does not
    name (`generator`, or `mlm.generator` in a composition), so the study makes one for them."""
    names = composed(variant.method)
    keys = ["generator"] if len(names) == 1 else [f"{name}.generator" for name in names]
    return [key for name, key in zip(names, keys) if takes_generator(name) and key not in variant.params
            and not (len(names) > 1 and "generator" in variant.params)]


def run_config(spec: AblationSpec, setup: TaskSetup, variant: Variant, *, cache_dir: str | None) -> RunConfig:
    """The run of one variant; learning rate, batch size, seed and epochs are the search's to set.
    Its parts' parameters are spelled out in full, so equal configurations get equal keys. The variant's
    data fields (e.g. label_noise) reach the student's data only: `prepare_task` fine-tunes the teacher
    on the spec's [data]."""
    params = {**variant.params, **dict.fromkeys(wanting_generator(variant), setup.generator)}
    config = RunConfig(data=replace(setup.data, **variant.data), train=spec.train, kd=replace(spec.kd, **variant.kd),
                       teacher=setup.teacher, **{**variant.parts(), "method_params": params},
                       pool_seed=spec.pool_seed, layer_map=spec.layer_map, cache_dir=cache_dir)
    return with_parsed_params(config, variant.baseline)


def plan(spec: AblationSpec) -> str:
    """What `ablate` will run, without running it."""
    profile = spec.profile
    runs = len(profile.learning_rates) * len(profile.batch_sizes) + len(profile.seeds) - 1
    lines = [f"{spec.name}: {spec.description}", f"tasks: {', '.join(spec.tasks)}; teacher {spec.teacher}"
             f"{' (fine-tuned per task)' if spec.finetune_teacher else ''}; student {spec.student}",
             profile_note(profile), f"{len(spec.tasks)} tasks x {len(spec.variants)} variants = "
             f"{len(spec.tasks) * len(spec.variants)} searches of up to {runs} trainings each:"]
    several_students = len({variant.student_text for variant in spec.variants}) > 1
    return "\n".join(lines + [_variant_line(variant, several_students) for variant in spec.variants])


def _variant_line(v: Variant, with_student: bool) -> str:
    """One variant as `plan` lists it: the objective, scheme and data only where they are not the defaults,
    the student where the variants' students differ."""
    line = f"  {v.label}: {v.baseline} method={v.method} params={v.params} kd={v.kd}"
    for role in ROLES[1:]:
        name, params = getattr(v, role.name), getattr(v, role.spec_params)
        if role.name == "student":
            line += f" student={v.student_text}" if with_student else ""
        elif name != role.default or params:
            line += f" {role.name}={name} {params}"
    return line + (f" data={v.data}" if v.data else "")


def run_ablation(spec: AblationSpec, *, data_dir: str | None = None, output_dir: str = "kdbench-results/ablations",
                 storage: str | None = None, cache_dir: str | None = None) -> Path:
    """Run (or resume, or join) every search of the spec; write its table and return the Markdown file.
    The study's manifest (`OUTPUT_DIR/studies/NAME.json`) is written first, so `kdbench report` can
    show a study that is still running or was stopped."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = open_storage(storage or default_storage(out))
    searches = []
    for task in spec.tasks:
        setup = prepare_task(spec, task, data_dir=data_dir, cache_dir=cache_dir)
        for variant in spec.variants:
            config = run_config(spec, setup, variant, cache_dir=cache_dir)
            labels = {"spec": spec.name, "variant": variant.label, **_swept_value(spec, variant)}
            search = create_search(config, kind=variant.baseline, storage=store, labels=labels,
                                   profile=profile_with(spec.profile, {**spec.data, **variant.data}),
                                   teacher_origin=_teacher_origin(spec))
            searches.append({"task": task, "variant": variant.label, "search": search})
    manifest = out / MANIFEST_DIR / f"{spec.name}.json"
    write_manifest(manifest, name=spec.name, title=spec.description, swept=spec.swept,
                   profile=dataclasses.asdict(spec.profile), notes=[profile_note(spec.profile), _models_note(spec)],
                   spec=spec.source, searches=[{"task": s["task"], "variant": s["variant"], "study": s["search"].name}
                                               for s in searches])
    run_searches(store, [s["search"] for s in searches], out)
    return write_score_tables(read_ablation(manifest, storage), out / "tables")


def _teacher_origin(spec: AblationSpec) -> str | None:
    """What the searches' teacher was made from, when the spec fine-tunes it here: the same spec on
    another machine must get the same teacher from it (else `create_search` refuses)."""
    if not spec.finetune_teacher:
        return None  # the teacher as given: its weights are the content
    return f"{spec.teacher} fine-tuned with {train_identity(spec.teacher_train)}"


def _swept_value(spec: AblationSpec, variant: Variant) -> dict:
    """The swept parameter and its value, for a sweep's studies (readable in optuna-dashboard)."""
    return {} if spec.swept == "variant" else {"swept": spec.swept, "value": variant.label.partition("=")[2]}  # "eps=1e-05"


def _models_note(spec: AblationSpec) -> str:
    teacher = "fine-tuned on each task's profile data, one run" if spec.finetune_teacher else "as given"
    return f"teacher {spec.teacher} ({teacher}); student {spec.student}"
