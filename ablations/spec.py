"""Ablation specs: one TOML file per study, checked whole before anything runs.

A spec names the tasks, the teacher (a pre-trained encoder fine-tuned on each task, cached), the
student, the search profile and its seeds, and the variants to compare: either a sweep of one
parameter (`[sweep] parameter = "eps"` for the method's, `"objective.tau_max"` or `"scheme.start"`
for the objective's or scheme's, a KD setting such as `"kd.temperature"`, or a student's data field
such as `"data.label_noise"`) or an explicit list of `[[variants]]` (the method comparison, with
`baseline = "finetune"` for the no-KD student). A variant composes a method, an objective and a
scheme and a row selector, each with its parameters (`method`/`params`, `objective`/`objective_params`,
`scheme`/`scheme_params`, `selector`/`selector_params`), and may set `kd` and `data` fields and its own
`student`/`student_params` (the spec's top-level `student` is every other variant's). Optional tables set
the rest, by the field names of the harness's dataclasses:
`[data]`, `[train]`, `[kd]`, `[teacher_train]`, and `[generator]` (how the masked-LM generator of
`mlm`, `mate-kd` and `combined-kd` variants is made from each task's teacher, since no masked-LM
weights exist offline).

Every key, table field, method, parameter and value type is checked by `load_spec`, so a typo
stops the study with one clear error instead of hours later.
"""

from __future__ import annotations

import dataclasses
import itertools
import tomllib
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.parts.errors import KdbenchError, UnknownNameError
from bench.parts.fields import SEED, base_type, check_type
from bench.parts.registry import resolve
from bench.parts.tasks import get_task
from bench.pipeline.config import DataConfig, GeneratorSettings, KDConfig, RunConfig, TrainConfig
from bench.pipeline.choice import choose_parts, typed_method_params
from bench.pipeline.attack import check_attack
from bench.pipeline.ood import check_eval_tasks
from bench.roles import BY_NAME, ROLES
from bench.store.studies import PROFILES, SearchProfile
from students.registry import split_student, student_text

OTHER_ROLES = {role.name: role for role in ROLES[1:]}  # swept as `objective.tau_max`; the method's bare, `eps`
BASELINES = ("distill", "finetune")  # KD (with a method), or the no-KD student trained on labels
SEARCHED = ("learning_rate", "per_device_train_batch_size", "seed", "num_train_epochs")  # set by the profile
# The fields of a SearchProfile a spec may override at its top level (the profile is named by `profile`).
PROFILE_KEYS = tuple(f.name for f in dataclasses.fields(SearchProfile) if f.name != "name")
TABLES = {"data": DataConfig, "train": TrainConfig, "kd": KDConfig, "teacher_train": TrainConfig,
          "generator": GeneratorSettings}
ROLE_KEYS = tuple(key for role in ROLES for key in (role.name, role.spec_params))  # method, params, objective, ...
STUDENT = BY_NAME["student"]
SHARED_ROLES = tuple(role for role in ROLES if role.for_all_variants)  # at the top level, every variant's
SHARED_KEYS = tuple(key for role in SHARED_ROLES for key in (role.name, role.spec_params))
TOP_LEVEL = ("name", "description", "tasks", "teacher", "finetune_teacher", "teacher_trajectory", *ROLE_KEYS,
             "profile", "pool_seed", "layer_map", "sweep", "variants", *PROFILE_KEYS, *TABLES)


class SpecError(KdbenchError):
    """A spec that cannot run, located by its file."""


@dataclass(frozen=True)
class Variant:
    """One arm of the study: a baseline kind, a method with its parameter values, KD and data overrides."""

    label: str
    baseline: str = "distill"
    method: str = "none"
    params: dict[str, Any] = field(default_factory=dict)
    kd: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)  # DataConfig fields of the student's data (label_noise, ...)
    objective: str = "kd"
    objective_params: dict[str, Any] = field(default_factory=dict)
    scheme: str = "plain"
    scheme_params: dict[str, Any] = field(default_factory=dict)
    selector: str = "all"
    selector_params: dict[str, Any] = field(default_factory=dict)
    student: str = STUDENT.default  # a builder's name (students/)
    student_params: dict[str, Any] = field(default_factory=dict)
    teacher_outputs: str = "cached"  # a teacher source (teachers/)
    teacher_outputs_params: dict[str, Any] = field(default_factory=dict)

    @property
    def student_text(self) -> str:
        """The student in its short form (teacher-layers:0,2,4), as tables and plans name it."""
        return student_text(self.student, self.student_params)

    def parts(self) -> dict[str, Any]:
        """Each role's part and parameters, as `RunConfig` takes them (`method_params` for `params`)."""
        return {key: value for role in ROLES
                for key, value in ((role.name, getattr(self, role.name)), (role.params, getattr(self, role.spec_params)))}


