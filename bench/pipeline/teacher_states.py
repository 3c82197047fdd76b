"""The teacher's hidden states and attention probabilities on every training row, kept on disk
(`--teacher-outputs cached-all`), for the objectives that read them (`TrainingPart.reads`): computed once
per (teacher, data, what is read), then read back for each batch instead of a teacher forward.

The cost is disk, not time: every token's state at every layer, and every layer's and head's attention
map over each example's own tokens (no padding is stored), in float32, so that a batch read back equals
an online forward of it up to float rounding. A run prints the size before it writes and refuses when
the disk lacks the room; at GLUE scale (SST-2's 67k sentences on a 6-layer, 384-wide teacher) that is
about 9 GB of hidden states and 3 GB of attentions, which is why the online forward stays the default.

An entry is a folder `teacher-states/KEY/` (`lengths.npy`, then `hidden_states.npy` [tokens, layers + 1,
width] and `attentions.npy` [sum of squared lengths, layers, heads], each example's rows one after the
other in row order), written to a temporary folder and sealed with checksums (`bench.pipeline.integrity`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from bench.parts.errors import KdbenchError
from bench.parts.features import Collator, example_lengths, longest_first
from bench.parts.outputs import ATTENTIONS, HIDDEN_STATES, Outputs, forward
from bench.pipeline.cache import cache_root, dataset_fingerprint, digest
from bench.pipeline.integrity import folder_damage, holds_entry, sealed_folder, usable

LENGTHS_FILE = "lengths.npy"
FLOAT_BYTES = 4


@dataclass(frozen=True)
class Layout:
    """The sizes of a teacher's extras: what fixes an entry's array shapes."""

    layers: int
    heads: int
    width: int
    lengths: np.ndarray  # each row's tokens

    @classmethod
    def of(cls, teacher: PreTrainedModel, lengths: Iterable[int]) -> Layout:
        config = teacher.config
        return cls(config.num_hidden_layers, config.num_attention_heads, config.hidden_size,
                   np.asarray(list(lengths), dtype=np.int64))

    def shape(self, read: str) -> tuple[int, ...]:
        if read == HIDDEN_STATES:
            return int(self.lengths.sum()), self.layers + 1, self.width
        return int((self.lengths ** 2).sum()), self.layers, self.heads

    def bytes(self, reads: Iterable[str]) -> int:
        return sum(int(np.prod(self.shape(read))) * FLOAT_BYTES for read in reads)

    def starts(self, read: str) -> np.ndarray:
        """Where each row's block begins in the array of `read`."""
        sizes = self.lengths if read == HIDDEN_STATES else self.lengths ** 2
        return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)


class TeacherStates:
    """A cache entry opened for reading (memory-mapped): the teacher's extras of a batch, by example id."""

    def __init__(self, folder: Path, reads: Iterable[str], layout: Layout, ids: list[int]):
        self.folder, self.reads, self.layout = folder, tuple(sorted(reads)), layout
        self.arrays = {read: np.load(folder / f"{read}.npy", mmap_mode="r") for read in self.reads}
        self.starts = {read: layout.starts(read) for read in self.reads}
        self.row_of = {example_id: row for row, example_id in enumerate(ids)}

    def outputs(self, logits: torch.Tensor, example_ids: torch.Tensor, attention_mask: torch.Tensor) -> Outputs:
        """The teacher's `Outputs` of a batch: `logits` as given, the extras as stored, zero on padding."""
        rows = [self.row_of[int(i)] for i in example_ids]
        lengths = [int(self.layout.lengths[row]) for row in rows]
        found = attention_mask.sum(1).tolist()
        if lengths != found:
            raise KdbenchError(f"the cached teacher states in {self.folder} hold rows of {lengths} tokens where the "
                               f"batch has {found}: delete the folder to rebuild it")
        padded, size = len(rows), attention_mask.shape[1]
        extras = {}
        if HIDDEN_STATES in self.reads:
            layout = self.layout
            states = np.zeros((layout.layers + 1, padded, size, layout.width), np.float32)
            for i, (row, length) in enumerate(zip(rows, lengths)):
                start = self.starts[HIDDEN_STATES][row]
                states[:, i, :length] = self.arrays[HIDDEN_STATES][start:start + length].transpose(1, 0, 2)
            extras["hidden_states"] = tuple(torch.from_numpy(states).to(logits.device).unbind(0))
        if ATTENTIONS in self.reads:
            layout = self.layout
            maps = np.zeros((layout.layers, padded, layout.heads, size, size), np.float32)
            for i, (row, length) in enumerate(zip(rows, lengths)):
                start = self.starts[ATTENTIONS][row]
                block = self.arrays[ATTENTIONS][start:start + length * length]
                maps[:, i, :, :length, :length] = block.reshape(length, length, layout.layers,
                                                                 layout.heads).transpose(2, 3, 0, 1)
            extras["attentions"] = tuple(torch.from_numpy(maps).to(logits.device).unbind(0))
        return Outputs(logits, **extras)


