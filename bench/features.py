"""Tokenisation and batching: text columns to model inputs, padded per batch (dynamic padding)."""

from __future__ import annotations

from typing import Any

import datasets
import torch
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

TEACHER_LOGITS = "teacher_logits"


def tokenize(ds: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int) -> datasets.Dataset:
    """Model inputs (no padding yet) and `labels`, from the `text_a`/`text_b`/`label` columns."""
    pair = "text_b" in ds.column_names

    def encode(batch: dict[str, list]) -> dict[str, list]:
        texts = (batch["text_a"], batch["text_b"]) if pair else (batch["text_a"],)
        encoded = tokenizer(*texts, truncation=True, max_length=max_length)
        encoded["labels"] = batch["label"]
        return encoded

    return ds.map(encode, batched=True, remove_columns=ds.column_names, desc="tokenising")


class Collator:
    """Pads inputs to the longest example of the batch and stacks cached teacher logits, if any."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.pad = DataCollatorWithPadding(tokenizer)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        logits = [f.pop(TEACHER_LOGITS) for f in features if TEACHER_LOGITS in f]
        batch = self.pad(features)
        if logits:
            batch[TEACHER_LOGITS] = torch.tensor(logits, dtype=torch.float32)
        return batch
