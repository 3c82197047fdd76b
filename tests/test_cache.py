"""The teacher-output cache: computed once per (teacher, data), then read back identically."""

from __future__ import annotations

import numpy as np
import torch

from bench.parts.features import Collator, tokenize
from bench.parts.models import load_classifier, load_tokenizer
from bench.parts.tasks import get_task
from bench.pipeline.cache import cached_teacher_logits, predict_logits
from bench.pipeline.data import load_task
from tests.conftest import write_sst2


def _setup(tiny_teacher, root, n_train=48):
    tokenizer = load_tokenizer(str(tiny_teacher))
    data = load_task("sst2", data_dir=write_sst2(root, n_train=n_train))
    return tokenizer, tokenize(data.splits["train"], tokenizer, 32), load_classifier(str(tiny_teacher), get_task("sst2"))


def test_outputs_are_cached_and_reused(tiny_teacher, tmp_path, monkeypatch):
    tokenizer, train, teacher = _setup(tiny_teacher, tmp_path / "glue")
    first, hit = cached_teacher_logits(teacher, train, Collator(tokenizer), batch_size=16, cache_dir=tmp_path)
    assert not hit and first.shape == (48, 2)
    names = sorted(p.name for p in (tmp_path / "teacher-outputs").iterdir())  # no temporary files left
    assert [name.split(".", 1)[1] for name in names] == ["checksum.json", "npy"]

    def must_not_run(*args, **kwargs):
        raise AssertionError("teacher recomputed despite the cache")

    monkeypatch.setattr("bench.pipeline.cache.predict_logits", must_not_run)
    second, hit = cached_teacher_logits(teacher, train, Collator(tokenizer), batch_size=8, cache_dir=tmp_path)
    assert hit and np.array_equal(first, second)


def test_cached_outputs_equal_the_teacher_in_eval_mode(tiny_teacher, tmp_path):
    tokenizer, train, teacher = _setup(tiny_teacher, tmp_path / "glue")
    teacher.train()  # dropout on: the cache must still hold eval-mode outputs
    cached, _ = cached_teacher_logits(teacher, train, Collator(tokenizer), batch_size=16, cache_dir=tmp_path)
    again = predict_logits(teacher, train, Collator(tokenizer), batch_size=48)
    assert np.allclose(cached, again, atol=1e-5)


def test_other_data_or_other_teacher_is_a_cache_miss(tiny_teacher, tmp_path):
    tokenizer, train, teacher = _setup(tiny_teacher, tmp_path / "glue")
    cached_teacher_logits(teacher, train, Collator(tokenizer), batch_size=16, cache_dir=tmp_path)
    _, other_train, _ = _setup(tiny_teacher, tmp_path / "glue2", n_train=40)
    _, hit = cached_teacher_logits(teacher, other_train, Collator(tokenizer), batch_size=16, cache_dir=tmp_path)
    assert not hit
    with torch.no_grad():
        teacher.classifier.bias.add_(1.0)
    _, hit = cached_teacher_logits(teacher, train, Collator(tokenizer), batch_size=16, cache_dir=tmp_path)
    assert not hit
    assert len(list((tmp_path / "teacher-outputs").glob("*.npy"))) == 3


def test_atomic_files_get_the_permissions_of_open(tmp_path):
    """Records, caches and reports are shared: an atomic write is as readable as a plain one."""
    from bench.pipeline.storage import atomic_file

    with atomic_file(tmp_path / "atomic.txt") as handle:
        handle.write("x")
    (tmp_path / "plain.txt").write_text("x")
    assert (tmp_path / "atomic.txt").stat().st_mode == (tmp_path / "plain.txt").stat().st_mode
    assert not list(tmp_path.glob(".*.tmp"))


def test_dataset_fingerprint_is_the_rows_content_however_they_are_stored(tiny_teacher, tmp_path):
    """Arrow-level hashing: a subset through an index mapping, a slice and a copy of the same rows hash
    alike; another order or one changed token does not."""
    from bench.pipeline.cache import dataset_fingerprint

    _, train, _ = _setup(tiny_teacher, tmp_path / "glue")
    subset = train.shuffle(seed=1).select(range(20))  # an index mapping over the whole table
    assert dataset_fingerprint(subset) == dataset_fingerprint(subset.flatten_indices())
    assert dataset_fingerprint(train.select(range(10))) == dataset_fingerprint(train.select(range(10)).flatten_indices())
    assert dataset_fingerprint(train.select(range(10))) != dataset_fingerprint(train.select(range(1, 11)))
    assert dataset_fingerprint(subset) != dataset_fingerprint(subset.select(list(range(19, -1, -1))))
    changed = train.map(lambda row, i: {"input_ids": row["input_ids"][:-1] + [7] if i == 5 else row["input_ids"]},
                        with_indices=True)
    assert dataset_fingerprint(changed) != dataset_fingerprint(train)
