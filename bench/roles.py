"""The roles a run's parts play, in one table: what each is called in a config, a record, a spec and on
the command line, where its parts are registered, and its default.

The command line, ablation specs, search keys, run tables and reports iterate over `ROLES` rather
than naming each kind of part, so a new role is one row here. A
role's parameters are a dict in `RunConfig` (`method_params`, ...) that `bench.pipeline.choice.choose_parts`
parses once into the part's typed dataclass. The student is a role too; it is also written in one string
(`teacher-layers:0,2,4`, students/registry.py), the form records keep under `model` and reports show.
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
    example: str  # a parameter, for the help text ("" where no built-in part takes one)
    spec_params: str  # the spec's key of its parameters
    # in a study's name (the method, then the others not at their default); the student was always in its
    # settings (`model`) and never in its name, so stored studies keep their names
    named_in_studies: bool = True
    stored_as: str = ""  # the key of its name in a stored config, where not `name` (the student's short form)
    # a spec may give it at its top level, for every variant that does not give its own
    for_all_variants: bool = False

    @property
    def stored_key(self) -> str:
        """The key of its name in a stored config (a record's, a study's)."""
        return self.stored_as or self.name

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
    Role("student", "students", "students.registry:STUDENTS", "teacher-layers", "student: a builder with "
         "--student-param, or its short form: teacher-layers:0,2,4 (layers of --teacher), fresh:num_hidden_layers=4,"
         "hidden_size=256 (the teacher's architecture, new weights), or a hub id / folder", "--student-param",
         "layers=0,2", spec_params="student_params", named_in_studies=False, stored_as="model",
         for_all_variants=True),
    # the teacher source was a plain setting before it was a role, never in a study's name
    Role("teacher_outputs", "teacher-outputs", "teachers.registry:TEACHER_SOURCES", "cached", "where the teacher's "
         "outputs come from: cached (its logits from the cache on disk, computed once per teacher and data, its hidden "
         "states and attentions, when a part reads them, from a forward of each batch), online (all from a forward of "
         "each batch), cached-all (all from the cache: large, the size is printed before writing)",
         "--teacher-outputs-param", "", spec_params="teacher_outputs_params", named_in_studies=False,
         for_all_variants=True),
)
BY_NAME = {role.name: role for role in ROLES}
LISTED = {role.plural: role.registry for role in ROLES}  # every kind of part `kdbench list` shows
