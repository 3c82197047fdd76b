"""Which parts a run composes, looked up and checked, with their parameters parsed once.

Each role of bench/roles.py names one part, except the method, which may compose several joined by
`+`: `eda+ad2` trains on EDA's pool with AD2's step on top, `eda+backtranslation` on both pools. A method
declares what it does (`Method.capabilities`: makes a pool, changes the training step); a composition takes
any pool methods, each a source of rows, and at most one method that changes the step. Its parameters are one dict: `ad2.eps` is AD2's, and a bare name belongs to
the one composed method that has it (`num_aug` is EDA's), so a single method's parameters read as
before.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from bench.parts.base import TrainingPart
from bench.parts.errors import KdbenchError
from bench.parts.kd_config import KDConfig
from bench.parts.outputs import EXTRAS
from bench.parts.registry import COMPOSE, Part, composed, resolve
from bench.parts.tasks import get_task
from bench.pipeline.config import RunConfig
from bench.roles import BY_NAME, ROLES
from methods.base import CHANGES_STEP, MAKES_POOL
from objectives.base import KD_SETTINGS
from schemes.base import Scheme



@dataclass(frozen=True)
class Chosen:
    """A part a run names, with its parameters parsed into the part's dataclass."""

    part: Part
    params: Any


@dataclass(frozen=True)
class ChosenParts:
    """The run's parts: its methods (one, or a composition) and one part for each other role."""

    methods: tuple[Chosen, ...]
    others: dict[str, Chosen]  # "objective", "scheme", "selector", "student", "teacher_outputs"

    def __getitem__(self, role: str) -> Chosen:
        return self.others[role]

    def step_parts(self) -> list[tuple[str, Chosen]]:
        """Every part of the training step (a `TrainingPart`) with its role, the methods first: not the student,
        which they train, nor the teacher source, which feeds them."""
        return [("method", each) for each in self.methods] + [
            (role, each) for role, each in self.others.items() if issubclass(each.part.implementation, TrainingPart)]

    def readers(self) -> list[str]:
        """The parts of the step that read more than logits (`TrainingPart.reads`), as "role name"."""
        return [f"{role} {each.part.name}" for role, each in self.step_parts() if each.part.implementation.reads]

    def method(self, capability: str) -> Chosen | None:
        """The composed method with `capability` (`Method.capabilities`), if any."""
        return next(iter(self.methods_with(capability)), None)

    def methods_with(self, capability: str) -> list[Chosen]:
        """The composed methods with `capability`, in the composition's order."""
        return [each for each in self.methods if capability in each.part.implementation.capabilities]

    def spelled_out(self) -> dict[str, dict[str, Any]]:
        """Every part's parameters in full, by `RunConfig` field: what records and study keys store."""
        values = {role.params: dataclasses.asdict(self.others[role.name].params) for role in ROLES[1:]}
        return {"method_params": self._method_params(), **values}

    def _method_params(self) -> dict[str, Any]:
        """The method's parameters in full; a composition's under `METHOD.` prefixes."""
        if len(self.methods) == 1:
            return dataclasses.asdict(self.methods[0].params)
        return {f"{each.part.name}.{key}": value for each in self.methods
                for key, value in dataclasses.asdict(each.params).items()}

    def method_info(self) -> dict[str, Any]:
        """What a record keeps of the method: name, label, kind, description, parameters (and, for a
        composition, each method's)."""
        if len(self.methods) == 1:
            return self.methods[0].part.describe(self.methods[0].params)
        parts = [each.part.describe(each.params) for each in self.methods]
        return {"name": COMPOSE.join(p["name"] for p in parts), "label": " + ".join(p["label"] for p in parts),
                "kind": COMPOSE.join(p["kind"] for p in parts),
                "description": "; ".join(p["description"] for p in parts),
                "params": self._method_params(), "parts": parts}


def choose_methods(name: str, params: dict[str, Any]) -> tuple[Chosen, ...]:
    """The methods `name` composes, each with its parameters parsed (see the module's docstring)."""
    return _chosen_methods(name, params)[0]


def typed_method_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """`params` of method `name` (one, or a composition) checked, each given key with its typed value."""
    chosen, owners = _chosen_methods(name, params)
    return {key: getattr(chosen[index].params, param) for key, (index, param) in owners.items()}


def _chosen_methods(name: str, params: dict[str, Any]) -> tuple[tuple[Chosen, ...], dict[str, tuple[int, str]]]:
    """`choose_methods`, and which method (by position) and parameter each key of `params` sets."""
    parts, owners = _owners(name, params)
    if len(parts) > 1:
        _check_composition(name, parts)
    given: list[dict[str, Any]] = [{} for _ in parts]
    for key, (index, param) in owners.items():
        given[index][param] = params[key]
    return tuple(Chosen(part, part.parse_params(values)) for part, values in zip(parts, given)), owners


