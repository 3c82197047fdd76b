"""KD with noisy labels: the KD term of `kd` plus a noise-robust label term in place of cross-entropy.

    L = alpha_kd * t^2 * KL(teacher || student) + alpha_ce * label_term(student, y)

Bhardwaj et al. (W-NUT 2021) study task-specific KD when the training labels are noisy, and propose
two mitigations; only their abstract is public, so neither their noise model nor their mitigations
are reproduced here. These two objectives use published noise-robust label losses instead:

- `kd-gce`: generalized cross-entropy (Zhang & Sabuncu, NeurIPS 2018), (1 - p_y^q) / q: q -> 0 gives
  cross-entropy, q = 1 the bounded 1 - p_y (MAE up to a factor), which a wrong label pulls less on.
- `kd-bootstrap`: soft bootstrapping (Reed et al., ICLR 2015 workshop), cross-entropy against
  beta * onehot(y) + (1 - beta) * p, p the student's own prediction. As in the paper's formulation,
  p is not detached, so the (1 - beta) part is the student's entropy: a minimum-entropy regulariser
  that lets a confident prediction outweigh a label that contradicts it.

The label term is the mitigation, so both refuse alpha_ce = 0 (the `[kd]` default), which would turn
it off; both are for classification only. Training labels are noised by `DataConfig.label_noise`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.parts.context import Batch, TrainingContext
from bench.parts.errors import KdbenchError
from bench.parts.fields import POSITIVE_FRACTION, PROBABILITY
from bench.parts.kd_config import KDConfig
from bench.parts.losses import kd_divergence, kd_loss
from bench.parts.registry import param
from objectives.base import Objective
from objectives.registry import register_objective


class _NoisyLabelKD(Objective):
    """The KD term with the run's [kd] settings plus alpha_ce times a subclass's `label_term`."""

    name = ""  # the registered name, for error messages

    def __init__(self, params: GCEParams | BootstrapParams, context: TrainingContext):
        super().__init__(params, context)
        self.check(params, context.kd, regression=self.regression)

    @classmethod
    def check(cls, params: GCEParams | BootstrapParams, kd: KDConfig, *, regression: bool) -> None:
        if regression:
            raise KdbenchError(f"{cls.name} is for classification; this task is regression: use the kd objective")
        if kd.alpha_ce == 0:
            raise KdbenchError(f"{cls.name} mitigates noisy labels in the label term: set --alpha-ce > 0")

    def label_term(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-example noise-robust loss of fp32 `logits` against integer `labels`."""
        raise NotImplementedError

    def loss(self, student_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        kd = self.context.kd
        loss = kd_loss(student_logits, batch.teacher_logits, None, temperature=kd.temperature,
                       alpha_kd=kd.alpha_kd, alpha_ce=0.0, regression=False)
        if batch.labels is not None:
            loss = loss + kd.alpha_ce * self.label_term(student_logits.float(), batch.labels.view(-1))
        return loss

    def view_loss(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        kd = self.context.kd
        return kd.alpha_kd * kd_divergence(student_logits, teacher_logits, temperature=kd.temperature,
                                           regression=False)


@dataclass(frozen=True)
class GCEParams:
    q: float = param(0.7, "GCE exponent: toward 0 the label term approaches cross-entropy, at 1 it is 1 - p_y",
                     range=POSITIVE_FRACTION)


@register_objective("kd-gce", label="KD+GCE", params=GCEParams,
                    description="KD term + alpha_ce * generalized cross-entropy (1 - p_y^q) / q (Zhang & Sabuncu "
                    "2018), robust to noisy labels; needs --alpha-ce > 0")
class KDGCE(_NoisyLabelKD):
    name = "kd-gce"

    def label_term(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        log_p_y = F.log_softmax(logits, dim=-1).gather(-1, labels[:, None]).squeeze(-1)
        q = self.params.q
        return (1 - torch.exp(q * log_p_y)) / q  # p_y^q through the log, stable for tiny p_y


@dataclass(frozen=True)
class BootstrapParams:
    beta: float = param(0.95, "weight of the given label in the target; the rest is the student's own "
                        "prediction (1: plain cross-entropy)", range=PROBABILITY)


@register_objective("kd-bootstrap", label="KD+bootstrap", params=BootstrapParams,
                    description="KD term + alpha_ce * soft bootstrapping, CE against beta * y + (1 - beta) * p "
                    "(Reed et al. 2015), robust to noisy labels; needs --alpha-ce > 0")
class KDBootstrap(_NoisyLabelKD):
    name = "kd-bootstrap"

    def label_term(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=-1)
        beta = self.params.beta
        target = beta * F.one_hot(labels, logits.shape[-1]).float() + (1 - beta) * log_p.exp()  # not detached
        return -(target * log_p).sum(-1)
