"""`pro-kd`: Pro-KD (COLING 2022), **provisional, the suite's reconstruction**: the student follows the teacher's
training footprints, its checkpoints along the fine-tuning, rather than the final teacher alone. The paper's
abstract gives no schedule, teacher mode or loss; here training is cut into equal phases, phase j distilling
from trajectory checkpoint j (`kdbench finetune-teacher --save-trajectory N` keeps them, evenly spaced, the
last at the fine-tuning's final step), then, with `final_phase`, a last phase from the run's teacher (the
fine-tuning's best weights), each with the `[kd]` loss. Each checkpoint's logits on the training rows are
computed once and cached as the teacher's are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from bench.parts.context import Batch
from bench.parts.errors import KdbenchError
from bench.parts.fields import NON_NEGATIVE
from bench.parts.losses import kd_divergence, kd_loss
from bench.parts.models import trajectory
from bench.parts.registry import param
from objectives.base import Objective
from objectives.registry import register_objective


@dataclass(frozen=True)
class ProKDParams:
    checkpoints: int = param(0, "trajectory checkpoints followed, evenly chosen, the last always kept (0: all)",
                             range=NON_NEGATIVE)
    final_phase: bool = param(True, "a last phase on the run's teacher (the fine-tuning's best weights)")


@register_objective("pro-kd", label="Pro-KD", params=ProKDParams,
                    description="Pro-KD (provisional): equal phases, each distilling from the next checkpoint of the "
                    "teacher's fine-tuning (finetune-teacher --save-trajectory N), with the [kd] loss")
class ProKD(Objective):
    by_example_id = True

    def __init__(self, params: ProKDParams, context):
        super().__init__(params, context)
        self.folders = self.followed(Path(context.teacher), params)
        self.logits: dict[int, torch.Tensor] = {}  # by phase, loaded at its first batch
        self.phase_steps: dict[int, int] = {}  # the first step of each phase reached

    @staticmethod
    def followed(teacher: Path, params: ProKDParams) -> list[Path]:
        """The trajectory checkpoints the phases follow, in training order."""
        steps = trajectory(teacher)
        if not steps:
            raise KdbenchError(f"objective pro-kd follows the teacher's checkpoints, and {teacher} has none: fine-tune "
                               "it with `kdbench finetune-teacher --save-trajectory 4` (or distill with "
                               "--finetune-teacher --save-trajectory 4)")
        count = params.checkpoints or len(steps)
        if count > len(steps):
            raise KdbenchError(f"objective pro-kd: checkpoints {count}, but {teacher} keeps {len(steps)}")
        return [steps[round((k + 1) * len(steps) / count) - 1] for k in range(count)]

    @property
    def phases(self) -> int:
        return len(self.folders) + self.params.final_phase

    def phase(self) -> int:
        """The phase of the present step: equal shares of training."""
        return min(int(self.context.progress * self.phases), self.phases - 1)

    def teacher_logits(self, batch: Batch) -> torch.Tensor:
        """The present phase's teacher logits for the batch's rows."""
        phase = self.phase()
        self.phase_steps.setdefault(phase, self.context.step)
        if phase == len(self.folders):  # the final phase: the run's teacher, as the harness gives it
            return batch.teacher_logits
        if phase not in self.logits:
            self.logits[phase] = self.context.teacher_logits_of(str(self.folders[phase]))
        return self.logits[phase][batch.example_ids.cpu()].to(batch.teacher_logits.device
                                                                if batch.teacher_logits is not None else "cpu")

    def loss(self, student_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        kd = self.context.kd
        return kd_loss(student_logits, self.teacher_logits(batch), batch.labels, temperature=kd.temperature,
                       alpha_kd=kd.alpha_kd, alpha_ce=kd.alpha_ce, regression=self.regression)

    def view_loss(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        kd = self.context.kd
        return kd.alpha_kd * kd_divergence(student_logits, teacher_logits, temperature=kd.temperature,
                                           regression=self.regression)

    def state_dict(self) -> dict:
        return {"phase_steps": dict(self.phase_steps)}

    def load_state_dict(self, state: dict) -> None:
        self.phase_steps = dict(state.get("phase_steps", {}))

    def report(self) -> dict:
        return {"checkpoints": [path.name for path in self.folders], "final_phase": self.params.final_phase,
                "phase_start_steps": [self.phase_steps.get(j) for j in range(self.phases)]}
