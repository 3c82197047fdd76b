"""Selectors that fill slots: the run trains on the originals and, per original, up to k slot rows, each of
which becomes one of that original's pool candidates when its batch comes (Glitter, the augmentation policy).

`SlotSelector.select` groups every original's candidates (`keep` may filter and order them, `carve` may hold
originals out of training) and returns the originals plus the slots; `choose` asks `pick` which candidate
each slot of the batch becomes and rebuilds the batch with them, weighted so that its loss is the originals'
mean plus `aug_weight` times the candidates' mean (the official Glitter code's sum of two terms).
"""

from __future__ import annotations

import time
from collections import defaultdict

import datasets
import numpy as np
import torch

from bench.parts.context import Batch
from bench.parts.features import MODEL_INPUTS, TEACHER_LOGITS, Collator
from bench.parts.origins import ORIGIN_COPY, ORIGIN_ID, ORIGIN_OPERATION, ORIGIN_SIDE, ORIGIN_SOURCE, Origins
from selection.base import Selector


class SlotSelector(Selector):
    """Subclasses implement `pick`; their parameters have `k` (slots per original) and `aug_weight`."""

    needs_pool = True
    chooses_each_step = True

    def __init__(self, params, context):
        super().__init__(params, context)
        # the kept candidates' rows, grouped by original, as Python rows: each step reads a few of them, which a
        # dataset would copy through a `select` every time
        self.candidates: list[dict] = []
        self.groups: dict[int, list[int]] = {}  # original's id -> its candidates' rows in `self.candidates`
        self.slot_rank: dict[tuple[int, int, int], int] = {}  # a slot row's (original, side, copy) -> its rank
        self.batches = 0
        self.choosing_s = 0.0

    def select(self, rows: datasets.Dataset) -> list[int]:
        sources, ids = np.asarray(rows[ORIGIN_SOURCE]), np.asarray(rows[ORIGIN_ID])
        originals = {int(ids[row]): int(row) for row in np.flatnonzero(sources == 0)}
        carved = self.carve(rows, originals)
        by_original: dict[int, list[int]] = defaultdict(list)
        for row in np.flatnonzero(sources != 0):
            if int(ids[row]) not in carved:
                by_original[int(ids[row])].append(int(row))
        kept = {original: pool_rows for original, pool_rows in sorted(self.keep(rows, originals, by_original).items())
                if pool_rows}
        self.candidates = rows.select([row for pool_rows in kept.values() for row in pool_rows]).to_list()
        sides, copies, start, slots = rows[ORIGIN_SIDE], rows[ORIGIN_COPY], 0, []
        for original, pool_rows in kept.items():
            self.groups[original] = list(range(start, start + len(pool_rows)))
            start += len(pool_rows)
            for rank, row in enumerate(pool_rows[:self.params.k], start=1):  # a slot is one of them, replaced
                self.slot_rank[original, sides[row], copies[row]] = rank
                slots.append(row)
        return [row for original, row in originals.items() if original not in carved] + slots

    def carve(self, rows: datasets.Dataset, originals: dict[int, int]) -> set[int]:
        """The ids of originals held out of training, with their candidates (default: none)."""
        return set()

    def keep(self, rows: datasets.Dataset, originals: dict[int, int],
             by_original: dict[int, list[int]]) -> dict[int, list[int]]:
        """Per original (by id; `originals` maps ids to their rows), the candidate rows it keeps, in order
        (default: all its pool rows)."""
        return by_original

    def pick(self, model: torch.nn.Module, groups: list[list[int]], ranks: list[int]) -> list[int]:
        """For each slot of a batch (its original's candidates, its rank), the candidate it becomes."""
        raise NotImplementedError

    def choose(self, model: torch.nn.Module, batch: Batch) -> Batch:
        origins = batch.origins
        slots = torch.nonzero(origins.sources != 0).flatten().tolist() if origins is not None else []
        if not slots:
            return batch
        started = time.perf_counter()
        keys = [(int(origins.ids[s]), int(origins.sides[s]), int(origins.copies[s])) for s in slots]
        chosen = self.pick(model, [self.groups[original] for original, _, _ in keys], [self.slot_rank[k] for k in keys])
        self.batches += 1
        new = self.with_rows(batch, dict(zip(slots, chosen)))
        self.choosing_s += time.perf_counter() - started
        return new

    def inputs(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        """Padded model inputs of rows, on the run's device."""
        batch = Collator(self.context.tokenizer)([{k: row[k] for k in MODEL_INPUTS if k in row} for row in rows])
        return {k: v.to(self.context.device) for k, v in batch.items()}

    def with_rows(self, batch: Batch, replaced: dict[int, int]) -> Batch:
        """`batch` with each slot (by position) replaced by its chosen candidate (by row), padded anew, and the
        rows weighted: the originals' mean plus `aug_weight` times the chosen candidates' mean."""
        mask = batch.inputs["attention_mask"]
        rows, labels, teacher, origins = [], [], [], batch.origins
        sources, sides, copies, operations = (origins.sources.clone(), origins.sides.clone(), origins.copies.clone(),
                                              origins.operations.clone())
        for position in range(len(mask)):
            if position in replaced:
                row = self.candidates[replaced[position]]
                sources[position], sides[position], copies[position], operations[position] = (
                    row[ORIGIN_SOURCE], row[ORIGIN_SIDE], row[ORIGIN_COPY], row[ORIGIN_OPERATION])
                rows.append({k: row[k] for k in MODEL_INPUTS if k in row})
                labels.append(row["labels"])
                teacher.append(row.get(TEACHER_LOGITS))
            else:
                length = int(mask[position].sum())
                rows.append({k: batch.inputs[k][position, :length].tolist() for k in MODEL_INPUTS if k in batch.inputs})
                labels.append(batch.labels[position].item() if batch.labels is not None else None)
                teacher.append(batch.teacher_logits[position].tolist() if batch.teacher_logits is not None else None)
        device = mask.device
        inputs = {k: v.to(device) for k, v in Collator(self.context.tokenizer)(rows).items()}
        originals = len(mask) - len(replaced)
        weights = torch.tensor([self.params.aug_weight / len(replaced) if position in replaced else 1 / originals
                                for position in range(len(mask))], device=device)
        return Batch(inputs, torch.tensor(labels, dtype=batch.labels.dtype, device=device) if batch.labels is not None
                     else None,
                     torch.tensor(teacher, dtype=torch.float32, device=device) if batch.teacher_logits is not None
                     else None,
                     batch.example_ids, origins=Origins(origins.ids, sources, sides, copies, operations),
                     weights=weights)

    def slots_report(self) -> dict:
        """What every slot selector measured: candidates per original, slots, batches chosen for, seconds."""
        sizes = [len(group) for group in self.groups.values()]
        return {"originals_with_candidates": len(sizes),
                "candidates_per_original": float(np.mean(sizes)) if sizes else 0.0, "slots": len(self.slot_rank),
                "batches_choosing": self.batches, "choosing_s": round(self.choosing_s, 3)}
