"""The learned augmentation policy (selection/policy.py, our reconstruction of learning to augment): REINFORCE
moves probability toward the operation that pays on a toy environment, also when the rewards are on the
scale of a held-out loss's change, EDA's edits are operations apart, the reward split is carved from the
training originals with their candidates, the draws are seeded, and a whole run over two pools."""

from __future__ import annotations

from types import SimpleNamespace

import datasets
import pytest
import torch

from bench.parts.context import TrainingContext
from bench.parts.errors import KdbenchError
from bench.parts.kd_config import KDConfig
from bench.parts.tasks import get_task
from bench.pipeline.runs import run_distill
from methods import load_plugins
from selection import get_selector
from tests.test_origins import TRAIN_ROWS
from tests.test_runs import distill_config


EDA_EDITS = ("sr", "ri", "rs", "rd")


def policy(operations=((), (), ()), **params):
    part = get_selector("l2a")
    context = TrainingContext(get_task("sst2"), 4, "tiny", kd=KDConfig(), sources=("original", "eda", "mlm"),
                              operations=operations)
    context.state = SimpleNamespace(global_step=0, max_steps=100, epoch=0.0)
    return part.implementation(part.parse_params(params), context)


def with_candidates(selector, sources: list[int], operations: list[int] | None = None):
    selector.candidates = [{"origin_source": source, "origin_operation": operation}
                           for source, operation in zip(sources, operations or [0] * len(sources))]
    return selector


def toy_run(selector, scale: float) -> list[float]:
    """A toy environment: each window's reward is the share of its draws that took operation `mlm`, less a
    half, times `scale`. The probability of `mlm` after each of 100 updates."""
    with_candidates(selector, [1, 1, 2, 2])
    groups, history = [[0, 1, 2, 3]] * 16, []
    for step in range(100):
        selector.context.state.global_step = step
        chosen = selector.pick(None, groups, [1] * 16)
        selector.update(scale * (sum(row >= 2 for row in chosen) / len(chosen) - 0.5))
        history.append(selector.probabilities[-1][1])
    return history


def test_reinforce_moves_the_policy_toward_the_operation_that_pays():
    """From a uniform start the policy must come to draw `mlm` almost always."""
    selector = policy(lr=2.0, baseline_decay=0.5, advantage="raw")
    history = toy_run(selector, 1.0)
    assert history[0] == pytest.approx(0.5, abs=0.15) and history[-1] > 0.9
    assert sum(history[50:]) > sum(history[:50])
    assert selector.window_actions == 0 and selector.actions["mlm"] > selector.actions["eda"]


def test_a_normalised_advantage_learns_from_rewards_on_a_held_out_losss_scale():
    """Rewards of about 0.01 (a held-out loss's change over 10 steps): the raw advantage barely moves the
    policy at the default lr, the normalised one moves it as far as rewards of 1 would."""
    assert toy_run(policy(advantage="raw"), 0.02)[-1] < 0.55
    assert toy_run(policy(advantage="normalised"), 0.02)[-1] > 0.9
    assert toy_run(policy(advantage="normalised"), 0.02) == pytest.approx(toy_run(policy(advantage="normalised"), 1.0))


def test_a_normalised_update_divides_by_the_rewards_spread():
    selector = with_candidates(policy(lr=0.5), [1, 2])
    selector.pick(None, [[0, 1]], [1])
    selector.update(0.02)  # one reward: no spread yet, no step
    assert selector.theta.tolist() == [0.0, 0.0] and selector.baseline == 0.02
    selector.actions.clear()
    selector.pick(None, [[0, 1]], [1])
    drawn = 0 if selector.actions["eda"] else 1
    selector.update(0.04)  # advantage (0.04 - 0.02) / std(0.02, 0.04) = 0.02 / 0.01 = 2
    step = torch.full((2,), -0.5)
    step[drawn] = 0.5
    assert selector.theta.tolist() == pytest.approx((0.5 * 2.0 * step).tolist())


def test_a_window_draw_gives_every_slot_one_operation_and_one_gradient():
    selector = with_candidates(policy(draw="window", lr=1.0, advantage="raw"), [1, 2, 1])
    first = selector.pick(None, [[0, 1], [2]] * 4, [1] * 8)
    action = selector.window_action
    if action == 1:  # mlm: the originals that have it take it, the others draw among theirs (eda)
        assert first == [1, 2] * 4
    else:
        assert first == [0, 2] * 4
    second = selector.pick(None, [[0, 1]] * 3, [1] * 3)  # the same window: the same operation
    assert second == [first[0]] * 3 and selector.window_actions == 1
    pi = torch.softmax(selector.theta, -1)
    selector.update(1.0)
    step = -pi
    step[action] += 1
    assert selector.theta.tolist() == pytest.approx(step.tolist()) and selector.window_action is None


def test_a_window_draw_learns_the_paying_operation():
    """Each window's reward is 1 where its operation is mlm: the policy comes to draw it almost always."""
    selector = with_candidates(policy(draw="window"), [1, 2])
    for step in range(60):
        selector.context.state.global_step = step
        selector.pick(None, [[0, 1]] * 4, [1] * 4)
        selector.update(float(selector.window_action == 1))
    assert selector.probabilities[-1][1] > 0.9


