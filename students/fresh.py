"""`fresh:num_hidden_layers=4,hidden_size=256`: the teacher's architecture with these config values
changed, randomly initialised."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.parts.fields import AT_LEAST_ONE
from bench.parts.registry import param
from bench.parts.tasks import TaskSpec
from students.base import StudentBuilder
from students.registry import register_student

if TYPE_CHECKING:
    from transformers import PreTrainedModel


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
