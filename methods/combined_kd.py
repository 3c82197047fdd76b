"""Combined-KD (Li et al., Findings EMNLP 2021): MATE-KD's generator with Annealing-KD, a named composition.

After the official code (huawei-noah/Efficient-NLP, Combined-KD/): the generator of `mate-kd`, here
maximising the squared error between student and teacher logits, and the `annealing` objective, so
phase 1 learns from `MSE(z_S, z_T tau / tau_max)` on the original and the rewritten text and phase 2
from hard labels. A run with this method takes the `annealing` objective (bench.config.PAIRED_OBJECTIVES).

The released code has two scripts that disagree: the RoBERTa one (Combined_KD.py) uses the rewritten
text's term in phase 1, `0.5 [MSE(S(x~), T(x~) s) + MSE(S(x), T(x) s)]`; the BERT one computes it and
leaves it out, training on `0.5 CE + 0.5 MSE(S(x), T(x) s)` instead. We follow the RoBERTa script (the
paper's method); the generator keeps its steps in phase 2, as in both scripts, where the rewritten text
no longer enters the loss (the objective's phase 2 has no teacher term).
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.mate_kd import DIVERGENCES, MateKD, MateKDParams
from methods.registry import param, register_method


@dataclass(frozen=True)
class CombinedKDParams(MateKDParams):
    divergence: str = param("mse", "what the generator maximises: mse of logits (Combined-KD's), ce (MATE-KD's) "
                                   "or kl", choices=DIVERGENCES)


@register_method("combined-kd", label="Combined-KD", kind="in-loop", params=CombinedKDParams,
                 description="Combined-KD: MATE-KD's generator maximising the MSE of logits, with the annealing "
                             "objective (phase 1 on original and rewritten text, as the RoBERTa script)")
class CombinedKD(MateKD):
    name = "combined-kd"
