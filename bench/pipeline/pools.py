"""Pools of augmented training examples, generated once per (method, parameters, data, seed) and cached.

A pool method augments sentences; this module turns that into training examples. For a sentence
pair, each augmented example changes one side and keeps the other: copy `j` of example `i`
changes side `(i + j) % 2`, so with one copy per example half the pairs vary their first
sentence and half their second. Versions identical to the original, or repeated, are dropped;
spacing does not count (GLUE's SST-2 lines end in a space that a translation does not keep).
The pool keeps each example's label (for a hard-label term) and its origin (bench/parts/origins.py): the
original's row, the side changed, which version of that side it is and, for a method of several operations
(EDA's edits), which made it.

Sentences are augmented in fixed-size chunks, each with a seed derived from the run's seed, so a
pool does not depend on anything but its key.

A cached pool is a folder (`pool.jsonl`, `meta.json`) published by one rename once sealed with its
checksums (`bench.pipeline.integrity`). It is verified on read, its row count against the metadata's
`pool_size` too; a damaged pool is reported, discarded and generated again, identically.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
from tqdm.auto import tqdm

from bench.parts.origins import ORIGIN_COPY, ORIGIN_ID, ORIGIN_OPERATION, ORIGIN_SIDE
from bench.pipeline.cache import cache_root, digest
from bench.pipeline.integrity import folder_damage, sealed_folder, usable
from bench.pipeline.storage import atomic_file, write_json
from methods.base import PoolAugmenter
from methods.registry import MethodSpec

CHUNK = 256  # sentences per augment() call: fixed, because chunk seeds derive from chunk positions
# in the cache key: 2 compares versions up to spacing (1 kept GLUE's trailing-space twins); 3 keeps each row's
# side and copy beside its original's row; 4 the operation that made it
FORMAT = 4
POOL_FILE, META_FILE = "pool.jsonl", "meta.json"
# what a pool row keeps of its origin; the source is the run's
POOL_ORIGINS = (ORIGIN_ID, ORIGIN_SIDE, ORIGIN_COPY, ORIGIN_OPERATION)


@dataclass
class Pool:
    """A generated (or cached) pool and how it was obtained."""

    examples: datasets.Dataset  # text_a[, text_b], label, origin_id, origin_side, origin_copy, origin_operation
    cache_hit: bool
    generation_s: float  # time it took to generate, measured when it was generated
    copies: int  # augmented versions asked for per original example
    folder: Path
    operations: tuple[str, ...] = ()  # the method's operations where it has several (`PoolAugmenter.operations`)


def side_copies(n_examples: int, copies: int, pair: bool) -> dict[str, list[int]]:
    """How many versions of each side every example asks for (see the module docstring)."""
    if not pair:
        return {"text_a": [copies] * n_examples}
    first = [(copies + (i % 2 == 0)) // 2 for i in range(n_examples)]
    return {"text_a": first, "text_b": [copies - n for n in first]}


def chunk_seed(seed: int, side: int, chunk: int) -> int:
    return int(np.random.SeedSequence([seed, side, chunk]).generate_state(1)[0])


def generate_pool(augmenter: PoolAugmenter, data: datasets.Dataset, *, seed: int,
                  desc: str = "augmenting") -> datasets.Dataset:
    """The augmented examples of `data` (columns text_a[, text_b], label), in a fixed order."""
    pair = "text_b" in data.column_names
    wanted = side_copies(len(data), augmenter.copies, pair)
    versions: dict[str, list[list[tuple[str, int]]]] = {}
    with tqdm(total=sum(len(c) for c in wanted.values()), desc=desc, unit="sentence") as bar:
        for side_index, (side, copies) in enumerate(wanted.items()):
            sentences, versions[side] = data[side], []
            for start in range(0, len(sentences), CHUNK):
                stop = start + CHUNK
                versions[side] += augmenter.augment_tagged(sentences[start:stop], copies[start:stop],
                                                           chunk_seed(seed, side_index, start // CHUNK))
                bar.update(len(sentences[start:stop]))
    rows: dict[str, list] = {column: [] for column in [*wanted, "label", *POOL_ORIGINS]}
    for i, example in enumerate(data):
        for side_index, side in enumerate(wanted):
            new = _new_versions(example[side], versions[side][i])[:wanted[side][i]]
            for copy, (text, operation) in enumerate(new, start=1):
                for column in wanted:
                    rows[column].append(text if column == side else example[column])
                rows["label"].append(example["label"])
                for column, value in zip(POOL_ORIGINS, (i, side_index, copy, operation)):
                    rows[column].append(value)
    return datasets.Dataset.from_dict(rows, features=_features(data))


def _new_versions(original: str, versions: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """`versions` (each with its operation) less blanks, repeats and the original, comparing words and not
    spacing (a tokenizer does not see spacing)."""
    seen, kept = {" ".join(original.split())}, []
    for version, operation in versions:
        words = " ".join(version.split())
        if words and words not in seen:
            seen.add(words)
            kept.append((version, operation))
    return kept


def _features(data: datasets.Dataset) -> datasets.Features:
    return datasets.Features({**{c: data.features[c] for c in data.column_names if c in ("text_a", "text_b", "label")},
                              **{column: datasets.Value("int64") for column in POOL_ORIGINS}})


def pool_key(method: MethodSpec, params, data: datasets.Dataset, seed: int) -> str:
    """The cache key: method, parameter values, every training text and label, seed."""
    texts = data.select_columns([c for c in ("text_a", "text_b", "label") if c in data.column_names])
    return digest(method.name, dataclasses.asdict(params), texts[:], seed, CHUNK, FORMAT)


def cached_pool(method: MethodSpec, params, build: Callable[[], PoolAugmenter], data: datasets.Dataset, *,
                seed: int, cache_dir: str | Path | None = None) -> Pool:
    """The pool of `method` on `data`, generated with the augmenter `build()` returns (only called
    when no intact pool is cached) and stored atomically: written to a temporary folder, sealed,
    then renamed into place."""
    folder = cache_root(cache_dir) / "pools" / f"{method.name}-{pool_key(method, params, data, seed)}"
    if folder.is_dir() and usable(folder, _pool_damage(folder)):  # a pool folder appears only by its rename
        meta = json.loads((folder / META_FILE).read_text())
        examples = datasets.Dataset.from_json(str(folder / POOL_FILE), features=_features(data))
        return Pool(examples, True, meta["generation_s"], meta["copies"], folder, tuple(meta["operations"]))
    started = time.perf_counter()
    augmenter = build()
    examples = generate_pool(augmenter, data, seed=seed, desc=f"{method.name} pool")
    generation_s = time.perf_counter() - started
    with sealed_folder(folder) as partial:
        with atomic_file(partial / POOL_FILE) as handle:
            for row in examples:
                handle.write(json.dumps(row) + "\n")
        write_json(partial / META_FILE, {"method": method.describe(params), "seed": seed, "examples": len(data),
                                         "pool_size": len(examples), "copies": augmenter.copies,
                                         "operations": list(augmenter.operations),
                                         "generation_s": round(generation_s, 3)})
    return Pool(examples, False, generation_s, augmenter.copies, folder, tuple(augmenter.operations))


def _pool_damage(folder: Path) -> str | None:
    """What is wrong with a cached pool folder: a file that differs from its checksum, or (written
    so, or changed along with its checksums) a row count other than the metadata's `pool_size`."""
    if damage := folder_damage(folder):
        return damage
    with open(folder / POOL_FILE) as handle:
        rows = sum(1 for _ in handle)
    expected = json.loads((folder / META_FILE).read_text())["pool_size"]
    return None if rows == expected else f"{POOL_FILE}: {rows} rows, expected {expected}"