def _owners(name: str, params: dict[str, Any]) -> tuple[list[Part], dict[str, tuple[int, str]]]:
    """The methods `name` composes, and for each key of `params` which of them (by position) it sets and
    under what name."""
    registry = resolve(BY_NAME["method"].registry)
    names = composed(name)
    parts = [registry.get(each) for each in names]
    if len(parts) == 1:
        return parts, {key: (0, key) for key in params}
    positions = {alias: i for i, (given, part) in enumerate(zip(names, parts)) for alias in (given, part.name)}
    owners = {}
    for key in params:
        prefix, dot, rest = key.partition(".")
        if dot and prefix in positions:
            owners[key] = (positions[prefix], rest)
            continue
        having = [i for i, part in enumerate(parts) if any(p.name == key for p in part.params)]
        if len(having) != 1:
            whose = "none of" if not having else "more than one of"
            raise KdbenchError(f"parameter {key} of method {name}: {whose} {', '.join(names)} takes it; write it "
                               f"as METHOD.{key} (`kdbench list methods` lists each one's parameters)")
        owners[key] = (having[0], key)
    return parts, owners


def _check_composition(name: str, parts: list[Part]) -> None:
    if len({part.name for part in parts}) < len(parts) or any(not part.implementation.capabilities for part in parts):
        raise KdbenchError(f"method {name}: compose distinct methods that each do something (not none), e.g. eda+ad2")
    steps = [part.name for part in parts if CHANGES_STEP in part.implementation.capabilities]
    if len(steps) > 1:
        raise KdbenchError(f"method {name}: {' and '.join(steps)} both change the training step; a composition "
                           "takes at most one method that does (and any pool methods)")


def choose_parts(config: RunConfig, *, distill: bool = True, where: str = "--alpha-kd, --alpha-ce") -> ChosenParts:
    """Look up and check the run's parts and their parameters (a bad name or value is one error, before any
    data or model is loaded); a KD setting the objective does not read must be left at its default.
    `where` names where the KD weights were set, for the error when both are 0."""
    others = {}
    for role in ROLES[1:]:
        part = resolve(role.registry).get(getattr(config, role.name))
        others[role.name] = Chosen(part, part.parse_params(getattr(config, role.params)))
    others["student"].part.implementation().check(others["student"].params)
    chosen = ChosenParts(choose_methods(config.method, config.method_params), others)
    objective, scheme = chosen["objective"].part, chosen["scheme"].part
    if distill:
        _check_reads(chosen)
        _check_selector(chosen)
        unread = [name for name in KD_SETTINGS if name not in objective.implementation.kd_settings
                  and getattr(config.kd, name) != getattr(KDConfig(), name)]
        if unread:
            raise KdbenchError(f"objective {objective.name} does not read {', '.join(unread)}: leave it at its default "
                               f"or use an objective that does (`kdbench list objectives`)")
        if {"alpha_kd", "alpha_ce"} <= set(objective.implementation.kd_settings):
            config.kd.check_learns(where)
        regression = config.data.regression if config.data.train_file else get_task(config.data.task).is_regression
        objective.implementation.check(chosen["objective"].params, config.kd, regression=regression)
        if (objective.implementation.restart_at(chosen["objective"].params) is not None
                and scheme.implementation.scheduler is not Scheme.scheduler):
            raise KdbenchError(f"objective {objective.name} restarts the learning-rate schedule for its second phase "
                               f"and scheme {scheme.name} sets a schedule of its own: pass --objective-param "
                               "phase2=continue, or another scheme")
    return chosen


def _check_reads(chosen: ChosenParts) -> None:
    """What the parts read besides logits must be known outputs, and no in-loop method may run with a part
    that reads them: its own forwards (AD2's perturbed one, MATE-KD's rewritten text) do not return them."""
    for role, each in chosen.step_parts():
        unknown = set(each.part.implementation.reads) - set(EXTRAS)
        if unknown:
            raise KdbenchError(f"{role} {each.part.name} reads {', '.join(sorted(unknown))}: a part may read "
                               f"{' and '.join(EXTRAS)} besides logits")
    step = chosen.method(CHANGES_STEP)
    readers = chosen.readers()
    if readers and step is not None:
        raise KdbenchError(f"{', '.join(readers)} reads more than logits, which in-loop method {step.part.name} "
                           "does not compute in its forwards yet: use it with a pool method or none")


def _check_selector(chosen: ChosenParts) -> None:
    """A selector that chooses among a pool's rows needs a pool method, and one that changes each step's batch
    cannot run beside an in-loop method, which computes the step's loss itself, nor beside data read by row."""
    selector, step = chosen["selector"].part, chosen.method(CHANGES_STEP)
    if selector.implementation.needs_pool and chosen.method(MAKES_POOL) is None:
        raise KdbenchError(f"selector {selector.name} chooses among a pool's rows: compose a pool method "
                           "(e.g. --method eda)")
    objective = chosen["objective"].part
    if selector.implementation.chooses_each_step and objective.implementation.by_example_id:
        raise KdbenchError(f"selector {selector.name} puts other rows in a batch's places, and objective "
                           f"{objective.name} reads each row's data by its place: use them apart")
    source = chosen["teacher_outputs"].part
    if selector.implementation.chooses_each_step and source.implementation.states_cached and chosen.readers():
        raise KdbenchError(f"selector {selector.name} puts other rows in a batch's places, and --teacher-outputs "
                           f"{source.name} reads the teacher's states for {', '.join(chosen.readers())} by place: use "
                           "--teacher-outputs cached")
    if selector.implementation.chooses_each_step and step is not None:
        raise KdbenchError(f"selector {selector.name} changes each step's batch, which in-loop method "
                           f"{step.part.name} computes its own loss over: use it with a pool method alone")
