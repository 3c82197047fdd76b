"""Masked-LM candidate generation, batched vs one forward per word (pytest-benchmark; `tox -e bench`).

Both compute the same candidates with the same model (the real MiniLM encoder with a masked-LM
head) for the same 64 SST-2 sentences (set KDBENCH_GLUE_DIR for real ones; else synthetic):
  batched    `MaskedLMGeneration.candidates`: one row per masked word, rows of many sentences
             batched by length, vocabulary projection at the masked positions only (plus the
             GloVe neighbours of multi-piece words, one matrix product)
  per-word   TinyBERT's way: one forward per word, logits at every position
Target: batched at least 10x faster. The ratio is printed at the end of the run (conftest.py);
the augmentation throughput of every pool method is in test_augmentation.py.

`test_profile` says where the time goes and what bounds the ratio: the floating-point operations
each way needs (counted by torch's FlopCounterMode on the same sentences), the rate each achieves
(operations / its measured time), and this machine's rate on one large float32 matrix product (the
most its cores do). Speed-up = operations saved x rate gained; every masked word needs its own pass
over its sentence either way, so batching saves only the vocabulary projection at unmasked positions.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModelForMaskedLM

from bench.parts.models import MINILM, load_tokenizer, resolve_model
from bench.parts.tasks import get_task
from bench.pipeline.data import load_task
from methods.base import MethodContext
from methods.mlm import MaskedLMGeneration, MLMParams
from tests.conftest import write_sst2
from tests.methods.test_mlm import candidates_by_word, one_forward_per_word

SENTENCES, TOP_K = 64, 15
RESULTS: dict[str, float] = {}  # mean seconds per round, read by conftest's summary
PROFILE: dict[str, float] = {}  # floating-point operations and rates, read by conftest's summary


def minilm_generator(folder: Path) -> str:
    """MiniLM with a new, untrained masked-LM head: poor candidates, but the real cost of finding them."""
    AutoModelForMaskedLM.from_pretrained(resolve_model(MINILM)).save_pretrained(folder)
    load_tokenizer(MINILM).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlm-bench")
    data_dir = os.environ.get("KDBENCH_GLUE_DIR") or write_sst2(root / "glue", n_train=SENTENCES)
    sentences = load_task("sst2", data_dir=data_dir, max_train_examples=SENTENCES, seed=0).splits["train"]["text_a"]
    method = MaskedLMGeneration(MLMParams(generator=minilm_generator(root / "generator")),
                                MethodContext(get_task("sst2"), 0, "t"))
    return method, sentences


def per_word(method: MaskedLMGeneration, sentences: list[str]) -> list[dict[int, list[str]]]:
    return [one_forward_per_word(method.model, method.tokenizer, s, TOP_K) for s in sentences]


@pytest.mark.parametrize("kind", ["batched", "per-word"])
def test_candidate_generation(benchmark, setup, kind):
    method, sentences = setup
    benchmark.group = f"masked-LM candidates of {SENTENCES} SST-2 sentences, MiniLM, top {TOP_K}"
    run = method.candidates if kind == "batched" else lambda s: per_word(method, s)
    result = benchmark.pedantic(run, args=(sentences,), rounds=3, warmup_rounds=1)
    RESULTS[kind] = benchmark.stats.stats.mean
    if kind == "per-word":  # the same candidates, word for word
        for sentence, reference in zip(sentences, result):
            found = candidates_by_word(method, sentence)
            assert {w: found[w] for w in reference} == reference



def test_profile(benchmark, setup):
    """Operations each way (counted), the rate each achieved in the timed rounds above, and the peak:
    the rate of one large float32 matrix product, timed here."""
    method, sentences = setup
    if not {"batched", "per-word"} <= set(RESULTS):
        pytest.skip("needs both timings: run the whole module")
    for kind, run in (("batched", method.candidates), ("per-word", lambda s: per_word(method, s))):
        with FlopCounterMode(display=False) as counter:
            run(sentences)
        PROFILE[f"{kind} GFLOP"] = counter.get_total_flops() / 1e9
        PROFILE[f"{kind} GFLOP/s"] = PROFILE[f"{kind} GFLOP"] / RESULTS[kind]
    benchmark.group = "float32 matrix product 2048 x 2048 x 2048 (this machine's peak rate)"
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    benchmark.pedantic(torch.mm, args=(a, b), rounds=5, warmup_rounds=1)
    PROFILE["peak GFLOP/s"] = 2 * 2048**3 / benchmark.stats.stats.mean / 1e9
    assert PROFILE["per-word GFLOP"] > PROFILE["batched GFLOP"]
