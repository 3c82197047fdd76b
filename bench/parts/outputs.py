"""What a model computed for a batch, as parts see it: logits, and the hidden states and attention
probabilities that a part of the run declares it reads (`TrainingPart.reads`), computed in the same
forward and only then, since keeping every layer's states costs memory.

The harness puts the student's outputs in `Batch.student` before the objective scores the batch, and
the teacher's in `Batch.teacher`: its logits from the cache on disk or an online forward
(`RunConfig.teacher_outputs`), and its hidden states and attentions, when read, from an online
forward of the same batch. `TrainingContext.layer_map` pairs student layers with teacher layers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

HIDDEN_STATES, ATTENTIONS = "hidden_states", "attentions"
EXTRAS = (HIDDEN_STATES, ATTENTIONS)  # what a part may read besides logits


@dataclass
class Outputs:
    """One model's outputs for a batch. `hidden_states`: the embedding output, then each layer's
    ([batch, length, hidden] each); `attentions`: each layer's attention probabilities ([batch,
    heads, length, length], after the softmax and, for a student in training, its attention dropout,
    as transformers returns them: what the model used). None unless read."""

    logits: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


def request(reads: Iterable[str]) -> dict[str, bool]:
    """The keyword arguments that make a transformers model return the extras in `reads`."""
    reads = set(reads)
    return {"output_hidden_states": HIDDEN_STATES in reads, "output_attentions": ATTENTIONS in reads}


def as_outputs(model_output: Any, reads: Iterable[str]) -> Outputs:
    """A transformers model output as `Outputs`, keeping the extras in `reads`."""
    reads = set(reads)
    return Outputs(model_output.logits, model_output.hidden_states if HIDDEN_STATES in reads else None,
                   model_output.attentions if ATTENTIONS in reads else None)


def forward(model: torch.nn.Module, inputs: dict[str, torch.Tensor], reads: Iterable[str] = ()) -> Outputs:
    """`model` on `inputs`, keeping the extras some part reads."""
    return as_outputs(model(**inputs, **request(reads)), reads)
