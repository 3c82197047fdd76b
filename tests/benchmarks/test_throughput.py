"""Training throughput (pytest-benchmark; run with `tox -e bench`, not part of the default run).

Three ways to train the same 3-layer MiniLM student (layers 0, 2, 4 of the real MiniLM) on the
same batches (SST-2, batch 32, max length 64) for the same number of steps:
  finetune   the harness, labels only (the no-KD baseline)
  kd         the harness, KD loss on the teacher's cached logits
  hand-loop  a minimal hand-written PyTorch loop with the same KD loss, optimiser and schedule
  ad2        the harness, KD plus AD2's adversarial view (paper defaults: K=1, teacher_perturbed)
and, on the same batches, the passes AD2 adds to a KD step, timed alone:
  student-pass  one student forward and backward (the ascent, and again the perturbed view)
  teacher-pass  one teacher forward, no gradient (the target on the perturbed input, per step)
Targets: kd within 10% of finetune (the cache makes KD nearly free), the harness within 10% of
the hand-written loop, and AD2 within 10% of the passes it is made of: a KD step plus, for K=1,
two student passes and two teacher passes (the ascent's and the perturbed view's). The ratios
are printed at the end, with AD2 against the lower bound of one extra student pass and one
teacher pass.
"""

from __future__ import annotations

import copy
import os

import pytest
import torch
from torch.utils.data import DataLoader
from transformers import TrainingArguments, get_linear_schedule_with_warmup, set_seed

from bench.parts.features import TEACHER_LOGITS, Collator, tokenize
from bench.parts.losses import kd_loss
from bench.parts.models import MINILM, keep_layers, load_classifier, load_tokenizer
from bench.parts.registry import NoParams
from bench.parts.tasks import get_task
from bench.pipeline.cache import cached_teacher_logits
from bench.pipeline.data import load_task
from bench.pipeline.records import PhaseTimer
from bench.pipeline.training import DistillationTrainer, RunParts
from methods import get_method
from methods.base import MethodContext
from objectives import get_objective
from schemes import get_scheme
from tests.conftest import write_sst2

STEPS, BATCH, MAX_LENGTH, LR = 48, 32, 64, 1e-4
SST2 = get_task("sst2")
RESULTS: dict[str, float] = {}  # mean seconds per run of STEPS steps, read by conftest's summary


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    data_dir = os.environ.get("KDBENCH_GLUE_DIR") or write_sst2(root / "glue", n_train=STEPS * BATCH)
    data = load_task("sst2", data_dir=data_dir, max_train_examples=STEPS * BATCH, seed=0)
    tokenizer = load_tokenizer(MINILM)
    train = tokenize(data.splits["train"], tokenizer, MAX_LENGTH)
    teacher = load_classifier(MINILM, SST2)
    logits, _ = cached_teacher_logits(teacher, train, Collator(tokenizer), batch_size=128, cache_dir=root)
    set_seed(0)
    student = keep_layers(teacher, [0, 2, 4])
    return tokenizer, train, train.add_column(TEACHER_LOGITS, logits.tolist()), student, teacher


def _trainer(setup, kind: str):
    tokenizer, plain, with_logits, student, teacher = setup
    context = MethodContext(task=SST2, train_size=len(plain), teacher=MINILM, teacher_model=teacher)
    parts = RunParts(context, get_scheme("plain").implementation(NoParams(), context),
                     objective=get_objective("kd").implementation(NoParams(), context))
    if kind == "ad2":
        spec = get_method("ad2")
        parts.in_loop = spec.implementation(spec.parse_params(), context)
    args = TrainingArguments(output_dir="/tmp/kdbench-bench", max_steps=STEPS, per_device_train_batch_size=BATCH,
                             learning_rate=LR, warmup_steps=0.1, max_grad_norm=1.0, eval_strategy="no",
                             save_strategy="no", logging_strategy="no", report_to="none", disable_tqdm=True,
                             use_cpu=True, remove_unused_columns=False, dataloader_pin_memory=False, seed=0)
    trainer = DistillationTrainer(model=copy.deepcopy(student), args=args,
                                  train_dataset=plain if kind == "finetune" else with_logits,
                                  data_collator=Collator(tokenizer), task=SST2, parts=parts, timer=PhaseTimer())
    return (trainer,), {}


def _hand_loop_state(setup):
    tokenizer, _, with_logits, student, _ = setup
    model = copy.deepcopy(student)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0, fused=True)  # as Trainer's default
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.1 * STEPS), STEPS)
    loader = DataLoader(with_logits, batch_size=BATCH, shuffle=True, collate_fn=Collator(tokenizer),
                        generator=torch.Generator().manual_seed(0))
    return (model, optimizer, schedule, loader), {}


def hand_loop(model, optimizer, schedule, loader):
    """The minimal loop a researcher would write: forward, KD loss, backward, clip, step."""
    model.train()
    for batch in loader:
        teacher_logits, labels = batch.pop(TEACHER_LOGITS), batch.pop("labels")
        loss = kd_loss(model(**batch).logits, teacher_logits, labels, temperature=1.0, alpha_kd=1.0, alpha_ce=0.0,
                       regression=False).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()


def _passes_state(setup, kind: str):
    tokenizer, plain, _, student, teacher = setup
    model = copy.deepcopy(student if kind == "student-pass" else teacher).train(kind == "student-pass")
    loader = DataLoader(plain.remove_columns("labels"), batch_size=BATCH, shuffle=True, collate_fn=Collator(tokenizer),
                        generator=torch.Generator().manual_seed(0))
    return (model, loader, kind == "student-pass"), {}


def passes(model, loader, backward: bool):
    """One forward per batch (with a backward of its summed logits for a student pass)."""
    for batch in loader:
        with torch.set_grad_enabled(backward):
            logits = model(**batch).logits
        if backward:
            logits.float().sum().backward()


@pytest.mark.parametrize("kind", ["finetune", "kd", "hand-loop", "ad2", "student-pass", "teacher-pass"])
def test_training_steps(benchmark, setup, kind):
    benchmark.group = f"{STEPS} training steps, 3-layer MiniLM student, batch {BATCH}, max length {MAX_LENGTH}"
    if kind == "hand-loop":
        benchmark.pedantic(hand_loop, setup=lambda: _hand_loop_state(setup), rounds=3, warmup_rounds=1)
    elif kind.endswith("-pass"):
        benchmark.pedantic(passes, setup=lambda: _passes_state(setup, kind), rounds=3, warmup_rounds=1)
    else:
        benchmark.pedantic(lambda trainer: trainer.train(), setup=lambda: _trainer(setup, kind),
                           rounds=3, warmup_rounds=1)
    RESULTS[kind] = benchmark.stats.stats.mean
    benchmark.extra_info["seconds_per_step"] = RESULTS[kind] / STEPS
