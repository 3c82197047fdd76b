"""A complete KD objective in one file: mean squared error between student and teacher logits.

Logit matching by MSE instead of KL at a temperature (Kim et al., "Comparing Kullback-Leibler
divergence and mean squared error loss in knowledge distillation", IJCAI 2021), plus the usual
hard-label term. Register it with kdbench by importing this file:

    kdbench list objectives --plugin examples/logit_mse.py
    kdbench distill --plugin examples/logit_mse.py --objective logit-mse --objective-param beta=0.5 ...

It composes with every augmentation method (`--method ad2` scores AD2's perturbed view with
`view_loss`), or, from an installed package, registers through an entry point in its pyproject.toml:

    [project.entry-points."kdbench.objectives"]
    logit-mse = "my_package.logit_mse"
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.parts.context import Batch
from bench.parts.fields import NON_NEGATIVE
from bench.parts.losses import label_loss
from bench.parts.registry import param
from objectives.base import Objective
from objectives.registry import register_objective


@dataclass(frozen=True)
class LogitMSEParams:
    beta: float = param(0.0, "weight of the hard-label term", range=NON_NEGATIVE)


@register_objective("logit-mse", label="logit MSE", params=LogitMSEParams,
                    description="mean squared error between student and teacher logits + beta * CE (a plugin example)")
class LogitMSE(Objective):
    kd_settings = ()  # reads none of --temperature, --alpha-kd, --alpha-ce: setting one is refused

    def loss(self, student_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        matching = self.view_loss(student_logits, batch.teacher_logits, batch)
        if not self.params.beta:
            return matching
        return matching + self.params.beta * label_loss(student_logits, batch.labels, regression=self.regression)

    def view_loss(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        return ((student_logits.float() - teacher_logits.float()) ** 2).mean(-1)
