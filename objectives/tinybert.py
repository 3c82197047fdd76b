"""`tinybert`: TinyBERT's task-specific distillation (Jiao et al., Findings EMNLP 2020), after its official
code (huawei-noah/Pretrained-Language-Model, `TinyBERT/task_distill.py`): the mean squared error between
the student's and the teacher's hidden states, the embedding output included, at the layers the layer map
pairs (a narrower student's through a learned projection, the code's `fit_dense`), plus the mean squared
error between their attention maps at the paired layers, plus the logit loss of the run's `[kd]` settings.

Departures (docs/departures.md): one stage with the three terms summed (the code runs the intermediate
terms, then the prediction layer's, as two trainings); attention probabilities compared, not the scores
before the softmax (transformers returns the probabilities); both errors averaged over a batch's real
tokens (the code averages over padding too, which our batches, grouped by length, would change).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.parts.context import Batch
from bench.parts.fields import NON_NEGATIVE, POSITIVE
from bench.parts.outputs import ATTENTIONS, HIDDEN_STATES
from bench.parts.registry import param
from objectives.layerwise import LayerwiseObjective, check_heads, masked_mean
from objectives.registry import register_objective


@dataclass(frozen=True)
class TinyBERTParams:
    hidden_weight: float = param(1.0, "weight of the hidden states' error (embeddings and layers)",
                                 range=NON_NEGATIVE)
    attention_weight: float = param(1.0, "weight of the attention maps' error", range=NON_NEGATIVE)
    projection_lr: float = param(1e-4, "learning rate of the projection of a narrower student's states (ours)",
                                 range=POSITIVE)


@register_objective("tinybert", label="TinyBERT", params=TinyBERTParams,
                    description="TinyBERT's task distillation: MSE of the hidden states (embeddings included) "
                    "and of the attention maps at the layers the layer map pairs, + the [kd] logit loss")
class TinyBERT(LayerwiseObjective):
    reads = frozenset({HIDDEN_STATES, ATTENTIONS})

    def intermediate(self, batch: Batch) -> torch.Tensor:
        mask = batch.inputs["attention_mask"]
        loss = batch.student.logits.new_zeros(mask.shape[0], dtype=torch.float32)
        if self.params.hidden_weight:
            for s, t in self.pairs(embeddings=True, last=True):
                teacher = batch.teacher.hidden_states[t].float()
                student = self.projected(batch.student.hidden_states[s].float(), teacher.shape[-1])
                loss = loss + self.params.hidden_weight * masked_mean((student - teacher) ** 2, mask)
        if self.params.attention_weight:
            keys = mask[:, None, None, :].float()  # padded keys: 0 in both maps, left out of the mean
            for s, t in self.pairs(embeddings=False, last=True):
                student, teacher = batch.student.attentions[s - 1].float(), batch.teacher.attentions[t - 1].float()
                check_heads(student, teacher)
                per_query = ((student - teacher) ** 2 * keys).sum(-1) / keys.sum(-1)  # [batch, heads, length]
                loss = loss + self.params.attention_weight * masked_mean(per_query.transpose(1, 2), mask)
        return loss
