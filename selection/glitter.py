"""Glitter (Kamalloo et al., "When Chosen Wisely, More Data Is What You Need", ACL Findings 2022): of each
original's augmented candidates, learn from those the student gets most wrong at the moment.

Before training (`select`), each original keeps up to `candidates` of its pool rows: the closest to it in the
teacher's representation (the angular distance between the last layer's [CLS] states), less any at distance
0, which duplicate it. The run then trains on the originals and, per original, min(k, candidates kept)
*slots*, ranks 1 to k. When a slot of rank j comes in a batch (`choose`), a no-grad forward of the student
over its original's candidates scores each by KL(teacher || student) at the KD temperature (squared error
for regression), and the slot becomes the j-th most divergent one (`selection=random`: one drawn uniformly,
the paper's ablation). So each epoch the student sees every original once and its k currently worst
candidates. The batch's loss is the mean over its originals plus `aug_weight` times the mean over its chosen
candidates, as the official code's sum of two terms.

The parameters are the official code's (huawei-noah/Efficient-NLP, Glitter/src/glitter/glue/run.py and
modeling_glitter.py): `k` is `--num_augments`, `candidates` `--num_aug_candidates`, `aug_weight`
`--alpha_aug`. Where ours departs (it scores the candidates without gradient, then trains on the chosen
ones in the batch's own forward) is listed in docs/departures.md.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import datasets
import torch

from bench.parts.features import MODEL_INPUTS, TEACHER_LOGITS, Collator, example_lengths, longest_first
from bench.parts.fields import AT_LEAST_ONE, NON_NEGATIVE, SEED
from bench.parts.losses import kd_divergence
from bench.parts.outputs import HIDDEN_STATES
from bench.parts.registry import param
from selection.registry import register_selector
from selection.slots import SlotSelector

STATES_BATCH = 128  # rows per teacher forward of the pre-filter


@dataclass(frozen=True)
class GlitterParams:
    k: int = param(2, "slots per original: each epoch the student learns from its k most divergent candidates "
                   "(code: num_augments 2)", range=AT_LEAST_ONE)
    candidates: int = param(8, "candidates kept per original, the closest to it in the teacher's representation "
                            "(code: num_aug_candidates 8)", range=AT_LEAST_ONE)
    selection: str = param("worst", "worst: the most divergent candidates; random: drawn uniformly (the paper's "
                           "ablation)", choices=("worst", "random"))
    prefilter: bool = param(True, "keep the candidates closest to the original in the teacher's last-layer [CLS] "
                            "state, less duplicates (distance 0), as the code does; false: the first of the pool")
    aug_weight: float = param(1.0, "weight of the chosen candidates' mean loss beside the originals' (code: alpha_aug, "
                              "by default its KD weight, 1 under our kd objective)", range=NON_NEGATIVE)
    seed: int = param(0, "seed of selection=random (with the step)", range=SEED)


@register_selector("glitter", label="Glitter", params=GlitterParams,
                   description="Glitter: per original, learn from the k of its closest pool candidates the student "
                   "currently gets most wrong (needs a pool method)")
class Glitter(SlotSelector):
    def __init__(self, params: GlitterParams, context):
        super().__init__(params, context)
        self.chosen_closeness: Counter[int] = Counter()  # how close each chosen candidate was: 1 the closest
        self.scored = 0

    def keep(self, rows: datasets.Dataset, originals: dict[int, int],
             by_original: dict[int, list[int]]) -> dict[int, list[int]]:
        if self.params.prefilter:
            return self.closest(rows, originals, by_original)
        return {original: pool_rows[:self.params.candidates] for original, pool_rows in by_original.items()}

    def closest(self, rows: datasets.Dataset, original_rows: dict[int, int],
                by_original: dict[int, list[int]]) -> dict[int, list[int]]:
        """Per original, its pool rows at an angular distance above 0 from it in the teacher's last-layer [CLS]
        state, the closest `candidates` of them, closest first (an original not among `rows`, held out by
        the objective, keeps its first `candidates`)."""
        states = self.teacher_states(rows)
        kept = {}
        for original, pool_rows in by_original.items():
            if original not in original_rows:
                kept[original] = pool_rows[:self.params.candidates]
                continue
            cosine = torch.nn.functional.cosine_similarity(states[original_rows[original]][None], states[pool_rows])
            distance = torch.acos(cosine.clamp(-1.0, 1.0)) / math.pi
            order = [i for i in torch.argsort(distance, stable=True).tolist() if distance[i] > 0]
            kept[original] = [pool_rows[i] for i in order[:self.params.candidates]]
        return kept

    def teacher_states(self, rows: datasets.Dataset) -> torch.Tensor:
        """The teacher's last-layer [CLS] state of every row (rows x hidden), in batches longest first."""
        inputs = rows.select_columns([c for c in MODEL_INPUTS if c in rows.column_names])
        order, collate, states = longest_first(example_lengths(rows)), Collator(self.context.tokenizer), None
        for start in range(0, len(order), STATES_BATCH):
            chosen = order[start:start + STATES_BATCH]
            batch = collate(list(inputs.select(chosen)))
            hidden = self.context.teacher_forward({k: v.to(self.context.device) for k, v in batch.items()},
                                                  [HIDDEN_STATES]).hidden_states[-1][:, 0].float().cpu()
            states = torch.empty(len(rows), hidden.shape[-1]) if states is None else states
            states[chosen] = hidden
        return states

    def pick(self, model: torch.nn.Module, groups: list[list[int]], ranks: list[int]) -> list[int]:
        """For each slot, the rank-th most divergent candidate of its group (or, for selection=random, one drawn
        uniformly)."""
        if self.params.selection == "random":
            generator = torch.Generator().manual_seed(self.params.seed * 1_000_003 + self.context.step)
            chosen = [group[int(torch.randint(len(group), (), generator=generator))] for group in groups]
        else:
            rows = sorted({row for group in groups for row in group})
            divergence = dict(zip(rows, self.divergences(model, rows).tolist()))
            self.scored += len(rows)
            chosen = [sorted(group, key=lambda row: -divergence[row])[min(rank, len(group)) - 1]
                      for group, rank in zip(groups, ranks)]
        for group, row in zip(groups, chosen):
            self.chosen_closeness[group.index(row) + 1] += 1
        return chosen

    def divergences(self, model: torch.nn.Module, rows: list[int]) -> torch.Tensor:
        """KL(teacher || student) at the KD temperature of each candidate (squared error for regression), from a
        no-grad forward of the student as it trains (dropout on, as the code's scoring forward)."""
        features = [self.candidates[row] for row in rows]
        inputs = self.inputs(features)
        with torch.no_grad():
            student = model(**inputs).logits
        teacher = (torch.tensor([f[TEACHER_LOGITS] for f in features], device=student.device)
                   if TEACHER_LOGITS in features[0] else self.context.teacher_forward(inputs).logits)
        return kd_divergence(student, teacher, temperature=self.context.kd.temperature,
                             regression=self.context.task.is_regression)

    def report(self) -> dict:
        return {**self.slots_report(), "candidates_scored": self.scored,
                "chosen_by_closeness": {str(rank): n for rank, n in sorted(self.chosen_closeness.items())}}
