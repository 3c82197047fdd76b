"""Augmentation throughput of the pool methods, in sentences per second (pytest-benchmark; `tox -e bench`).

Each method augments the same 256 SST-2 training sentences into 4 versions each, through the
harness's pool generation (chunking, seeding, de-duplication included); model loading is done
once, outside the timed part. The masked-LM generator is MiniLM with a fresh MLM head.
"""

from __future__ import annotations

import os

import pytest

from bench.parts.models import MINILM
from bench.parts.tasks import get_task
from bench.pipeline.data import load_task
from bench.pipeline.pools import generate_pool
from methods import get_method
from methods.base import MethodContext
from tests.benchmarks.test_mlm_batching import minilm_generator
from tests.conftest import write_sst2

SENTENCES, COPIES = 256, 4
THROUGHPUT: dict[str, float] = {}  # sentences per second, read by conftest's summary


@pytest.fixture(scope="module")
def sentences(tmp_path_factory):
    data_dir = os.environ.get("KDBENCH_GLUE_DIR") or write_sst2(tmp_path_factory.mktemp("glue"), n_train=SENTENCES)
    return load_task("sst2", data_dir=data_dir, max_train_examples=SENTENCES, seed=0).splits["train"]


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> str:
    return minilm_generator(tmp_path_factory.mktemp("generator"))


@pytest.mark.parametrize("method, params", [
    ("eda", {"num_aug": COPIES}),
    ("backtranslation", {"engine": "apertium", "copies": COPIES}),
    ("mlm", {"n_a": COPIES}),
])
def test_augmentation_throughput(benchmark, sentences, generator, method, params):
    spec = get_method(method)
    if method == "mlm":
        params = {**params, "generator": generator}
    context = MethodContext(task=get_task("sst2"), train_size=len(sentences), teacher=MINILM)
    augmenter = spec.implementation(spec.parse_params(params), context)
    benchmark.group = f"pool generation: {SENTENCES} SST-2 sentences x {COPIES} versions"
    benchmark.pedantic(generate_pool, args=(augmenter, sentences), kwargs={"seed": 0}, rounds=2, warmup_rounds=0)
    THROUGHPUT[method] = SENTENCES / benchmark.stats.stats.mean
    benchmark.extra_info["sentences_per_s"] = THROUGHPUT[method]
