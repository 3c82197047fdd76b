"""`augment-policy` (alias `l2a`): a learned augmentation policy for data-scarce distillation, **the suite's
reconstruction** of "Learning to Augment for Data-Scarce Domain BERT Knowledge Distillation" (Feng et al., AAAI
2021), whose paper gives an abstract's worth of method and no code.

The paper samples augmented text near the target data and refines the augmentation policy with a reinforced
selector driven by the student's performance. Its generator and the selector's state, action, reward and RL
algorithm are not public, so each is our guess, and a parameter where it can be:

- operations: the run's pool methods (`--method eda+backtranslation+mlm`), each a source of candidates, and
  within a method of several operations each of them (EDA's four edits: `eda:sr`, `eda:ri`, `eda:rs`, `eda:rd`;
  `split_operations=false` keeps EDA one);
- policy: a softmax over the operations, with no state;
- action: for each slot row of a batch (k per original, as Glitter's), an operation drawn from the policy among
  those that made a candidate for its original, then one of that operation's candidates drawn uniformly
  (`draw=slot`); or one operation drawn per window of steps, which every slot whose original has it takes
  (`draw=window`: each reward then follows one action, where under `slot` it follows some 300 draws whose
  mean score-function gradient is near 0);
- reward: every `window` steps, the change since the last update of the student's score on a split carved from
  the training set (`held_out` of the originals, never trained on; never the dev set): minus its mean label
  loss (`reward=loss`) or its accuracy;
- update: REINFORCE with a moving-average baseline, theta += lr A mean(grad log pi(action)) over the window's
  actions, where the advantage A is the reward less the baseline, divided by the spread (standard deviation)
  of the rewards so far (`advantage=normalised`; `raw` leaves it on the score's scale, where a change of the
  held-out loss over 10 steps is about 0.01 and the policy barely moves: docs/results.md).

Not built: candidates drawn from a second, resource-rich task's text (the paper's source domains).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import datasets
import numpy as np
import torch

from bench.parts.errors import KdbenchError
from bench.parts.fields import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, POSITIVE_FRACTION, PROBABILITY, SEED
from bench.parts.losses import label_loss
from bench.parts.origins import ORIGIN_OPERATION, ORIGIN_SOURCE
from bench.parts.registry import param
from selection.registry import register_selector
from selection.slots import SlotSelector

SCORE_BATCH = 64  # reward-split rows per forward


@dataclass(frozen=True)
class PolicyParams:
    k: int = param(1, "slots per original: augmented rows learnt from per original and epoch", range=AT_LEAST_ONE)
    held_out: float = param(0.1, "share of the originals carved out as the reward split (never trained on)",
                            range=POSITIVE_FRACTION)
    window: int = param(10, "steps between policy updates", range=AT_LEAST_ONE)
    lr: float = param(0.5, "learning rate of the policy's logits", range=POSITIVE)
    baseline_decay: float = param(0.9, "decay of the rewards' moving average, subtracted from each reward",
                                  range=PROBABILITY)
    reward: str = param("loss", "the score whose change is the reward: minus the reward split's mean label loss, "
                        "or its accuracy (classification)", choices=("loss", "accuracy"))
    advantage: str = param("normalised", "the reward less its moving average, divided by the rewards' spread so "
                           "far (normalised) or not (raw)", choices=("normalised", "raw"))
    draw: str = param("slot", "slot: an operation drawn for each slot row among its original's; window: one per "
                      "window of steps, taken by every slot whose original has it (the others draw among theirs)",
                      choices=("slot", "window"))
    split_operations: bool = param(True, "a pool method's own operations (EDA's four edits) are operations of the "
                                   "policy apart; false: each pool method is one")
    aug_weight: float = param(1.0, "weight of the chosen candidates' mean loss beside the originals'",
                              range=NON_NEGATIVE)
    seed: int = param(0, "seed of the reward split and of the draws", range=SEED)


@register_selector("augment-policy", aliases=("l2a",), label="learned policy", params=PolicyParams,
                   description="a policy over the composed pool methods and their operations (EDA's edits), trained "
                   "by REINFORCE on the student's score on a split of the training set (learning to augment, our "
                   "reconstruction)")
class AugmentPolicy(SlotSelector):
    def __init__(self, params: PolicyParams, context):
        super().__init__(params, context)
        # the operations, by (source, the source's operation): the run builds parts after its pools
        self.operations: list[str] = []
        self.index: dict[tuple[int, int], int] = {}
        for source, name in enumerate(context.sources[1:], start=1):
            edits = context.operations[source] if params.split_operations else ()
            for operation, edit in enumerate(edits or (None,)):
                self.index[source, operation] = len(self.operations)
                self.operations.append(f"{name}:{edit}" if edit else name)
        self.theta = torch.zeros(len(self.operations))
        self.window_grad, self.window_actions = torch.zeros(len(self.operations)), 0
        self.window_action: int | None = None  # draw=window: this window's operation
        self.made_by: list[int] | None = None  # each candidate's operation
        self.baseline: float | None = None
        self.last_score: float | None = None
        self.rewards: list[float] = []
        self.probabilities: list[list[float]] = []  # after each update
        self.actions: Counter[str] = Counter()
        self.reward_rows: list[dict] = []
        context.on_step(self.after_step)

    def carve(self, rows: datasets.Dataset, originals: dict[int, int]) -> set[int]:
        n = max(1, round(self.params.held_out * len(originals)))
        if n >= len(originals):
            raise KdbenchError(f"held_out {self.params.held_out} of selector augment-policy leaves no training "
                               f"example out of {len(originals)}")
        ids = sorted(originals)
        carved = sorted(np.random.default_rng(self.params.seed).choice(ids, size=n, replace=False).tolist())
        self.reward_rows = rows.select([originals[i] for i in carved]).to_list()
        return set(carved)

    def probabilities_of(self, available: list[int]) -> torch.Tensor:
        """The policy over the operations in `available` (indices into `operations`)."""
        return torch.softmax(self.theta[available], -1)

    def operation_of(self, row: dict) -> int:
        """The operation (an index into `operations`) that made a candidate row."""
        source = row[ORIGIN_SOURCE]
        split = (source, 1) in self.index  # the source's operations are the policy's apart
        return self.index[source, row[ORIGIN_OPERATION] if split else 0]

    def pick(self, model: torch.nn.Module, groups: list[list[int]], ranks: list[int]) -> list[int]:
        if self.made_by is None:  # the candidates are fixed once selected
            self.made_by = [self.operation_of(row) for row in self.candidates]
        generator = torch.Generator().manual_seed(self.params.seed * 1_000_003 + self.context.step)
        per_window = self.params.draw == "window"
        if per_window and self.window_action is None:
            self.window_action = self._draw(list(range(len(self.operations))), generator)
        chosen = []
        for group in groups:
            available = sorted({self.made_by[row] for row in group})
            if per_window and self.window_action in available:
                action = self.window_action
            else:  # drawn for the slot; under draw=window, only where its original lacks the window's operation
                action = (available[int(torch.multinomial(self.probabilities_of(available), 1, generator=generator))]
                          if per_window else self._draw(available, generator))
            self.actions[self.operations[action]] += 1
            rows = [row for row in group if self.made_by[row] == action]
            chosen.append(rows[int(torch.randint(len(rows), (), generator=generator))])
        return chosen

    def _draw(self, available: list[int], generator: torch.Generator) -> int:
        """An operation drawn from the policy over `available`, its score-function gradient added to the window's."""
        probabilities = self.probabilities_of(available)
        action = available[int(torch.multinomial(probabilities, 1, generator=generator))]
        self.window_grad[available] -= probabilities  # grad of log pi(action) in the logits: onehot - pi
        self.window_grad[action] += 1
        self.window_actions += 1
        return action

    def after_step(self, context) -> None:
        if context.step % self.params.window and self.last_score is not None:
            return
        score = self.score(context.unwrap(context.model))
        if self.last_score is not None and self.window_actions:
            self.update(score - self.last_score)
        self.last_score = score

    def update(self, reward: float) -> None:
        """One REINFORCE step on the window's actions, then a new window."""
        self.rewards.append(reward)
        advantage = reward - (self.baseline if self.baseline is not None else 0.0)
        if self.params.advantage == "normalised":  # no step until the rewards have a spread
            spread = float(np.std(self.rewards))
            advantage = advantage / spread if spread > 0 else 0.0
        self.theta += self.params.lr * advantage * self.window_grad / self.window_actions
        decay = self.params.baseline_decay
        self.baseline = reward if self.baseline is None else decay * self.baseline + (1 - decay) * reward
        self.window_grad.zero_()
        self.window_actions, self.window_action = 0, None
        self.probabilities.append(self.probabilities_of(list(range(len(self.operations)))).tolist())

    def score(self, model: torch.nn.Module) -> float:
        """The student's score on the reward split: minus its mean label loss, or its accuracy."""
        was_training = model.training
        model.eval()
        scores = []
        with torch.no_grad():
            for start in range(0, len(self.reward_rows), SCORE_BATCH):
                rows = self.reward_rows[start:start + SCORE_BATCH]
                logits = model(**self.inputs(rows)).logits
                labels = torch.tensor([row["labels"] for row in rows], device=logits.device)
                if self.params.reward == "accuracy" and not self.context.task.is_regression:
                    scores += (logits.argmax(-1) == labels).float().tolist()
                else:
                    scores += (-label_loss(logits, labels, regression=self.context.task.is_regression)).tolist()
        model.train(was_training)
        return float(np.mean(scores))

    def state_dict(self) -> dict:
        return {"theta": self.theta.clone(), "window_grad": self.window_grad.clone(),
                "window_actions": self.window_actions, "window_action": self.window_action, "baseline": self.baseline,
                "last_score": self.last_score,
                "rewards": list(self.rewards), "probabilities": list(self.probabilities), "actions": dict(self.actions)}

    def load_state_dict(self, state: dict) -> None:
        self.theta, self.window_grad = state["theta"].clone(), state["window_grad"].clone()
        self.window_actions, self.baseline, self.last_score = (state["window_actions"], state["baseline"],
                                                               state["last_score"])
        self.window_action = state["window_action"]
        self.rewards, self.probabilities = list(state["rewards"]), list(state["probabilities"])
        self.actions = Counter(state["actions"])

    def report(self) -> dict:
        final = self.probabilities_of(list(range(len(self.operations)))).tolist()
        return {**self.slots_report(), "held_out": len(self.reward_rows),
                "updates": len(self.rewards), "reward_mean": float(np.mean(self.rewards)) if self.rewards else None,
                "probabilities": dict(zip(self.operations, final)), "actions": dict(self.actions),
                "probabilities_by_update": self.probabilities[::max(1, len(self.probabilities) // 20)]}
