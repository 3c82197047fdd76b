"""Student builders, registered parts like methods and objectives: `kind:argument` strings name them.

  - `teacher-layers:0,2,4`  the teacher with only these encoder layers kept (DistilBERT/PKD style);
  - `fresh:num_hidden_layers=4,hidden_size=256,...`  the teacher's architecture, these config values
    changed, randomly initialised;
  - anything else: a hub id or folder of a pre-trained encoder (`pretrained`).

A new kind of student (e.g. a Kronecker-factorised one) is one `@register_student` class whose
`parse` checks its argument (before any model is loaded) and whose `build` makes the model.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from bench.parts.errors import KdbenchError, UnknownNameError
from bench.parts.registry import Part, Registry
from bench.parts.tasks import TaskSpec

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# The builders import transformers (through bench.parts.models) when they build, so that the registry, and
# `kdbench list students`, load no training library.

STUDENTS = Registry("student", plural="students", base="bench.pipeline.students:StudentBuilder", builtins={
    name: "bench.pipeline.students" for name in ("teacher-layers", "fresh", "pretrained")})
register_student = STUDENTS.register
PRETRAINED = "pretrained"  # a student string with no registered `kind:` prefix names a pre-trained model


class StudentBuilder:
    """Parses the argument of `kind:argument` and builds the student from it, the teacher and the task."""

    needs_teacher = True  # built from the teacher (its layers or its config)

    def parse(self, argument: str) -> Any:
        return argument

    def build(self, argument: Any, teacher: PreTrainedModel | None, task: TaskSpec) -> PreTrainedModel:
        raise NotImplementedError


def parse_student(spec: str) -> tuple[Part, Any]:
    """The builder a student string names and its parsed argument (see the module's docstring)."""
    kind, sep, argument = spec.partition(":")
    if sep and argument and kind in [part.name for part in STUDENTS.list()]:
        part = STUDENTS.get(kind)
    else:
        part, argument = STUDENTS.get(PRETRAINED), spec
    return part, part.implementation().parse(argument)


def build_student(spec: str, teacher: PreTrainedModel | None, task: TaskSpec) -> PreTrainedModel:
    """The student named by `spec`; call under a fixed seed, since `fresh:` initialises randomly."""
    part, argument = parse_student(spec)
    return part.implementation().build(argument, teacher, task).requires_grad_(True)  # copies of a frozen teacher too


@register_student("teacher-layers", description="the teacher with only the listed encoder layers kept, e.g. "
                  "teacher-layers:0,2,4 (DistilBERT/PKD initialisation)")
class TeacherLayers(StudentBuilder):
    def parse(self, argument: str) -> list[int]:
        try:
            return [int(i) for i in argument.split(",")]
        except ValueError:
            raise KdbenchError(f"teacher-layers takes comma-separated layer indices, e.g. teacher-layers:0,2,4; "
                               f"got {argument!r}") from None

    def build(self, argument: list[int], teacher: PreTrainedModel | None, task: TaskSpec) -> PreTrainedModel:
        from bench.parts.models import keep_layers

        return keep_layers(teacher, argument)


@register_student("fresh", description="the teacher's architecture with these config values changed, randomly "
                  "initialised, e.g. fresh:num_hidden_layers=4,hidden_size=256")
class Fresh(StudentBuilder):
    def parse(self, argument: str) -> dict[str, Any]:
        overrides = {}
        for item in argument.split(","):
            key, sep, value = item.partition("=")
            if not sep:
                raise KdbenchError(f"fresh: takes key=value config overrides, e.g. "
                                   f"fresh:num_hidden_layers=4,hidden_size=256; got {item!r}")
            overrides[key.strip()] = _parse_number(value.strip())
        return overrides

    def build(self, argument: dict[str, Any], teacher: PreTrainedModel | None, task: TaskSpec) -> PreTrainedModel:
        from transformers import AutoModelForSequenceClassification

        config = copy.deepcopy(teacher.config)
        for key, value in argument.items():
            if not hasattr(config, key):
                raise UnknownNameError(f"{config.model_type} config field", key, config.to_dict())
            setattr(config, key, value)
        return AutoModelForSequenceClassification.from_config(config)


@register_student(PRETRAINED, description="a pre-trained encoder by hub id or folder, with a new task head "
                  "(any student string without a registered kind: prefix)")
class Pretrained(StudentBuilder):
    needs_teacher = False

    def build(self, argument: str, teacher: PreTrainedModel | None, task: TaskSpec) -> PreTrainedModel:
        from bench.parts.models import load_classifier

        return load_classifier(argument, task)


def _parse_number(value: str) -> int | float | str:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value
