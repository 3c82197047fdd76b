"""`teacher-layers:0,2,4`: the teacher with only these encoder layers kept (DistilBERT/PKD initialisation)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.parts.errors import KdbenchError
from bench.parts.registry import param
from bench.parts.tasks import TaskSpec
from students.base import StudentBuilder
from students.registry import register_student

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass(frozen=True)
class TeacherLayersParams:
    layers: str = param("0,2,4", "comma-separated indices of the teacher's encoder layers kept, in order")


@register_student("teacher-layers", params=TeacherLayersParams, shorthand="layers", description="the teacher with "
                  "only the listed encoder layers kept, e.g. teacher-layers:0,2,4 (DistilBERT/PKD initialisation)")
class TeacherLayers(StudentBuilder):
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
