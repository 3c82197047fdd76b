"""What every part that takes part in training shares: state that survives a checkpoint, and a report.

Augmentation methods, KD objectives and training schemes all derive from `TrainingPart`. A part
declares the outputs it reads besides logits (`reads`), so the harness computes them only then. The
harness saves each part's `state_dict()` with every Trainer checkpoint and gives it back through
`load_state_dict` on `--resume` (bench/pipeline/checkpoints.py), so a schedule, an average of weights or a
part's own optimiser continues where it stopped. `report()` is what the part measured over the
run, for the run record.
"""

from __future__ import annotations

from typing import Any


class TrainingPart:
    """Defaults: reads logits only, no state, nothing to report."""

    # what the part reads of the student's and the teacher's forward besides logits: "hidden_states",
    # "attentions" (bench/parts/outputs.py); the harness computes them, in the same forward, only if read
    reads: frozenset[str] = frozenset()

    def state_dict(self) -> dict[str, Any]:
        """What must survive a checkpoint (tensors allowed); empty when everything follows from the step."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what `state_dict` returned at the checkpoint being resumed from."""

    def report(self) -> dict:
        """What the part measured over the run's training, for the run record; a `warning` entry is
        also printed when the run ends."""
        return {}
