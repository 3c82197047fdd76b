"""Combined-KD (Li et al., Findings EMNLP 2021): MATE-KD's generator with Annealing-KD, a named composition.

After the official code (huawei-noah/Efficient-NLP, Combined-KD/Combined_KD.py, the RoBERTa script): the
generator of `mate-kd`, here maximising the squared error between student and teacher logits, and the
`annealing` objective, so phase 1 learns from `0.5 [MSE(S(x~), T(x~) s) + MSE(S(x), T(x) s)]` (s the
annealed scale) and phase 2 from hard labels. As that script runs it, the objective takes tau_max 10 and
30 of 40 epochs in phase 1 (declared at its registration below), and phase 2 starts afresh from the
best phase-1 weights with new optimisers, the generator's included (the `annealing` objective's
`phase2=restart`); the generator's weights carry over and it keeps its steps in phase 2, where the
rewritten text no longer enters the loss. A run with this method takes the `annealing` objective.

The released code has two scripts that disagree: the BERT one (Combined_KD_bert.py) computes the
rewritten text's term and leaves it out, training on `0.5 CE + 0.5 MSE(S(x), T(x) s)` instead. We follow
the RoBERTa script (the paper's method). Where the optimisers, clipping, warm-up and the trained
student's dropout differ from the script: docs/departures.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.mate_kd import DIVERGENCES, MateKD, MateKDParams
from methods.registry import param, register_method


@dataclass(frozen=True)
class CombinedKDParams(MateKDParams):
    divergence: str = param("mse", "what the generator maximises: mse of logits (Combined-KD's), ce (MATE-KD's) "
                                   "or kl", choices=DIVERGENCES)
    mean_of_views: bool = param(True, "in phase 1 the student's loss is 0.5 [MSE(x) + MSE(x~)] (the RoBERTa "
                                      "script's), not their sum")


# the RoBERTa script's --max_temperature 10, and 30 of its 40 epochs in phase 1
@register_method("combined-kd", label="Combined-KD", kind="in-loop", params=CombinedKDParams,
                 objective=("annealing", {"tau_max": 10, "phase1_fraction": 0.75}),
                 description="Combined-KD: MATE-KD's generator maximising the MSE of logits, with the annealing "
                             "objective (tau_max 10, phase 1 = 30 of 40 epochs, on the mean of the original and "
                             "rewritten text's terms, as the RoBERTa script)")
class CombinedKD(MateKD):
    name = "combined-kd"