def test_edas_edits_are_operations_apart():
    operations = ((), EDA_EDITS, ())
    selector = with_candidates(policy(operations), [1, 1, 1, 2], [0, 2, 2, 0])
    assert selector.operations == ["eda:sr", "eda:ri", "eda:rs", "eda:rd", "mlm"]
    assert [selector.operation_of(row) for row in selector.candidates] == [0, 2, 2, 4]
    selector.theta = torch.tensor([-20.0, -20.0, 20.0, -20.0, -20.0])  # eda:rs almost surely
    assert selector.pick(None, [[0, 1, 2, 3]] * 8, [1] * 8) and selector.actions == {"eda:rs": 8}
    whole = with_candidates(policy(operations, split_operations=False), [1, 1, 1, 2], [0, 2, 2, 0])
    assert whole.operations == ["eda", "mlm"] and [whole.operation_of(r) for r in whole.candidates] == [0, 0, 0, 1]


def test_an_update_steps_each_logit_by_the_mean_gradient_of_the_log_policy():
    selector = with_candidates(policy(lr=0.5, advantage="raw"), [1, 2])
    selector.pick(None, [[0, 1]], [1])  # one draw at pi = (1/2, 1/2): grad log pi = onehot - (1/2, 1/2)
    drawn = 0 if selector.actions["eda"] else 1
    selector.update(2.0)  # no baseline yet: advantage 2
    expected = torch.full((2,), -0.5)
    expected[drawn] = 0.5
    assert selector.theta.tolist() == pytest.approx((0.5 * 2.0 * expected).tolist())
    assert selector.baseline == 2.0
    before, pi = selector.theta.clone(), torch.softmax(selector.theta, -1)
    selector.actions.clear()
    selector.pick(None, [[0, 1]], [1])
    drawn = 0 if selector.actions["eda"] else 1
    selector.update(1.0)  # advantage: 1 less the baseline 2
    step = -pi
    step[drawn] += 1
    assert (selector.theta - before).tolist() == pytest.approx((0.5 * -1.0 * step).tolist())
    assert selector.baseline == pytest.approx(0.9 * 2.0 + 0.1 * 1.0)


def test_a_slot_takes_a_candidate_of_an_operation_its_original_has():
    selector = with_candidates(policy(seed=3), [1, 1, 2])
    selector.theta = torch.tensor([-20.0, 20.0])  # mlm almost surely, where the original has it
    first, second = selector.pick(None, [[0, 1, 2], [0, 1]], [1, 1])
    assert first == 2 and second in (0, 1)  # the second original has eda's candidates alone
    draws = [with_candidates(policy(seed=3), [1, 1, 2]).pick(None, [[0, 1, 2]] * 30, [1] * 30) for _ in range(2)]
    assert draws[0] == draws[1] and len(set(draws[0])) == 3  # seeded; each candidate can be drawn


def test_the_reward_split_is_carved_from_the_originals_with_their_candidates():
    selector = policy(held_out=0.25, seed=1)
    rows = datasets.Dataset.from_dict({"origin_id": [0, 1, 2, 3, 0, 1, 2, 3], "origin_source": [0] * 4 + [1] * 4,
                                       "origin_side": [-1] * 4 + [0] * 4, "origin_copy": [0] * 4 + [1] * 4,
                                       "labels": [0, 1, 0, 1] * 2})
    kept = selector.select(rows)
    (carved,) = [row["origin_id"] for row in selector.reward_rows]
    assert sorted(rows.select(kept)["origin_id"]) == sorted([i for i in range(4) if i != carved] * 2)
    assert carved not in selector.groups and len(selector.reward_rows) == 1
    assert policy(held_out=0.25, seed=1).select(rows) == kept
    with pytest.raises(KdbenchError, match="held_out 1.0 of selector augment-policy leaves no training example"):
        policy(held_out=1.0).select(rows)


def test_a_policy_run_learns_over_two_pools(glue_dir, tiny_teacher, tmp_path):
    load_plugins(["examples/word_dropout.py"])
    record = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "run", method="eda+word-dropout",
                                        method_params={"num_aug": 2, "p": 0.3}, selector="l2a",
                                        selector_params={"window": 2, "held_out": 0.25}))
    measured = record["selector_info"]["measured"]
    assert record["selector_info"]["name"] == "augment-policy" and measured["held_out"] == TRAIN_ROWS // 4
    assert record["training_rows"]["original"] == TRAIN_ROWS - TRAIN_ROWS // 4
    assert set(measured["probabilities"]) == {*(f"eda:{edit}" for edit in EDA_EDITS), "word-dropout"}
    assert sum(measured["probabilities"].values()) == pytest.approx(1.0)
    assert measured["updates"] == record["throughput"]["global_steps"] // 2  # every 2 steps (step 1 scores first)
    assert sum(measured["actions"].values()) == 2 * measured["slots"]  # each slot, each of 2 epochs
