"""The roles a run's parts play, in one table: what each is called in a config, a record, a spec and on
the command line, where its parts are registered, and its default.

The command line, ablation specs, search keys, run tables and reports iterate over `ROLES` rather
than naming each kind of part, so a new role (a teacher source) is one row here. A
role's parameters are a dict in `RunConfig` (`method_params`, ...) that `bench.pipeline.choice.choose_parts`
parses once into the part's typed dataclass. Students are listed beside them (`LISTED`): a student is
still named by one string (`teacher-layers:0,2,4`), not a part with parameters.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Role:
    """One kind of part a run composes. `name` is its field in `RunConfig`, its key in a record, a
    spec and a run table, and its command-line option (`--method`)."""

    name: str
    plural: str  # `kdbench list PLURAL`, and the entry-point group kdbench.PLURAL
    registry: str  # "module:name" of its Registry, a light module that imports no part
    default: str
    what: str  # for help texts: "augmentation method"
    param_flag: str  # one parameter on the command line: `--param eps=1e-4`
    example: str  # a parameter, for the help text
    spec_params: str  # the spec's key of its parameters

    @property
    def params(self) -> str:
        """Its parameters' field in `RunConfig` and a record."""
        return f"{self.name}_params"


ROLES = (
    Role("method", "methods", "methods.registry:METHODS", "none",
         "augmentation method, or a pool method and an in-loop one joined by + (eda+ad2)", "--param", "eps=1e-4",
         spec_params="params"),
    Role("objective", "objectives", "objectives.registry:OBJECTIVES", "kd", "KD objective", "--objective-param",
         "tau_max=7", spec_params="objective_params"),
    Role("scheme", "schemes", "schemes.registry:SCHEMES", "plain", "training scheme", "--scheme-param", "start=0.5",
         spec_params="scheme_params"),
    Role("selector", "selectors", "selection.registry:SELECTORS", "all", "row selector (which training rows the "
         "student learns from)", "--selector-param", "k=2", spec_params="selector_params"),
)
BY_NAME = {role.name: role for role in ROLES}
# every kind of part `kdbench list` shows: the roles' and the students'
LISTED = {**{role.plural: role.registry for role in ROLES}, "students": "bench.pipeline.students:STUDENTS"}