def cached_teacher_states(teacher: PreTrainedModel, rows: datasets.Dataset, ids: list[int], reads: Iterable[str], *,
                          collator: Collator, batch_size: int, cache_dir: str | Path | None,
                          teacher_fingerprint: str) -> tuple[TeacherStates, bool]:
    """The teacher's extras in `reads` on every row of `rows` (model inputs; the row of example `ids[k]` is
    row k), from the cache or computed and written there, and whether they came from the cache. Prints the
    entry's size; refuses before computing when the disk has less room than that."""
    reads = sorted(set(reads))
    layout = Layout.of(teacher, example_lengths(rows))
    folder = cache_root(cache_dir) / "teacher-states" / digest(teacher_fingerprint, dataset_fingerprint(rows), reads)
    size = layout.bytes(reads)
    hit = holds_entry(folder, LENGTHS_FILE) and usable(folder, folder_damage(folder))
    if not hit:
        folder.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(folder.parent).free
        if free < size:
            raise KdbenchError(f"caching the teacher's {' and '.join(reads)} on {len(rows)} rows needs "
                               f"{size / 2**20:,.1f} MB and {folder.parent} has {free / 2**20:,.1f} MB free: free "
                               "some space, pass --cache-dir elsewhere, or use --teacher-outputs cached (an online "
                               "forward of each batch instead)")
        print(f"teacher states: writing {' and '.join(reads)} of {len(rows)} rows, {size / 2**20:,.1f} MB, "
              f"to {folder}")
        with sealed_folder(folder) as partial:
            _write(teacher, rows, reads, layout, partial, collator, batch_size)
    else:
        print(f"teacher states: {' and '.join(reads)} of {len(rows)} rows, {size / 2**20:,.1f} MB, read from {folder}")
    return TeacherStates(folder, reads, layout, ids), hit


@torch.inference_mode()
def _write(teacher: PreTrainedModel, rows: datasets.Dataset, reads: list[str], layout: Layout, folder: Path,
           collator: Collator, batch_size: int) -> None:
    """Fill `folder` with the teacher's extras on `rows`, the batches longest first (little padding), each
    row's block written at its place in row order."""
    np.save(folder / LENGTHS_FILE, layout.lengths)
    arrays = {read: np.lib.format.open_memmap(folder / f"{read}.npy", mode="w+", dtype=np.float32,
                                              shape=layout.shape(read)) for read in reads}
    starts = {read: layout.starts(read) for read in reads}
    device = next(teacher.parameters()).device
    teacher.eval()
    order = longest_first(layout.lengths)
    ordered = rows.select(order)
    for first, batch in zip(range(0, len(order), batch_size),
                            tqdm(DataLoader(ordered, batch_size=batch_size, collate_fn=collator),
                                 desc="teacher states", unit="batch")):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            outputs = forward(teacher, {k: v.to(device) for k, v in batch.items()}, reads)
        for i, row in enumerate(order[first:first + batch_size]):
            length = int(layout.lengths[row])
            if HIDDEN_STATES in reads:
                block = torch.stack([layer[i, :length] for layer in outputs.hidden_states], 1)
                start = starts[HIDDEN_STATES][row]
                arrays[HIDDEN_STATES][start:start + length] = block.float().cpu().numpy()
            if ATTENTIONS in reads:
                block = torch.stack([layer[i, :, :length, :length] for layer in outputs.attentions])
                start = starts[ATTENTIONS][row]
                arrays[ATTENTIONS][start:start + length * length] = (
                    block.float().permute(2, 3, 0, 1).reshape(length * length, layout.layers, layout.heads)
                    .cpu().numpy())
    for array in arrays.values():
        array.flush()
    del arrays
