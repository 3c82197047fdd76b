"""The run's student, from the `student` role (students/): its builder and checked parameters, the model
it builds and its layer map to the teacher. Each function takes a student as `RunConfig` keeps it (a
builder's name and parameters) or in its short form (`teacher-layers:0,2,4`, students/registry.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.parts.registry import Part
from bench.parts.tasks import TaskSpec
from students.registry import STUDENTS, split_student

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def parse_student(student: str, params: dict[str, Any] | None = None) -> tuple[Part, Any]:
    """The builder a student names and its parsed, checked parameters."""
    name, values = split_student(student, params)
    part = STUDENTS.get(name)
    parsed = part.parse_params(values)
    part.implementation().check(parsed)
    return part, parsed


def layer_map(student: str, model: PreTrainedModel, teacher: PreTrainedModel,
              params: dict[str, Any] | None = None) -> dict[int, int]:
    """The layer map (`StudentBuilder.layer_map`) of the student built as `model`, and its teacher."""
    part, parsed = parse_student(student, params)
    return part.implementation().layer_map(parsed, model.config.num_hidden_layers, teacher.config.num_hidden_layers)


def build_student(student: str, teacher: PreTrainedModel | None, task: TaskSpec,
                  params: dict[str, Any] | None = None) -> PreTrainedModel:
    """The student; call under a fixed seed, since `fresh:` initialises randomly."""
    part, parsed = parse_student(student, params)
    return part.implementation().build(parsed, teacher, task).requires_grad_(True)  # copies of a frozen teacher too
