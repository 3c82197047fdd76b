"""A complete augmentation method in one file: word dropout as a pool method.

Register it with kdbench by importing this file:

    kdbench methods --plugin examples/word_dropout.py
    kdbench distill --plugin examples/word_dropout.py --method word-dropout --param p=0.2 ...

or, from an installed package, with an entry point in its pyproject.toml:

    [project.entry-points."kdbench.methods"]
    word-dropout = "my_package.word_dropout"
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bench.parts.fields import AT_LEAST_ONE, PROBABILITY
from methods.base import MethodContext, PoolAugmenter
from methods.registry import param, register_method


@dataclass(frozen=True)
class WordDropoutParams:
    p: float = param(0.1, "probability of dropping each word", range=PROBABILITY)
    copies: int = param(2, "augmented versions per original sentence", range=AT_LEAST_ONE)


@register_method("word-dropout", kind="pool", params=WordDropoutParams,
                 description="drop each word with probability p (a plugin example)")
class WordDropout(PoolAugmenter):
    def __init__(self, params: WordDropoutParams, context: MethodContext):
        self.p, self.copies = params.p, params.copies

    def augment(self, sentences: list[str], copies: list[int], seed: int) -> list[list[str]]:
        rng = random.Random(seed)  # a local generator: same seed, same pool
        return [[" ".join(w for w in sentence.split() if rng.random() >= self.p) for _ in range(n)]
                for sentence, n in zip(sentences, copies)]
