"""`annealing`: Annealing-KD (Jafari et al., EACL 2021), after the official code (huawei-noah/Efficient-NLP).

Phase 1 trains the student on the teacher alone, matching logits by squared error to a teacher
scaled down and annealed up: `MSE(z_S, z_T * tau / tau_max)`, `tau` starting at 1 and rising by 1
every `phase-1 length / tau_max`, so the target grows from `z_T / tau_max` to `z_T`. Phase 2 trains
on hard labels: cross-entropy (squared error to the gold score for regression, so STS-B uses
squared error throughout). As in the code, phase 2 is a second training loop (`phase2=restart`): it
starts from the best phase-1 weights (by the dev score), with a new optimiser and a new linear
schedule from the peak rate without warm-up, and phase 1's schedule decays to 0 at its end;
`phase2=continue` keeps one optimiser and one schedule across both phases (earlier versions).

The defaults are the paper's GLUE settings (14 + 4 epochs, `tau_max` 7) laid on the fraction of
training (`context.progress`), so a shorter run, such as the quick profile's 2 epochs, keeps the same
shape, shortened proportionally.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bench.parts.context import Batch
from bench.parts.fields import AT_LEAST_ONE, POSITIVE_FRACTION
from bench.parts.losses import label_loss
from bench.parts.registry import param
from objectives.base import Objective
from objectives.registry import register_objective


PHASE2 = ("restart", "continue")


@dataclass(frozen=True)
class AnnealingParams:
    tau_max: int = param(7, "number of annealing stages: the teacher's logits are scaled by tau / tau_max, "
                            "tau = 1 .. tau_max", range=AT_LEAST_ONE)
    phase1_fraction: float = param(14 / 18, "fraction of training in phase 1 (teacher only; the paper's 14 of "
                                            "18 epochs); the rest trains on hard labels", range=POSITIVE_FRACTION)
    phase2: str = param("restart", "restart: phase 2 starts from the best phase-1 weights with a new optimiser and "
                        "a linear schedule from the peak rate (the code's second training loop); continue: one "
                        "optimiser and schedule across both phases", choices=PHASE2)


@register_objective("annealing", label="Annealing-KD", params=AnnealingParams,
                    description="phase 1: MSE(z_S, z_T * tau / tau_max), tau annealed 1 .. tau_max, no labels; "
                                "phase 2: CE (MSE for regression), restarted from the best phase-1 weights with a "
                                "new optimiser and schedule; the paper's 14 + 4 epochs laid on the fraction of "
                                "training")
class AnnealingKD(Objective):
    kd_settings = ()  # reads none of --temperature, --alpha-kd, --alpha-ce

    def scale(self, progress: float) -> float | None:
        """The teacher's scale `tau / tau_max` at this fraction of training, or None in phase 2 (labels only).

        `tau = 1 + floor(progress / phase1_fraction * tau_max)`, so each of the `tau_max` stages
        lasts an equal share of phase 1."""
        p = self.params
        if progress >= p.phase1_fraction:
            return None
        tau = min(p.tau_max, 1 + math.floor(progress / p.phase1_fraction * p.tau_max))
        return tau / p.tau_max

    @classmethod
    def restart_at(cls, params: AnnealingParams) -> float | None:
        return params.phase1_fraction if params.phase2 == "restart" else None

    def has_teacher_term(self) -> bool:
        return self.scale(self.context.progress) is not None

    def loss(self, student_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        scale = self.scale(self.context.progress)
        if scale is None:
            return label_loss(student_logits, batch.labels, regression=self.regression)
        return _scaled_mse(student_logits, batch.teacher_logits, scale)

    def view_loss(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Phase 1's term on the view's logits; zeros in phase 2, which has no teacher term."""
        scale = self.scale(self.context.progress)
        if scale is None:
            return student_logits.new_zeros(student_logits.shape[0], dtype=torch.float32)
        return _scaled_mse(student_logits, teacher_logits, scale)


def _scaled_mse(student_logits: torch.Tensor, teacher_logits: torch.Tensor, scale: float) -> torch.Tensor:
    """Per example, the mean over the outputs of `(z_S - scale * z_T)^2`, in fp32 (a regression
    head's outputs, shaped (batch,) or (batch, 1), count as one)."""
    rows = student_logits.shape[0]
    student, teacher = student_logits.float().reshape(rows, -1), teacher_logits.float().reshape(rows, -1)
    return ((student - scale * teacher) ** 2).mean(-1)
