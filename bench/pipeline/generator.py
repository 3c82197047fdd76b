"""Build a masked-LM generator offline, for the `mlm` augmentation method.

TinyBERT's augmentation asks a masked LM (bert-base-uncased in the paper) for replacement words.
Offline there is no such checkpoint, so this module makes one: it loads an encoder (the teacher's,
or the offline MiniLM) with a masked-LM head whose output layer is tied to the word embeddings,
continues masked-LM training on the task's own training text, and saves model and tokenizer to a
folder that `--param generator=FOLDER` accepts.

A head the encoder lacks starts from scratch, so two things speed up its training: its output
bias starts at the log unigram frequencies of the training text (the first thing a new head
learns anyway), and it trains at a higher learning rate than the pre-trained encoder.
Measured from the offline MiniLM on 2,000 SST-2 sentences (max length 64), 2 CPU cores, default
settings: 300 steps of 32 in 157 s; dev masked-LM loss 7.67 after the unigram start, 5.65 after
training; the top predictions for "a [MASK] and moving film" are then "best, smart, remarkable,
good, beautiful" (docs/methods.md: the command that reproduces it).

Generators are cached like fine-tuned teachers: keyed by the encoder's weights, the training text
and the settings, written to a temporary folder, sealed with its checksums and published by one
rename, so a finished folder is reused by every later call and an interrupted one leaves nothing
behind. A generator folder is verified before reuse (`bench.pipeline.integrity`); a damaged one is
reported, discarded and trained again.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import datasets
import torch
from transformers import (AutoModelForMaskedLM, DataCollatorForLanguageModeling, PreTrainedModel, Trainer,
                          TrainingArguments, set_seed)

from bench.parts.errors import KdbenchError
from bench.parts.generators import masked_lm_logits
from bench.parts.models import load_tokenizer, resolve_model
from bench.pipeline.cache import cache_root, digest, model_fingerprint
from bench.pipeline.config import DataConfig, GeneratorSettings
from bench.pipeline.data import TEXT_COLUMNS, load_data
from bench.pipeline.integrity import folder_damage, holds_entry, sealed_folder, usable
from bench.pipeline.progress import use_loss_progress
from bench.pipeline.storage import write_json

INFO_FILE = "generator.json"  # written last before the checksums; marks a generator folder


def load_masked_lm(encoder: str, seed: int) -> tuple[PreTrainedModel, bool]:
    """`encoder` with a masked-LM head, and whether that head is new (initialised under `seed`).
    The head's output layer must be tied to the word embeddings, as BERT's is."""
    set_seed(seed)
    model, info = AutoModelForMaskedLM.from_pretrained(resolve_model(encoder), output_loading_info=True)
    if model.get_output_embeddings().weight is not model.get_input_embeddings().weight:
        raise KdbenchError(f"{encoder}: the masked-LM output layer is not tied to the word embeddings "
                           "(tie_word_embeddings is false in its config); use a BERT-style encoder")
    return model, bool(info["missing_keys"])


def sentences(ds: datasets.Dataset) -> list[str]:
    """Every text of a split, both sides of sentence pairs, in order."""
    return [text for column in TEXT_COLUMNS if column in ds.column_names for text in ds[column]]


def make_generator(encoder: str, data: DataConfig, settings: GeneratorSettings | None = None, *,
                   cache_dir: str | Path | None = None, output_dir: str | Path | None = None) -> tuple[Path, bool]:
    """Train a masked-LM generator from `encoder` (hub id, folder or 'minilm') on the training text
    of `data` (both sides of pairs, truncated to `data.max_length`), or reuse the cached one.

    Returns the generator folder (model, tokenizer, and `generator.json` with the settings and the
    masked-LM loss on the dev text before and after training) and whether it came from the cache.
    `output_dir` saves there instead of the cache (`$KDBENCH_CACHE/generators/TASK-KEY`)."""
    settings = settings or GeneratorSettings()
    task_data = load_data(data)
    tokenizer = load_tokenizer(encoder)
    model, new_head = load_masked_lm(encoder, settings.seed)
    train_text = sentences(task_data.splits["train"])
    eval_text = sentences(task_data.splits[task_data.task.eval_splits[0]])
    key = digest(model_fingerprint(model), train_text, eval_text, data.max_length, asdict(settings))
    folder = Path(output_dir) if output_dir else cache_root(cache_dir) / "generators" / f"{task_data.task.name}-{key}"
    if holds_entry(folder, INFO_FILE) and usable(folder, folder_damage(folder)):
        return folder, True
    if folder.exists() and any(folder.iterdir()):
        raise KdbenchError(f"{folder} exists and is not a generator folder: choose a new or empty --output-dir")

    with sealed_folder(folder) as partial:
        info = _train(model, tokenizer, train_text, eval_text, data.max_length, settings, new_head, partial)
        write_json(partial / INFO_FILE, {"encoder": encoder, "task": task_data.task.name,
                                         "source": task_data.source, "new_head": new_head, **info})
    return folder, False


class _MaskedPositionsTrainer(Trainer):
    """Trainer whose masked-LM loss projects onto the vocabulary at the masked tokens only: the
    model's own loss (mean cross-entropy over masked tokens) at a fraction of the cost."""

    loss_is_scaled_for_ga = False  # a per-batch mean, as the model's own loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        selected = labels != -100
        logits = masked_lm_logits(model, inputs, selected)
        loss = torch.nn.functional.cross_entropy(logits, labels[selected])
        return (loss, {"logits": logits}) if return_outputs else loss


