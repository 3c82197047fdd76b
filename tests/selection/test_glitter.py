"""Glitter (selection/glitter.py): the pre-filter's order by hand, the k most divergent candidates per
original on a hand-made batch, random selection seeded, the rebuilt batch and its weights, a whole run."""

from __future__ import annotations

import math
from types import SimpleNamespace

import datasets
import pytest
import torch

from bench.parts.context import Batch, TrainingContext
from bench.parts.errors import KdbenchError
from bench.parts.features import TEACHER_LOGITS
from bench.parts.kd_config import KDConfig
from bench.parts.origins import Origins
from bench.parts.tasks import get_task
from bench.pipeline.config import RunConfig
from bench.pipeline.choice import choose_parts
from bench.pipeline.runs import run_distill
from selection import get_selector
from tests.test_origins import TRAIN_ROWS
from tests.test_runs import distill_config

PAD = 0


def glitter(tokenizer_dir=None, temperature: float = 1.0, **params):
    part = get_selector("glitter")
    tokenizer = None
    if tokenizer_dir is not None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    context = TrainingContext(get_task("sst2"), 4, "tiny", tokenizer=tokenizer, kd=KDConfig(temperature=temperature))
    context.state = SimpleNamespace(global_step=3, max_steps=10, epoch=0.0)
    return part.implementation(part.parse_params(params), context)


class ByFirstToken(torch.nn.Module):
    """A student whose logits are a fixed row per first token id: each candidate's divergence is known."""

    def __init__(self, logits_by_token: dict[int, list[float]]):
        super().__init__()
        self.table = logits_by_token

    def forward(self, input_ids, **_):
        return SimpleNamespace(logits=torch.tensor([self.table[int(ids[0])] for ids in input_ids]))


def candidates(first_tokens: list[int], teacher: list[list[float]]) -> list[dict]:
    return datasets.Dataset.from_dict({"input_ids": [[t, 7, 8] for t in first_tokens],
                                       "attention_mask": [[1, 1, 1]] * len(first_tokens),
                                       "labels": [0] * len(first_tokens), TEACHER_LOGITS: teacher,
                                       "origin_source": [2] * len(first_tokens), "origin_side": [0] * len(first_tokens),
                                       "origin_copy": list(range(1, len(first_tokens) + 1)),
                                       "origin_operation": [3] * len(first_tokens)}).to_list()


def kl(teacher: list[float], student: list[float]) -> float:
    p = torch.softmax(torch.tensor(teacher), -1)
    return float((p * (p.log() - torch.log_softmax(torch.tensor(student), -1))).sum())


def test_the_prefilter_keeps_the_closest_candidates_above_distance_0_closest_first(monkeypatch):
    selector = glitter(candidates=2)
    # row 0 the original at angle 0; its candidates at 60, 0 (a duplicate), 30 and 90 degrees
    angles = [0, 60, 0, 30, 90]
    states = torch.tensor([[math.cos(math.radians(a)), math.sin(math.radians(a))] for a in angles])
    monkeypatch.setattr(selector, "teacher_states", lambda rows: states)
    kept = selector.closest(None, {5: 0}, {5: [1, 2, 3, 4]})
    assert kept == {5: [3, 1]}  # 30 degrees (distance 1/6), then 60 (1/3); the duplicate and 90 degrees out
    selector = glitter(candidates=8)
    monkeypatch.setattr(selector, "teacher_states", lambda rows: states)
    assert selector.closest(None, {5: 0}, {5: [1, 2, 3, 4]}) == {5: [3, 1, 4]}
    assert selector.closest(None, {}, {5: [1, 2, 3, 4]}) == {5: [1, 2, 3, 4]}  # an original held out: as pooled


def test_each_slot_becomes_the_candidate_of_its_rank_by_divergence(tokenizer_dir):
    selector = glitter(tokenizer_dir)
    teacher = [[2.0, 0.0]] * 5
    student = {10: [2.0, 0.0], 11: [0.0, 2.0], 12: [1.0, 0.5], 13: [-1.0, 3.0], 14: [1.5, 0.0]}
    selector.candidates = candidates([10, 11, 12, 13, 14], teacher)
    by_hand = sorted(range(5), key=lambda row: -kl(teacher[row], student[10 + row]))
    assert by_hand[:3] == [3, 1, 2]
    groups = [[0, 1, 2, 3, 4]] * 3 + [[0, 2, 4]]
    chosen = selector.pick(ByFirstToken(student), groups, [1, 2, 3, 2])
    assert chosen == [3, 1, 2, 4]  # ranks 1, 2, 3 of the whole group; rank 2 of the group without 1 and 3
    assert selector.scored == 5


