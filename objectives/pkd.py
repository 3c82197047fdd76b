"""`pkd`: Patient Knowledge Distillation (Sun et al., EMNLP 2019), after its official code
(intersun/PKD-for-BERT-Model-Compression): the logit loss (`(1 - alpha) CE + alpha T^2 KL`: the run's
`--alpha-ce`, `--alpha-kd` and `--temperature`) plus `beta` times the mean squared distance between the
student's and the teacher's [CLS] states at the intermediate layers the layer map pairs, each state
normalised to unit length (`normalized_patience`); the student's last layer is left to the logit loss,
as PKD-skip leaves it. A student narrower than the teacher (which PKD does not have) is matched through a
learned projection (objectives/layerwise.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.parts.context import Batch
from bench.parts.fields import NON_NEGATIVE, POSITIVE
from bench.parts.outputs import HIDDEN_STATES
from bench.parts.registry import param
from objectives.layerwise import LayerwiseObjective
from objectives.registry import register_objective


@dataclass(frozen=True)
class PKDParams:
    beta: float = param(100.0, "weight of the patient term (the paper searches 10, 100, 500, 1000)",
                        range=NON_NEGATIVE)
    normalize: bool = param(True, "compare the [CLS] states normalised to unit length (the code's "
                            "normalized_patience)")
    projection_lr: float = param(1e-4, "learning rate of the projection of a narrower student's states (ours)",
                                 range=POSITIVE)


@register_objective("pkd", label="PKD", params=PKDParams,
                    description="Patient KD: the [kd] logit loss + beta x MSE of the [CLS] states of the "
                    "intermediate layers the layer map pairs, normalised (PKD-skip)")
class PKD(LayerwiseObjective):
    reads = frozenset({HIDDEN_STATES})

    def intermediate(self, batch: Batch) -> torch.Tensor:
        pairs = self.pairs(embeddings=False, last=False)
        if not pairs or not self.params.beta:
            return batch.student.logits.new_zeros(batch.student.logits.shape[0], dtype=torch.float32)
        student = torch.stack([batch.student.hidden_states[s][:, 0] for s, _ in pairs], 1).float()
        teacher = torch.stack([batch.teacher.hidden_states[t][:, 0] for _, t in pairs], 1).float()
        student = self.projected(student, teacher.shape[-1])
        if self.params.normalize:
            student, teacher = F.normalize(student, p=2, dim=2), F.normalize(teacher, p=2, dim=2)
        return self.params.beta * ((student - teacher) ** 2).mean(dim=(1, 2))  # the code's mse_loss, per example
