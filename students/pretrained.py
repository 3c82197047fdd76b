"""A pre-trained encoder by hub id or folder, with a new task head: any student whose short form has no
registered `kind:` prefix (`minilm`, `google/bert_uncased_L-4_H-256_A-4`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.parts.registry import param
from bench.parts.tasks import TaskSpec
from students.base import StudentBuilder
from students.registry import PRETRAINED, register_student

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass(frozen=True)
class PretrainedParams:
    model: str = param("", "hub id or folder of a pre-trained encoder")


@register_student(PRETRAINED, params=PretrainedParams, shorthand="model", description="a pre-trained encoder by hub "
                  "id or folder, with a new task head (any student string without a registered kind: prefix)")
class Pretrained(StudentBuilder):
    needs_teacher = False

    def build(self, params: PretrainedParams, teacher: PreTrainedModel | None, task: TaskSpec) -> PreTrainedModel:
        from bench.parts.models import load_classifier

        return load_classifier(params.model, task)