def _unigram_bias(model: PreTrainedModel, train: datasets.Dataset) -> None:
    """Start the output bias at the log frequencies of the training tokens (add-0.1 smoothed)."""
    counts = Counter(token for ids, special in zip(train["input_ids"], train["special_tokens_mask"])
                     for token, is_special in zip(ids, special) if not is_special)
    bias = model.get_output_embeddings().bias
    frequencies = torch.full_like(bias, 0.1)
    frequencies[list(counts)] += torch.tensor(list(counts.values()), dtype=bias.dtype)
    with torch.no_grad():
        bias.copy_(frequencies.log() - frequencies.sum().log())


def _optimizer(model: PreTrainedModel, settings: GeneratorSettings, new_head: bool) -> torch.optim.AdamW:
    """AdamW as Trainer builds it (no decay on biases and LayerNorm), a new head at its own rate."""
    encoder = {id(p) for p in model.base_model.parameters()}  # includes the tied output weights
    groups = []
    for is_head in (False, True):
        rate = settings.head_learning_rate if is_head and new_head else settings.learning_rate
        for decay in (0.01, 0.0):  # biases and LayerNorm weights (the 1-D parameters) are not decayed
            params = [p for p in model.parameters()
                      if (id(p) not in encoder) == is_head and (p.ndim == 1) == (decay == 0.0)]
            groups.append({"params": params, "lr": rate, "weight_decay": decay})
    return torch.optim.AdamW([group for group in groups if group["params"]], fused=True)  # as Trainer's default


def _train(model: PreTrainedModel, tokenizer, train_text: list[str], eval_text: list[str], max_length: int,
           settings: GeneratorSettings, new_head: bool, folder: Path) -> dict:
    """Masked-LM training with `transformers.Trainer`; saves model and tokenizer to `folder` and
    returns what `generator.json` records (settings, dev loss before and after, training time)."""

    def encode(text: list[str]) -> datasets.Dataset:
        encoded = tokenizer(text, truncation=True, max_length=max_length, return_special_tokens_mask=True)
        return datasets.Dataset.from_dict(dict(encoded))

    train, dev = encode(train_text), encode(eval_text)
    if new_head:
        _unigram_bias(model, train)
    trainer = _MaskedPositionsTrainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(folder / "checkpoints"),
            learning_rate=settings.learning_rate,
            max_steps=settings.max_steps,
            num_train_epochs=settings.num_train_epochs,
            per_device_train_batch_size=settings.per_device_train_batch_size,
            per_device_eval_batch_size=128,
            warmup_steps=0.1,
            max_grad_norm=1.0,
            seed=settings.seed,
            eval_strategy="no",
            save_strategy="no",
            logging_steps=10,
            prediction_loss_only=True,
            use_cpu=not torch.cuda.is_available(),
            bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
            report_to="none",
            disable_tqdm=False,  # our progress bar (use_loss_progress), not a printed dict per log
            dataloader_num_workers=0,
        ),
        train_dataset=train,
        eval_dataset=dev,
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm_probability=settings.mlm_probability,
                                                      seed=settings.seed),
        processing_class=tokenizer,
        optimizers=(_optimizer(model, settings, new_head), None),
    )
    use_loss_progress(trainer)
    loss_before = trainer.evaluate()["eval_loss"]
    started = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - started
    loss_after = trainer.evaluate()["eval_loss"]
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return {"train_sentences": len(train_text), "max_length": max_length, "settings": asdict(settings),
            "steps": trainer.state.global_step, "eval_loss_before": loss_before, "eval_loss_after": loss_after,
            "train_seconds": round(train_seconds, 1)}
