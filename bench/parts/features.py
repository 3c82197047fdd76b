"""Tokenisation and batching: text columns to model inputs with their lengths, padded per batch (dynamic
padding), and batches of similar length, which waste little of each batch on padding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import datasets
import numpy as np
import torch
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

TEACHER_LOGITS = "teacher_logits"
LENGTH = "length"  # tokens per example: TrainingArguments' default `length_column_name`
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # what a model's forward takes of a tokenised row


def tokenize(ds: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int) -> datasets.Dataset:
    """Model inputs (no padding yet), `labels` and each example's `length` in tokens, from the
    `text_a`/`text_b`/`label` columns."""
    pair = "text_b" in ds.column_names

    def encode(batch: dict[str, list]) -> dict[str, list]:
        texts = (batch["text_a"], batch["text_b"]) if pair else (batch["text_a"],)
        encoded = tokenizer(*texts, truncation=True, max_length=max_length)
        encoded["labels"] = batch["label"]
        encoded[LENGTH] = [len(ids) for ids in encoded["input_ids"]]
        return encoded

    return ds.map(encode, batched=True, remove_columns=ds.column_names, desc="tokenising")


def example_lengths(ds: datasets.Dataset) -> list[int]:
    """Each example's length in tokens: the `length` column `tokenize` writes, else counted."""
    return ds[LENGTH] if LENGTH in ds.column_names else [len(ids) for ids in ds["input_ids"]]


def longest_first(lengths: Sequence[int]) -> list[int]:
    """Row indices from the longest example to the shortest (ties in row order): batches taken in this
    order are padded to nearly their own examples' length, and the largest comes first, so a batch
    that does not fit in memory fails at once."""
    return np.argsort(-np.asarray(lengths), kind="stable").tolist()


class Collator:
    """Pads inputs to the longest example of the batch and stacks cached teacher logits, if any."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.pad = DataCollatorWithPadding(tokenizer)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        logits = [f.pop(TEACHER_LOGITS) for f in features if TEACHER_LOGITS in f]
        for f in features:
            f.pop(LENGTH, None)
        batch = self.pad(features)
        if logits:
            batch[TEACHER_LOGITS] = torch.tensor(logits, dtype=torch.float32)
        return batch