def test_random_selection_draws_from_each_group_with_its_seed():
    selector = glitter(selection="random", seed=4)
    groups = [[0, 1, 2, 3, 4, 5, 6, 7]] * 40
    first = selector.pick(None, groups, [1] * 40)
    assert first == glitter(selection="random", seed=4).pick(None, groups, [1] * 40)
    assert first != glitter(selection="random", seed=5).pick(None, groups, [1] * 40)
    assert set(first) == set(range(8))  # every candidate can be drawn, whatever its divergence


def test_a_slot_is_replaced_by_its_candidate_and_the_rows_weighted(tokenizer_dir):
    selector = glitter(tokenizer_dir, aug_weight=0.5)
    selector.candidates = [{**row, "input_ids": row["input_ids"] + [102], "attention_mask": [1] * 4}
                           for row in candidates([101, 2023], [[0.5, -0.5], [1.0, 2.0]])]
    inputs = {"input_ids": torch.tensor([[101, 5, 102, PAD, PAD], [101, 6, 7, 8, 102], [101, 9, 102, PAD, PAD]]),
              "attention_mask": torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])}
    origins = Origins(torch.tensor([0, 1, 0]), torch.tensor([0, 0, 1]), torch.tensor([-1, -1, 0]), torch.tensor([0, 0, 2]),
                      torch.tensor([0, 0, 1]))
    batch = Batch(inputs, torch.tensor([1, 0, 1]), torch.tensor([[0.0, 1.0], [2.0, 0.0], [9.0, 9.0]]),
                  torch.tensor([0, 1, 7]), origins=origins)
    new = selector.with_rows(batch, {2: 1})
    assert new.inputs["input_ids"].tolist() == [[101, 5, 102, PAD, PAD], [101, 6, 7, 8, 102], [2023, 7, 8, 102, PAD]]
    assert new.inputs["attention_mask"][2].tolist() == [1, 1, 1, 1, 0]
    assert new.teacher_logits.tolist() == [[0.0, 1.0], [2.0, 0.0], [1.0, 2.0]] and new.labels.tolist() == [1, 0, 0]
    assert new.origins.copies.tolist() == [0, 0, 2] and new.example_ids.tolist() == [0, 1, 7]
    assert new.origins.sources.tolist() == [0, 0, 2] and new.origins.operations.tolist() == [0, 0, 3]  # the candidate's
    assert new.weights.tolist() == pytest.approx([0.5, 0.5, 0.5])  # originals' mean + 0.5 x the candidate's


def test_glitter_needs_a_pool_and_no_in_loop_method():
    with pytest.raises(KdbenchError, match="selector glitter chooses among a pool's rows: compose a pool method"):
        choose_parts(RunConfig(selector="glitter"))
    with pytest.raises(KdbenchError, match="which in-loop method ad2 computes its own loss over"):
        choose_parts(RunConfig(method="eda+ad2", selector="glitter"))
    choose_parts(RunConfig(method="eda", selector="glitter"))


def test_a_glitter_run_learns_from_the_originals_and_k_chosen_candidates_each(glue_dir, tiny_teacher, tmp_path,
                                                                            origins_seen):
    record = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "run", objective="origin-spy",
                                        method="eda", method_params={"num_aug": 4}, selector="glitter",
                                        selector_params={"k": 2, "candidates": 3}))
    measured = record["selector_info"]["measured"]
    assert measured["candidates_per_original"] <= 3 and measured["slots"] == record["training_rows"]["eda"]
    assert record["training_rows"]["original"] == TRAIN_ROWS
    assert measured["slots"] <= 2 * measured["originals_with_candidates"]
    assert measured["batches_choosing"] > 0 and measured["candidates_scored"] > measured["slots"]
    assert sum(measured["chosen_by_closeness"].values()) == 2 * measured["slots"]  # each slot, each of 2 epochs
    seen_pool = [row for row in origins_seen["rows"] if row[2] == 1]
    assert len(seen_pool) == 2 * measured["slots"]
