"""What the harness hands a method, and the two shapes a method takes.

- A **pool** method (`PoolAugmenter`) turns sentences into augmented sentences before training.
  The harness (`bench/pools.py`) calls it on the training set, one side of a sentence pair at a
  time, caches the pool, labels it with the teacher once, and trains on originals plus pool.
- An **in-loop** method (`InLoopMethod`) replaces the KD loss of a training step, e.g. AD2's
  adversarial perturbation of the input embeddings.

Both are built as `Implementation(params, context)`.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from bench.losses import KDObjective
from bench.tasks import TaskSpec


@dataclass
class MethodContext:
    """The run a method serves: task, training-set size, teacher (name and loaded model), tokenizer,
    cache folder and device. `teacher_model` is the frozen fine-tuned teacher, in eval mode."""

    task: TaskSpec
    train_size: int
    teacher: str
    teacher_model: PreTrainedModel | None = None
    tokenizer: PreTrainedTokenizerBase | None = None
    cache_dir: str | None = None
    device: torch.device = torch.device("cpu")


class PoolAugmenter:
    """Base of pool methods: set `copies` (augmented versions per original) and implement `augment`."""

    copies: int = 1

    def augment(self, sentences: list[str], copies: list[int], seed: int) -> list[list[str]]:
        """Up to `copies[i]` augmented versions of each `sentences[i]`, the same for the same `seed`.
        Versions identical to the input or to each other are dropped by the harness."""
        raise NotImplementedError


class InLoopMethod:
    """Base of in-loop methods: `loss` replaces the harness's KD loss on each training batch."""

    def loss(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor], teacher_logits: torch.Tensor,
             objective: KDObjective) -> torch.Tensor:
        """The training loss of one batch. `model` may be wrapped for data parallelism; `inputs` are
        the tokenised batch (input_ids, attention_mask, ...); `objective` is the run's KD loss with
        its temperature, weights and the batch's hard labels bound."""
        raise NotImplementedError

    def report(self) -> dict:
        """What the method measured over the run's training batches, for the run record (`in_loop`);
        a `warning` entry is also printed when the run ends. Empty by default."""
        return {}


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
