"""Hugging Face `Trainer` as its documentation shows it (DataCollatorWithPadding, random batches), the
recipe kdbench is compared with: by the peer benchmark on MiniLM (tests/benchmarks/test_peer.py) and,
for the claim that kdbench's random order gives Trainer's exact numbers, on tiny models in the normal
suite (tests/test_batching.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                          TrainingArguments, set_seed)

from bench.parts.losses import kd_loss
from bench.parts.models import keep_layers
from bench.pipeline.config import TrainConfig
from bench.pipeline.data import load_task


class OnlineKD(Trainer):
    """The usual Trainer recipe for KD: the teacher's logits computed on every batch."""

    def __init__(self, *args, teacher, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher = teacher.eval()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        features = {k: v for k, v in inputs.items() if k != "labels"}
        outputs = model(**features)
        with torch.no_grad():
            target = self.teacher(**features).logits
        loss = kd_loss(outputs.logits, target, None, temperature=1.0, alpha_kd=1.0, alpha_ce=0.0,
                       regression=False).mean()
        return (loss, outputs) if return_outputs else loss


def trainer_run(task: str, data_dir: str | Path, source: str | Path, settings: TrainConfig, output_dir: Path, *,
                max_length: int, max_train_examples: int | None = None, student_layers: list[int] | None = None
                ) -> list[dict]:
    """Fine-tune the classifier at `source` (with `student_layers`, distil it into those of its layers)
    on a binary task with Trainer's defaults; returns Trainer's evaluations, one per epoch."""
    data = load_task(task, data_dir=data_dir, max_train_examples=max_train_examples, seed=42)
    tokenizer = AutoTokenizer.from_pretrained(source)
    pair = "text_b" in data.splits["train"].column_names

    def encode(batch):
        texts = (batch["text_a"], batch["text_b"]) if pair else (batch["text_a"],)
        return {**tokenizer(*texts, truncation=True, max_length=max_length), "labels": batch["label"]}

    splits = {name: ds.map(encode, batched=True, remove_columns=ds.column_names) for name, ds in data.splits.items()}
    set_seed(settings.seed)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=2)
    args = TrainingArguments(output_dir=str(output_dir), learning_rate=settings.learning_rate,
                             per_device_train_batch_size=settings.per_device_train_batch_size,
                             per_device_eval_batch_size=settings.per_device_eval_batch_size,
                             num_train_epochs=settings.num_train_epochs, warmup_steps=settings.warmup_steps,
                             weight_decay=settings.weight_decay, eval_strategy="epoch", seed=settings.seed,
                             report_to="none", disable_tqdm=True, use_cpu=True)
    common = dict(args=args, train_dataset=splits["train"], eval_dataset=splits["validation"],
                  data_collator=DataCollatorWithPadding(tokenizer),
                  compute_metrics=lambda p: {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())})
    if student_layers is None:
        trainer = Trainer(model=model, **common)
    else:
        trainer = OnlineKD(model=keep_layers(model, student_layers), teacher=model, **common)
    trainer.train()
    return [entry for entry in trainer.state.log_history if "eval_accuracy" in entry]
