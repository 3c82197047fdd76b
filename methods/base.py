"""What the harness hands a method, and the two shapes a method takes.

- A **pool** method (`PoolAugmenter`) turns sentences into augmented sentences before training.
  The harness (`bench/pipeline/pools.py`) calls it on the training set, one side of a sentence pair at a
  time, caches the pool, labels it with the teacher once, and trains on originals plus pool.
- An **in-loop** method (`InLoopMethod`) computes the loss of a training step with the run's KD
  objective, e.g. AD2's adversarial perturbation of the input embeddings scored on both views.

Both are built as `Implementation(params, context)`, the context being the run's `TrainingContext`
(bench/parts/context.py).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch

from bench.parts.base import TrainingPart
from bench.parts.context import Batch, TrainingContext
from objectives.base import Objective


MethodContext = TrainingContext  # what a method is built with (the name methods written earlier use)
MAKES_POOL, CHANGES_STEP = "makes_pool", "changes_step"  # what a method does (`Method.capabilities`)


class Method(TrainingPart):
    """Base of every augmentation method (the registry checks it). `capabilities` says what it does:
    makes a pool of examples before training, changes the training step, or nothing (plain KD). A run
    composes methods of different capabilities (`--method eda+ad2`, bench/pipeline/choice.py)."""

    capabilities: frozenset[str] = frozenset()


class PoolAugmenter(Method):
    """Base of pool methods: set `copies` (augmented versions per original) and implement `augment`."""

    capabilities = frozenset({MAKES_POOL})
    copies: int = 1
    operations: tuple[str, ...] = ()  # the names of its operations where it has several (EDA's four edits)

    def augment(self, sentences: list[str], copies: list[int], seed: int) -> list[list[str]]:
        """Up to `copies[i]` augmented versions of each `sentences[i]`, the same for the same `seed`.
        Versions identical to the input or to each other are dropped by the harness."""
        raise NotImplementedError

    def augment_tagged(self, sentences: list[str], copies: list[int], seed: int) -> list[list[tuple[str, int]]]:
        """`augment`'s versions, each with the index into `operations` of the operation that made it (0 where
        the method is one operation): a method with several overrides this instead of `augment`."""
        return [[(version, 0) for version in versions] for versions in self.augment(sentences, copies, seed)]


class InLoopMethod(Method):
    """Base of in-loop methods: `loss` is the training loss of each KD batch."""

    capabilities = frozenset({CHANGES_STEP})

    def loss(self, model: torch.nn.Module, batch: Batch, objective: Objective) -> torch.Tensor:
        """The training loss of one batch (a scalar). `model` may be wrapped for data parallelism (the
        context's `unwrap` gives the student); `batch` holds the inputs, labels and teacher logits;
        `objective` is the run's KD objective: score the clean batch with `objective.loss` and every
        other view with `objective.view_loss`, so the method composes with any objective."""
        raise NotImplementedError


@contextlib.contextmanager
def seeded_global_rngs(seed: int) -> Iterator[None]:
    """Seed Python's, NumPy's and torch's global generators for the block, then restore them.

    Libraries such as nlpaug draw from the global generators; this makes them deterministic
    without disturbing the training run's own random state."""
    states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.set_rng_state(states[2])
