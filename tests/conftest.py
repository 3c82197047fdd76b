"""Shared fixtures: a tiny random BERT built in the test, small GLUE folders, a Ctrl-C in epoch 2,
Optuna storages (SQLite, and a new database on the PostgreSQL server `.ci/run` starts), worker
processes read to their end under a deadline, and ASO with fewer iterations for report tests.

The tiny model uses the offline MiniLM's tokenizer (a real WordPiece vocabulary) with a 2-layer,
32-wide encoder, so every harness test runs in seconds on a CPU.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertForSequenceClassification, BertModel

from bench.parts.models import MINILM, resolve_model
from bench.pipeline.training import DistillationTrainer

POSITIVE = ["good", "great", "lovely", "charming", "fine", "superb"]
NEGATIVE = ["bad", "awful", "dull", "boring", "poor", "weak"]
FILLER = ["the", "film", "story", "acting", "was", "really", "quite", "a", "plot"]


def tiny_config(**overrides) -> BertConfig:
    values = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=128)
    return BertConfig(**{**values, **overrides})


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tokenizer")
    AutoTokenizer.from_pretrained(resolve_model(MINILM)).save_pretrained(folder)
    return folder


def _tiny_model(folder: Path, tokenizer_dir: Path, model_class, seed: int, **config) -> Path:
    """A tiny random BERT of `model_class`, initialised under `seed`, saved with the real tokenizer."""
    import torch

    torch.manual_seed(seed)
    model_class(tiny_config(**config)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory, tokenizer_dir) -> Path:
    """A 'pre-trained' encoder folder without a task head, like a hub checkpoint."""
    return _tiny_model(tmp_path_factory.mktemp("tiny-encoder"), tokenizer_dir, BertModel, seed=0)


@pytest.fixture(scope="session")
def tiny_generator(tmp_path_factory, tokenizer_dir) -> Path:
    """A tiny masked LM with a (random) trained head."""
    return _tiny_model(tmp_path_factory.mktemp("tiny-mlm"), tokenizer_dir, BertForMaskedLM, seed=0)


def _tiny_classifier(folder: Path, tokenizer_dir: Path, num_labels: int) -> Path:
    return _tiny_model(folder, tokenizer_dir, BertForSequenceClassification, seed=1, num_labels=num_labels)


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory, tokenizer_dir) -> Path:
    """A binary classifier folder standing in for a fine-tuned teacher."""
    return _tiny_classifier(tmp_path_factory.mktemp("tiny-teacher"), tokenizer_dir, num_labels=2)


@pytest.fixture(scope="session")
def tiny_regression_teacher(tmp_path_factory, tokenizer_dir) -> Path:
    """A one-output regressor folder standing in for a fine-tuned STS-B teacher."""
    return _tiny_classifier(tmp_path_factory.mktemp("tiny-regressor"), tokenizer_dir, num_labels=1)


SENTENCE_WORDS = (1, 38)  # each word is one token: with [CLS] and [SEP], sentences of 3 to 40 tokens
PAIR_SIDE_WORDS = (1, 18)  # with [CLS] and two [SEP], pairs of 5 to 39 tokens


def _sentence(rng: random.Random, label: int, words: tuple[int, int] = SENTENCE_WORDS) -> str:
    """Filler words and words that tell the label (one in every eight or so), `words` long in all. The
    lengths vary so that length grouping, the teacher's sorted passes and sorted evaluation change
    something in every harness test (at one length each of them would be a no-op)."""
    n = rng.randint(*words)
    telling = rng.choices(POSITIVE if label else NEGATIVE, k=1 + n // 8)
    chosen = rng.choices(FILLER, k=n - len(telling)) + telling
    rng.shuffle(chosen)
    return " ".join(chosen)


def write_sst2(root: Path, n_train: int = 48, n_dev: int = 24) -> Path:
    """An SST-2 folder (header `sentence\\tlabel`) whose label is told by its sentiment words."""
    rng = random.Random(0)
    folder = root / "SST-2"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train.tsv", n_train), ("dev.tsv", n_dev)):
        rows = [(_sentence(rng, i % 2), i % 2) for i in range(n)]
        (folder / name).write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in rows))
    return root


def write_stsb(root: Path, n_train: int = 32, n_dev: int = 16) -> Path:
    """An STS-B folder (10 columns, score last) for regression."""
    rng = random.Random(1)
    folder = root / "STS-B"
    folder.mkdir(parents=True, exist_ok=True)
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    for name, n in (("train.tsv", n_train), ("dev.tsv", n_dev)):
        lines = []
        for i in range(n):
            a, b = _sentence(rng, 1, PAIR_SIDE_WORDS), _sentence(rng, i % 2, PAIR_SIDE_WORDS)
            lines.append(f"{i}\tmain-news\tx\t2012\t{i:04d}\tnone\tnone\t{a}\t{b}\t{rng.uniform(0, 5):.3f}\n")
        (folder / name).write_text(header + "".join(lines))
    return root


@pytest.fixture
def glue_dir(tmp_path) -> Path:
    return write_stsb(write_sst2(tmp_path / "glue"))


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Each test gets its own kdbench cache and no GLUE folder from the environment."""
    monkeypatch.setenv("KDBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("KDBENCH_GLUE_DIR", raising=False)


@pytest.fixture(autouse=True, scope="session")
def library_logs_to_this_session():
    """Libraries' log handlers (Optuna's, datasets') write to this session's stderr. A handler keeps the
    stream it was made with, and mutmut runs many pytest sessions in one process: made in an earlier one,
    it writes to that session's spent capture file, and every log line prints a "Logging error" traceback."""
    for name in list(logging.root.manager.loggerDict):
        for handler in getattr(logging.getLogger(name), "handlers", []):
            if type(handler) is logging.StreamHandler:  # not pytest's own handlers, nor file handlers
                handler.stream = sys.stderr  # not setStream, which flushes the spent one first
                if hasattr(handler.formatter, "stream"):  # Optuna's colorlog formatter asks its own if it is a tty
                    handler.formatter.stream = sys.stderr


STEPS_PER_EPOCH = 6  # write_sst2's 48 training examples in batches of 8 (tests.test_runs.TRAIN)


@pytest.fixture
def ctrl_c_in_epoch_2() -> Iterator[pytest.MonkeyPatch]:
    """Ctrl-C during the second epoch, after the first epoch's checkpoint was saved. Its `undo()` lifts
    the Ctrl-C and nothing else: a patch of its own, not the test's `monkeypatch`, whose undo would also
    lift `isolated_cache` and send the resumed run's cache to ~/.cache/kdbench."""
    real = DistillationTrainer.training_step

    def step(self, *args, **kwargs):
        if self.state.global_step == STEPS_PER_EPOCH + 1:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    patch = pytest.MonkeyPatch()
    patch.setattr(DistillationTrainer, "training_step", step)
    yield patch
    patch.undo()


def communicate_all(workers: list[subprocess.Popen], timeout: float) -> list[tuple[str | None, str | None]]:
    """Each worker's (stdout, stderr), read from all of them at once until they exit, at most `timeout`
    seconds from now. Read together, not one `wait()` after another: a worker blocked on a full pipe
    never exits, and a worker waiting for another's points would then wait forever too. Past the
    deadline (or on any interruption, e.g. pytest-timeout's) the workers are killed, none is left
    running, and the test fails saying which did not finish, with the end of their stderr."""
    deadline = time.monotonic() + timeout
    pool = ThreadPoolExecutor(len(workers))

    def finish(worker: subprocess.Popen) -> tuple[str | None, str | None] | None:
        try:
            return worker.communicate(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return None

    try:
        outputs = list(pool.map(finish, workers))
    finally:
        late = [worker for worker in workers if worker.poll() is None]
        for worker in late:
            worker.kill()
        pool.shutdown()
    if late:
        tails = "\n".join(f"--- pid {worker.pid}: {(worker.communicate()[1] or '')[-2000:]}" for worker in late)
        pytest.fail(f"{len(late)} of {len(workers)} worker processes still running after {timeout:g} s: killed. "
                    f"Their stderr ends:\n{tails}", pytrace=False)
    # one that exited right at the deadline has its output still to read
    return [output or worker.communicate() for worker, output in zip(workers, outputs)]


ASO_ITERATIONS_IN_TESTS = 100  # deepsig's default is 1,000: about 2.5 s per comparison on a busy 2-core machine


@pytest.fixture
def fewer_aso_iterations(monkeypatch) -> None:
    """deepsig's ASO with 100 bootstrap iterations instead of its 1,000, for tests whose assertions do not
    read eps_min: `kdbench report` writes tables from synthetic scores, where the only marker a test
    checks is one of scores that never overlap (eps_min 0 at any number of iterations). The iterations
    only estimate eps_min's spread; the comparisons made, their rows and the note stay the same. Not
    for tests of the significance numbers themselves (tests/test_significance.py)."""
    import deepsig

    fewer = functools.partial(deepsig.aso, num_bootstrap_iterations=ASO_ITERATIONS_IN_TESTS)
    monkeypatch.setattr(deepsig, "aso", fewer)


POSTGRES_SERVER = "KDBENCH_TEST_POSTGRES"  # a PostgreSQL URL whose role may create databases (`.ci/run` sets it)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new empty database on the server at $KDBENCH_TEST_POSTGRES, dropped after the test. Skipped,
    saying why, where no server is given; a server given but not reachable fails the test."""
    server = os.environ.get(POSTGRES_SERVER)
    if not server:
        pytest.skip(f"no PostgreSQL server: set {POSTGRES_SERVER}=postgresql://USER:PASSWORD@HOST/postgres (a role "
                    "that may create databases; `.ci/run` starts a server and sets it)")
    name = f"kdbench_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")  # CREATE DATABASE runs outside transactions
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sqlalchemy.make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request, tmp_path) -> str:
    """An empty Optuna storage: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'studies.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def origins_seen():
    """The rows of every training batch as the objective sees them: (example id, origin id, source, side, copy,
    operation), and the context's source and operation names, through a KD objective registered for the test as
    `origin-spy`."""
    from bench.parts.losses import kd_divergence
    from objectives import OBJECTIVES, register_objective
    from objectives.base import Objective

    seen = {"rows": [], "sources": None, "operations": None}

    @register_objective("origin-spy", description="KD that notes each batch's origins (a test)")
    class OriginSpy(Objective):
        kd_settings = ()

        def loss(self, student_logits, batch):
            if batch.origins is not None and student_logits.requires_grad:  # training batches only
                columns = (batch.example_ids, batch.origins.ids, batch.origins.sources, batch.origins.sides,
                           batch.origins.copies, batch.origins.operations)
                seen["rows"] += list(zip(*(column.tolist() for column in columns)))
                seen["sources"], seen["operations"] = self.context.sources, self.context.operations
            return self.view_loss(student_logits, batch.teacher_logits, batch)

        def view_loss(self, student_logits, teacher_logits, batch):
            return kd_divergence(student_logits, teacher_logits, temperature=1.0, regression=False)

    yield seen
    OBJECTIVES._parts.pop("origin-spy")


@pytest.fixture
def reader():
    """Registers objective `reader` (KD on logits), whose class's `reads` a test sets, and records what
    each batch carried."""
    from bench.parts.losses import kd_divergence
    from objectives import OBJECTIVES, register_objective
    from objectives.base import Objective

    seen = {"batches": []}

    @register_objective("reader", description="KD that looks at the batch's outputs (a test)")
    class Reader(Objective):
        kd_settings = ()

        def loss(self, student_logits, batch):
            teacher = self.context.teacher_forward(batch.inputs, ["hidden_states", "attentions"])
            seen["batches"].append({"student": batch.student, "teacher": batch.teacher, "logits": student_logits,
                                    "teacher_logits": batch.teacher_logits, "direct": teacher,
                                    "mask": batch.inputs["attention_mask"], "map": dict(self.context.layer_map)})
            return self.view_loss(student_logits, batch.teacher_logits, batch)

        def view_loss(self, student_logits, teacher_logits, batch):
            return kd_divergence(student_logits, teacher_logits, temperature=1.0, regression=False)

    seen["class"] = Reader
    yield seen
    OBJECTIVES._parts.pop("reader")
