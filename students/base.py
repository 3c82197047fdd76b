"""The base of student builders: typed parameters (a dataclass, as every part's), a check that refuses
bad ones before any model is loaded, the layer map to the teacher, and `build`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.parts.tasks import TaskSpec

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# The builders import transformers (through bench.parts.models) when they build, so that the registry, and
# `kdbench list students`, load no training library.


class StudentBuilder:
    """Builds a student from its parameters, the teacher and the task."""

    needs_teacher = True  # built from the teacher (its layers or its config)

    def check(self, params: Any) -> None:
        """Refuse parameters that cannot build a student, before any model is loaded."""

    def layer_map(self, params: Any, student_layers: int, teacher_layers: int) -> dict[int, int]:
        """Which teacher hidden state each student hidden state learns from (index 0 the embeddings, k
        the output of layer k): by default evenly spaced, the student's last layer on the teacher's
        last (PKD's skip mapping: layers 2, 4, 6 of a 6-layer teacher for a 3-layer student)."""
        return {0: 0, **{k: round(k * teacher_layers / student_layers) for k in range(1, student_layers + 1)}}

    def build(self, params: Any, teacher: PreTrainedModel | None, task: TaskSpec) -> PreTrainedModel:
        raise NotImplementedError
