"""What the intermediate-layer objectives share (`pkd`, `tinybert`): the logit term of the run's `[kd]`
settings, the pairs of student and teacher layers that `TrainingContext.layer_map` gives, states compared on a
batch's real tokens only, and a learned projection of the student's states where the widths differ.

The projection (TinyBERT's `fit_dense`: one linear map shared by every layer) is made at the first batch,
when the widths are known, and trained by an optimiser of its own (`TrainingContext.add_parameters`) with the
gradients of the same loss; the official code puts it in the student's model and its optimiser.
"""

from __future__ import annotations

from typing import Any

import torch

from bench.parts.context import Batch
from bench.parts.errors import KdbenchError
from bench.parts.losses import kd_divergence, kd_loss
from objectives.base import Objective


class LayerwiseObjective(Objective):
    """Subclasses add `intermediate(batch)`, per example; their parameters have `projection_lr`."""

    def __init__(self, params: Any, context):
        super().__init__(params, context)
        self.projection: torch.nn.Linear | None = None

    def loss(self, student_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        kd = self.context.kd
        logits = kd_loss(student_logits, batch.teacher_logits, batch.labels, temperature=kd.temperature,
                         alpha_kd=kd.alpha_kd, alpha_ce=kd.alpha_ce, regression=self.regression)
        return logits + self.intermediate(batch)

    def view_loss(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        kd = self.context.kd
        return kd.alpha_kd * kd_divergence(student_logits, teacher_logits, temperature=kd.temperature,
                                           regression=self.regression)

    def intermediate(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def pairs(self, *, embeddings: bool, last: bool) -> list[tuple[int, int]]:
        """(student, teacher) hidden-state indices of the layer map (0: the embeddings, k: layer k's output),
        with or without the embeddings and the student's last layer."""
        top = max(self.context.layer_map)
        return [(s, t) for s, t in sorted(self.context.layer_map.items())
                if (s or embeddings) and (s != top or last)]

    def projected(self, states: torch.Tensor, width: int) -> torch.Tensor:
        """The student's `states` in the teacher's `width`: as they are where the widths agree, else through
        the learned projection."""
        if states.shape[-1] == width:
            return states
        if self.projection is None:
            self.projection = torch.nn.Linear(states.shape[-1], width).to(states.device)
            self.context.add_parameters(self.projection.parameters(), lr=self.params.projection_lr)
        return self.projection(states.float())

    def state_dict(self) -> dict:
        return {"projection": self.projection.state_dict()} if self.projection is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if "projection" in state:
            weight = state["projection"]["weight"]
            self.projection = torch.nn.Linear(weight.shape[1], weight.shape[0]).to(weight.device)
            self.projection.load_state_dict(state["projection"])
            self.context.add_parameters(self.projection.parameters(), lr=self.params.projection_lr)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per example, the mean of `values` ([batch, length, ...]) over the positions where `mask` ([batch,
    length]) is 1 and over its other dimensions."""
    weights = mask.float().view(*mask.shape, *([1] * (values.dim() - 2)))
    per_position = values.shape[2:].numel()
    return (values * weights).flatten(1).sum(1) / (weights.flatten(1).sum(1) * per_position)


def check_heads(student: torch.Tensor, teacher: torch.Tensor) -> None:
    if student.shape[1] != teacher.shape[1]:
        raise KdbenchError(f"attention matching needs as many heads in the student as in the teacher "
                           f"({student.shape[1]} and {teacher.shape[1]}): set attention_weight=0")
