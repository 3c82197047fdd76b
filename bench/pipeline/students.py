"""The run's student, from the `student` role (students/): its builder and checked parameters, the model
it builds and its layer map to the teacher. Each function takes a student as `RunConfig` keeps it (a
builder's name and parameters) or in its short form (`teacher-layers:0,2,4`, students/registry.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.parts.errors import KdbenchError
from bench.parts.registry import Part
from bench.parts.tasks import TaskSpec
from bench.pipeline.config import parse_layer_map
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


def layer_map(student: str, model: PreTrainedModel, teacher: PreTrainedModel, params: dict[str, Any] | None = None,
              given: str | None = None) -> dict[int, int]:
    """The layer map `given` (`--layer-map`), checked against the two models, or else the student builder's
    (`StudentBuilder.layer_map`) for the student built as `model` and its teacher."""
    layers = model.config.num_hidden_layers, teacher.config.num_hidden_layers
    if given is not None:
        pairs = parse_layer_map(given)
        outside = [f"{s}:{t}" for s, t in pairs.items() if s > layers[0] or t > layers[1]]
        if outside:
            raise KdbenchError(f"layer map {given}: {', '.join(outside)} outside the student's {layers[0]} and the "
                               f"teacher's {layers[1]} layers (hidden states 0 to {layers[0]} and 0 to {layers[1]})")
        return pairs
    part, parsed = parse_student(student, params)
    return part.implementation().layer_map(parsed, *layers)


def build_student(student: str, teacher: PreTrainedModel | None, task: TaskSpec,
                  params: dict[str, Any] | None = None) -> PreTrainedModel:
    """The student; call under a fixed seed, since `fresh:` initialises randomly."""
    part, parsed = parse_student(student, params)
    return part.implementation().build(parsed, teacher, task).requires_grad_(True)  # copies of a frozen teacher too
