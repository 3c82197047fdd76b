"""Where a fraction of training falls, and the linear learning-rate schedule, for the parts and the harness.

Parts lay their schedules on the fraction of training done (`TrainingContext.progress`, step / total
steps), so a shortened run keeps their shape; a part that acts from a fraction on (SWA's start,
Annealing-KD's phase 2) and the harness that restarts the schedule there must agree on the step.
"""

from __future__ import annotations

import math


def first_step(fraction: float, total_steps: int) -> int:
    """The first step whose progress, `step / total_steps` as `TrainingContext.progress` computes it, is at
    least `fraction`: the step a part that tests `progress >= fraction` changes at (the ceiling of the
    product alone can be a step late or early: 0.07 * 1000 is 70.00000000000001)."""
    step = max(0, math.floor(fraction * total_steps) - 1)
    while step < total_steps and step / total_steps < fraction:
        step += 1
    return step


def linear_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """The Trainer's linear schedule (`get_linear_schedule_with_warmup`): the learning rate of `step` as
    a fraction of the peak, rising over `warmup_steps`, then falling to 0 at `total_steps`."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def restarted_factor(step: int, total_steps: int, warmup_steps: int, restart_step: int) -> float:
    """Two linear schedules, as two training loops would run them: warm-up and decay to 0 over the steps
    before `restart_step`, then from the peak down to 0 at `total_steps`, without warm-up."""
    if step < restart_step:
        return linear_factor(step, restart_step, warmup_steps)
    return linear_factor(step - restart_step, total_steps - restart_step, 0)
