"""The KD loss's settings (bench/parts/losses.py computes it), light to import: the command line
builds its options from them without loading torch."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.parts.errors import KdbenchError
from bench.parts.fields import NON_NEGATIVE, POSITIVE, check_ranges


@dataclass
class KDConfig:
    """The distillation loss of METHODS.md: alpha_kd * t^2 * KL + alpha_ce * CE (MSE for regression)."""

    temperature: float = field(default=1.0, metadata={"help": "softmax temperature t of the KD term",
                                                      "range": POSITIVE})
    alpha_kd: float = field(default=1.0, metadata={"help": "weight of the KD term", "range": NON_NEGATIVE})
    alpha_ce: float = field(default=0.0, metadata={"help": "weight of the hard-label term", "range": NON_NEGATIVE})

    def __post_init__(self):
        check_ranges(self)

    def check_learns(self, where: str) -> None:
        """A KD run with both weights 0 would train nothing: one error naming `where` it was set."""
        if self.alpha_kd == 0 and self.alpha_ce == 0:
            raise KdbenchError(f"{where}: alpha_kd and alpha_ce are both 0: the student would learn nothing")
