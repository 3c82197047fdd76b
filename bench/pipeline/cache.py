"""The on-disk cache: fine-tuned teachers and the teacher's outputs on the training set.

Keys are content hashes, so a cache entry is reused exactly when the same teacher meets the same
tokenised data, whichever run, trial or worker asks. Entries are written atomically, with a
checksum and the expected shape beside them, verified on read (`bench.pipeline.integrity`): a damaged entry
is reported, discarded and computed again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from bench.parts.features import Collator, example_lengths, longest_first
from bench.pipeline.integrity import file_damage, usable, write_file_checksum
from bench.pipeline.storage import save_array


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """`cache_dir`, else `$KDBENCH_CACHE`, else `~/.cache/kdbench`."""
    return Path(cache_dir or os.environ.get("KDBENCH_CACHE") or Path.home() / ".cache" / "kdbench")


def digest(*parts: object) -> str:
    """A short stable hash of JSON-serialisable parts."""
    return hashlib.blake2b(json.dumps(parts, sort_keys=True, default=str).encode(), digest_size=12).hexdigest()


def model_fingerprint(model: PreTrainedModel) -> str:
    """A hash of a model's weights and architecture: the same weights give the same key wherever loaded."""
    h = hashlib.blake2b(digest_size=12)
    h.update(model.config.to_json_string(use_diff=False).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def dataset_fingerprint(ds: datasets.Dataset) -> str:
    """A hash of every value of a (tokenised) dataset, in order, with its column names and types: the
    rows (through any index mapping a subset left) written as one Arrow IPC stream, which holds only
    those rows whatever slice or chunks they sit in, without turning them into Python objects."""
    rows = ds.with_format("arrow")[:].combine_chunks().replace_schema_metadata(None)  # metadata: datasets' own hash
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as stream:
        stream.write_table(rows)
    return hashlib.blake2b(sink.getvalue(), digest_size=12).hexdigest()


@torch.inference_mode()
def predict_logits(model: PreTrainedModel, ds: datasets.Dataset, collator: Collator, batch_size: int,
                   desc: str = "teacher outputs") -> np.ndarray:
    """The model's logits on every example of a tokenised dataset, in eval mode, in the dataset's order.
    The batches go longest first, so each is padded to about its own examples' length (on short-text
    tasks most of a random batch is padding)."""
    model.eval()
    device = next(model.parameters()).device
    order = longest_first(example_lengths(ds))
    inputs = ds.remove_columns([c for c in ds.column_names if c == "labels"]).select(order)
    outputs = []
    for batch in tqdm(DataLoader(inputs, batch_size=batch_size, collate_fn=collator), desc=desc, unit="batch"):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
        outputs.append(logits.float().cpu().numpy())
    if not outputs:
        return np.zeros((0, model.config.num_labels), np.float32)
    sorted_logits = np.concatenate(outputs)
    in_order = np.empty_like(sorted_logits)
    in_order[order] = sorted_logits
    return in_order


def cached_teacher_logits(teacher: PreTrainedModel, ds: datasets.Dataset, collator: Collator, *,
                          batch_size: int, cache_dir: str | Path | None = None,
                          teacher_fingerprint: str | None = None) -> tuple[np.ndarray, bool]:
    """The teacher's logits on `ds`, computed once per (teacher weights, data) and then read from
    disk. Returns the logits and whether they came from the cache. Pass `teacher_fingerprint` if
    already computed (hashing a large teacher takes a moment). The file `KEY.npy` is trusted only if
    it matches its checksum file and holds one float32 row of `num_labels` per example of `ds`."""
    key = digest(teacher_fingerprint or model_fingerprint(teacher), dataset_fingerprint(ds))
    path = cache_root(cache_dir) / "teacher-outputs" / f"{key}.npy"
    shape, dtype = [len(ds), teacher.config.num_labels], "float32"
    if path.is_file() and usable(path, file_damage(path, shape=shape, dtype=dtype)):
        return np.load(path), True
    logits = predict_logits(teacher, ds, collator, batch_size)
    save_array(path, logits)
    write_file_checksum(path, shape=list(logits.shape), dtype=str(logits.dtype))
    return logits, False
