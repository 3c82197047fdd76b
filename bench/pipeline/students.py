"""Student builders, registered parts like methods and objectives: `kind:argument` strings name them.

  - `teacher-layers:0,2,4`  the teacher with only these encoder layers kept (DistilBERT/PKD style);
  - `fresh:num_hidden_layers=4,hidden_size=256,...`  the teacher's architecture, these config values
    changed, randomly initialised;
  - anything else: a hub id or folder of a pre-trained encoder (`pretrained`).

Each builder has typed parameters, a dataclass like every part's (`kdbench list students`): the
text after `kind:` gives them (`fresh:hidden_size=256` sets `hidden_size`; `teacher-layers:0,2,4`
sets `layers`). A new kind of student (e.g. a Kronecker-factorised one) is one `@register_student`
class with its parameters, whose `check` refuses bad ones before any model is loaded and whose
`build` makes the model.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.parts.errors import KdbenchError
from bench.parts.fields import AT_LEAST_ONE
from bench.parts.registry import Part, Registry, param
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
    """Builds a student from its typed parameters (a dataclass, as every part's), the teacher and the
    task. `assignments` reads the parameters from the text after `kind:`, the form a config keeps."""

    needs_teacher = True  # built from the teacher (its layers or its config)

    @staticmethod
    def assignments(argument: str) -> dict[str, str]:
        """The parameters the text after `kind:` gives, as `key=value` pairs: `k=v,k=v` by default."""
        pairs = {}
        for item in argument.split(","):
            key, sep, value = item.partition("=")
            if not sep:
                raise KdbenchError(f"a student's parameters are key=value pairs, e.g. "
                                   f"fresh:num_hidden_layers=4,hidden_size=256; got {item!r}")
            pairs[key.strip()] = value.strip()
        return pairs

    def check(self, params: Any) -> None:
        """Refuse parameters that cannot build a student, before any model is loaded."""

    def layer_map(self, params: Any, student_layers: int, teacher_layers: int) -> dict[int, int]:
        """Which teacher hidden state each student hidden state learns from (index 0 the embeddings, k
        the output of layer k): by default evenly spaced, the student's last layer on the teacher's
        last (PKD's skip mapping: layers 2, 4, 6 of a 6-layer teacher for a 3-layer student)."""
        return {0: 0, **{k: round(k * teacher_layers / student_layers) for k in range(1, student_layers + 1)}}

    def build(self, params: Any, teacher: PreTrainedModel | None, task: TaskSpec) -> PreTrainedModel:
        raise NotImplementedError


def parse_student(spec: str) -> tuple[Part, Any]:
    """The builder a student string names and its parsed, checked parameters (see the module's docstring)."""
    kind, sep, argument = spec.partition(":")
    if sep and argument and kind in [part.name for part in STUDENTS.list()]:
        part = STUDENTS.get(kind)
    else:
        part, argument = STUDENTS.get(PRETRAINED), spec
    params = part.parse_params(part.implementation.assignments(argument))
    part.implementation().check(params)
    return part, params


def layer_map(spec: str, student: PreTrainedModel, teacher: PreTrainedModel) -> dict[int, int]:
    """The layer map (`StudentBuilder.layer_map`) of the student `spec` names, built, and its teacher."""
    part, params = parse_student(spec)
    return part.implementation().layer_map(params, student.config.num_hidden_layers,
                                           teacher.config.num_hidden_layers)


def build_student(spec: str, teacher: PreTrainedModel | None, task: TaskSpec) -> PreTrainedModel:
    """The student named by `spec`; call under a fixed seed, since `fresh:` initialises randomly."""
    part, params = parse_student(spec)
    return part.implementation().build(params, teacher, task).requires_grad_(True)  # copies of a frozen teacher too


@dataclass(frozen=True)
class TeacherLayersParams:
    layers: str = param("0,2,4", "comma-separated indices of the teacher's encoder layers kept, in order")


@register_student("teacher-layers", params=TeacherLayersParams, description="the teacher with only the listed "
                  "encoder layers kept, e.g. teacher-layers:0,2,4 (DistilBERT/PKD initialisation)")
class TeacherLayers(StudentBuilder):
    @staticmethod
    def assignments(argument: str) -> dict[str, str]:
        return {"layers": argument}

    def check(self, params: TeacherLayersParams) -> None:
        self.indices(params)

    @staticmethod
    def indices(params: TeacherLayersParams) -> list[int]:
        try:
            return [int(i) for i in params.layers.split(",")]
        except ValueError:
            raise KdbenchError(f"teacher-layers takes comma-separated layer indices, e.g. teacher-layers:0,2,4; "
                               f"got {params.layers!r}") from None

    def layer_map(self, params: TeacherLayersParams, student_layers: int, teacher_layers: int) -> dict[int, int]:
        """Each kept layer on the teacher layer it was copied from."""
        return {0: 0, **{k + 1: index + 1 for k, index in enumerate(self.indices(params))}}

    def build(self, params: TeacherLayersParams, teacher: PreTrainedModel | None, task: TaskSpec) -> PreTrainedModel:
        from bench.parts.models import keep_layers

        return keep_layers(teacher, self.indices(params))


@dataclass(frozen=True)
class FreshParams:
    """The config values a fresh student changes; each left unset keeps the teacher's."""

    num_hidden_layers: int | None = param(None, "encoder layers (default: the teacher's)", range=AT_LEAST_ONE)
    hidden_size: int | None = param(None, "hidden size (default: the teacher's)", range=AT_LEAST_ONE)
    num_attention_heads: int | None = param(None, "attention heads (default: the teacher's)", range=AT_LEAST_ONE)
    intermediate_size: int | None = param(None, "feed-forward size (default: the teacher's)", range=AT_LEAST_ONE)
    hidden_act: str | None = param(None, "activation, e.g. gelu or relu (default: the teacher's)")


@register_student("fresh", params=FreshParams, description="the teacher's architecture with these config values "
                  "changed, randomly initialised, e.g. fresh:num_hidden_layers=4,hidden_size=256")
class Fresh(StudentBuilder):
    def build(self, params: FreshParams, teacher: PreTrainedModel | None, task: TaskSpec) -> PreTrainedModel:
        from transformers import AutoModelForSequenceClassification

        config = copy.deepcopy(teacher.config)
        for key, value in dataclasses.asdict(params).items():
            if value is not None:
                setattr(config, key, value)
        return AutoModelForSequenceClassification.from_config(config)


@dataclass(frozen=True)
class PretrainedParams:
    model: str = param("", "hub id or folder of a pre-trained encoder")


@register_student(PRETRAINED, params=PretrainedParams, description="a pre-trained encoder by hub id or folder, "
                  "with a new task head (any student string without a registered kind: prefix)")
class Pretrained(StudentBuilder):
    needs_teacher = False

    @staticmethod
    def assignments(argument: str) -> dict[str, str]:
        return {"model": argument}

    def build(self, params: PretrainedParams, teacher: PreTrainedModel | None, task: TaskSpec) -> PreTrainedModel:
        from bench.parts.models import load_classifier

        return load_classifier(params.model, task)