@dataclass(frozen=True)
class AblationSpec:
    """A validated spec; `swept` names what the variants differ in (a parameter, or "variant")."""

    name: str
    description: str
    tasks: tuple[str, ...]
    teacher: str
    finetune_teacher: bool
    student: str  # the variants' students in their short form (teacher-layers:0,2,4), comma-separated
    profile: SearchProfile
    variants: tuple[Variant, ...]
    swept: str
    pool_seed: int = 42
    layer_map: str | None = None  # RunConfig.layer_map: student:teacher layer pairs (None: the student's own)
    teacher_trajectory: int = 0  # RunConfig.teacher_trajectory: checkpoints kept along the teacher's fine-tuning
    data: dict[str, Any] = field(default_factory=dict)  # DataConfig fields (task and data_dir come from the run)
    train: TrainConfig = field(default_factory=TrainConfig)
    kd: KDConfig = field(default_factory=KDConfig)
    teacher_train: TrainConfig = field(default_factory=TrainConfig)
    generator: GeneratorSettings = field(default_factory=GeneratorSettings)
    source: str = ""


def load_spec(path: str | Path) -> AblationSpec:
    """Read and check the spec at `path`; every problem is a SpecError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"no ablation spec at {path}: give a .toml file (examples in ablations/)")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{path}: not valid TOML: {error}") from None
    try:
        return parse_spec(raw, name=path.stem, source=str(path))
    except KdbenchError as error:
        raise SpecError(f"{path}: {error}") from None


def parse_spec(raw: dict[str, Any], *, name: str, source: str = "") -> AblationSpec:
    """The spec from its parsed TOML; `name` is the default study name (the file's stem)."""
    _known_keys(raw, TOP_LEVEL, "key")
    tasks = tuple(get_task(task).name for task in _typed_list(_required(raw, "tasks"), str, "tasks"))
    if ("sweep" in raw) == ("variants" in raw):
        raise KdbenchError("give either [sweep] (one parameter and its values) or [[variants]], not "
                           f"{'both' if 'sweep' in raw else 'neither'}")
    if "sweep" in raw:
        base = Variant("base", **_roles(raw, ""))
        swept, variants = _sweep(raw["sweep"], base)
    else:
        if any(key in raw for key in ROLE_KEYS if key not in SHARED_KEYS):
            raise KdbenchError("with [[variants]], give each variant its own parts (method, objective, scheme, "
                               "selector) and their parameters; only the student and the teacher outputs may be given "
                               "at the top level, for all")
        shared = {key: raw[key] for key in SHARED_KEYS if key in raw}
        swept, variants = "variant", tuple(_variant(v, i, shared) for i, v in enumerate(_list(raw["variants"],
                                                                                                "variants")))
    if len({v.label for v in variants}) < len(variants):
        raise KdbenchError("two variants have the same label: give each a distinct `label`")
    tables = {key: _dataclass(cls, raw.get(key, {}), f"[{key}]") for key, cls in TABLES.items() if key != "data"}
    layer_map = _text(raw["layer_map"], "layer_map") if "layer_map" in raw else None
    data = _data_fields(raw.get("data", {}))
    for variant, task in itertools.product(variants, tasks):  # the composition and data, as a run would check them
        config = RunConfig(data=DataConfig(task=task, **{**data, **variant.data}),
                           kd=replace(tables["kd"], **variant.kd), layer_map=layer_map, **variant.parts())
        try:
            choose_parts(config, distill=variant.baseline == "distill", where="[kd]")
            check_eval_tasks(config.data)
            check_attack(config.data)
        except KdbenchError as error:
            raise KdbenchError(f"variant {variant.label} on {task}: {error}") from None
    return AblationSpec(
        name=_text(raw.get("name", name), "name"),
        description=_text(raw.get("description", ""), "description"),
        tasks=tasks,
        teacher=_text(raw.get("teacher", "minilm"), "teacher"),
        finetune_teacher=check_type(raw.get("finetune_teacher", True), bool, "finetune_teacher"),
        student=", ".join(dict.fromkeys(variant.student_text for variant in variants)),
        profile=_profile(raw),
        variants=variants,
        swept=swept,
        pool_seed=SEED.check(check_type(raw.get("pool_seed", 42), int, "pool_seed"), "pool_seed"),
        layer_map=layer_map,
        teacher_trajectory=_trajectory(raw),
        data=data,
        source=source,
        **tables,
    )


def _trajectory(raw: dict[str, Any]) -> int:
    count = check_type(raw.get("teacher_trajectory", 0), int, "teacher_trajectory")
    if count < 0:
        raise KdbenchError(f"teacher_trajectory is a number of checkpoints (0: none), got {count}")
    if count and not raw.get("finetune_teacher", True):
        raise KdbenchError("teacher_trajectory needs finetune_teacher: a teacher given already fine-tuned keeps "
                           "the checkpoints it was saved with")
    return count


def _sweep(table: Any, base: Variant) -> tuple[str, tuple[Variant, ...]]:
    """One variant per value of the swept parameter: a parameter of the method, `kd.FIELD`, `data.FIELD`,
    `objective.PARAM` or `scheme.PARAM`."""
    table = _table(table, "[sweep]")
    _known_keys(table, ("parameter", "values"), "key of [sweep]")
    parameter = _text(_required(table, "parameter", "[sweep]"), "[sweep] parameter")
    values = _list(_required(table, "values", "[sweep]"), "[sweep] values")
    if not values:
        raise KdbenchError("[sweep] values is empty: list the values to compare")
    variants = []
    for value in values:
        label = f"{parameter}={value}"
        if parameter.startswith("kd."):
            variants.append(_checked(replace(base, label=label, kd={parameter.removeprefix("kd."): value})))
        elif parameter.startswith("data."):
            variants.append(_checked(replace(base, label=label, data={parameter.removeprefix("data."): value})))
        elif parameter.partition(".")[0] in OTHER_ROLES and "." in parameter:
            role, _, name = parameter.partition(".")
            key = OTHER_ROLES[role].spec_params
            variants.append(_checked(replace(base, label=label, **{key: {**getattr(base, key), name: value}})))
        else:
            variants.append(_checked(replace(base, label=label, params={**base.params, parameter: value})))
    return parameter, tuple(variants)


def _variant(table: Any, index: int, shared: dict[str, Any]) -> Variant:
    """The variant `table` gives; `shared` the spec's top-level keys of the roles it may give for every
    variant (the student, the teacher outputs), each the variant's unless it gives that role itself."""
    where = f"[[variants]] #{index + 1}"
    table = _table(table, where)
    _known_keys(table, [f.name for f in dataclasses.fields(Variant)], f"key of {where}")
    inherited = {key: shared[key] for role in SHARED_ROLES if role.name not in table and role.spec_params not in table
                 for key in (role.name, role.spec_params) if key in shared}
    parts = _roles({**inherited, **table}, f"{where} ")
    variant = Variant(label=_text(table.get("label", parts["method"]), f"{where} label"),
                      baseline=_text(table.get("baseline", "distill"), f"{where} baseline"),
                      kd=_table(table.get("kd", {}), f"{where} kd"),
                      data=_table(table.get("data", {}), f"{where} data"), **parts)
    if variant.baseline not in BASELINES:
        raise UnknownNameError(f"baseline of {where}", variant.baseline, BASELINES)
    if variant.baseline == "finetune" and (variant.method != "none" or variant.params or variant.kd
                                           or variant.objective != "kd" or variant.objective_params
                                           or variant.selector != "all" or variant.selector_params):
        raise KdbenchError(f"{where}: a finetune baseline (no KD) takes no method, params, kd, objective or "
                           "selector (a scheme it takes)")
    return _checked(variant)


def _roles(table: dict[str, Any], where: str) -> dict[str, Any]:
    """Each role's part and parameters as a spec table gives them (`method`, `params`, `objective`, ...)."""
    values = {}
    for role in ROLES:
        values[role.name] = _text(table.get(role.name, role.default), f"{where}{role.name}")
        values[role.spec_params] = _table(table.get(role.spec_params, {}), f"{where}{role.spec_params}")
    # the student's short form (teacher-layers:0,2,4) as a builder's name and parameters, which a sweep then sets
    values[STUDENT.name], values[STUDENT.spec_params] = split_student(values[STUDENT.name], values[STUDENT.spec_params])
    return values


def _checked(variant: Variant) -> Variant:
    """The variant with its parts' parameters, KD settings and data fields checked and typed."""
    kd = _dataclass(KDConfig, variant.kd, f"kd of {variant.label}")
    typed = {"params": typed_method_params(variant.method, _table(variant.params, f"params of {variant.label}"))}
    for role in ROLES[1:]:
        name, given = getattr(variant, role.name), _table(getattr(variant, role.spec_params),
                                                          f"{role.spec_params} of {variant.label}")
        parsed = resolve(role.registry).get(name).parse_params(given)
        typed[role.spec_params] = {k: getattr(parsed, k) for k in given}
    return replace(variant, kd={k: getattr(kd, k) for k in variant.kd}, data=_data_fields(variant.data), **typed)


def _profile(raw: dict[str, Any]) -> SearchProfile:
    name = _text(raw.get("profile", "quick"), "profile")
    if name not in PROFILES:
        raise UnknownNameError("profile", name, PROFILES)
    overrides = {}
    for key in PROFILE_KEYS:
        if key in raw:
            overrides[key] = _field_value(SearchProfile, key, raw[key], "profile")
    return replace(PROFILES[name], **overrides)  # SearchProfile checks each value's range (and non-empty lists)


def _data_fields(table: Any) -> dict[str, Any]:
    """DataConfig overrides: the task comes from `tasks`, the data folder from the command line."""
    table = _table(table, "[data]")
    for key in ("task", "data_dir"):
        if key in table:
            raise KdbenchError(f"[data] {key} is set by {'`tasks`' if key == 'task' else '--data-dir'}, not here")
    data = _dataclass(DataConfig, table, "[data]")
    return {k: getattr(data, k) for k in table}


def _dataclass(cls: type, table: Any, where: str):
    """`cls` built from a TOML table, each field checked by name and type."""
    table = _table(table, where)
    _known_keys(table, [f.name for f in dataclasses.fields(cls)], f"field of {where}")
    if where == "[train]":  # the students' training; the teacher's ([teacher_train]) is the spec's to set
        for key in SEARCHED:
            if key in table:
                raise KdbenchError(f"{where} {key} is set by the search profile: use learning_rates, "
                                   "batch_sizes, seeds or num_train_epochs at the top of the spec")
    values = {k: _field_value(cls, k, v, where) for k, v in table.items()}
    try:
        return cls(**values)  # the dataclass checks each value's range
    except KdbenchError as error:
        raise KdbenchError(f"{where}: {error}") from None


def _field_value(cls: type, key: str, value: Any, where: str) -> Any:
    """`value` checked against the type of field `key` of `cls` (tuples of a type from lists)."""
    hint = typing.get_type_hints(cls)[key]
    kind = base_type(hint)
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        return tuple(_typed_list(value, item, f"{where} {key}"))
    optional = type(None) in typing.get_args(hint)
    return check_type(value, kind, f"{where} {key}", optional=optional)


def _known_keys(table: dict, valid, what: str) -> None:
    for key in table:
        if key not in valid:
            raise UnknownNameError(what, key, valid)


def _required(table: dict, key: str, where: str = "the spec") -> Any:
    if key not in table:
        raise KdbenchError(f"{where} has no `{key}`")
    return table[key]


def _table(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise KdbenchError(f"{where} must be a table, got {value!r}")
    return value


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise KdbenchError(f"{where} must be a list, got {value!r}")
    return value


def _typed_list(value: Any, kind: type, where: str) -> list:
    return [check_type(v, kind, f"{where}[{i}]") for i, v in enumerate(_list(value, where))]


def _text(value: Any, where: str) -> str:
    return check_type(value, str, where)
