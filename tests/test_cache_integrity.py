"""Damaged cache entries (teacher outputs, pools, fine-tuned teachers, generators): each is found on
read, reported in one line, discarded and rebuilt, and the rebuilt entry gives the same result."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoModelForMaskedLM

from bench.parts.features import Collator
from bench.pipeline.cache import cached_teacher_logits
from bench.pipeline.generator import GeneratorSettings, make_generator
from bench.pipeline.integrity import (MANIFEST, checksum_file, file_checksum, file_damage, folder_damage, seal,
                             write_file_checksum)
from bench.pipeline.pools import META_FILE, POOL_FILE, cached_pool
from bench.pipeline.runs import DataConfig, RunConfig, finetune_teacher, run_distill
from methods import get_method
from tests.conftest import write_sst2
from tests.test_cache import _setup
from tests.test_pools import Tagger, pairs
from tests.test_runs import TRAIN, distill_config


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garble(path: Path) -> None:
    """Flip the last 16 bytes, keeping the size: in an array or model file, values, not the header."""
    data = bytearray(path.read_bytes())
    data[-16:] = bytes(b ^ 0xFF for b in data[-16:])
    path.write_bytes(bytes(data))


# the damage done to one file of the entry (None: its checksum deleted), and the reason the warning gives
DAMAGES = [
    pytest.param(truncate, r"bytes, expected \d+", id="truncated"),
    pytest.param(garble, "content differs from its checksum", id="garbled"),
    pytest.param(None, "no checksum: written by an older kdbench", id="checksum deleted"),
]


def damage(entry_file: Path, checksum: Path, how) -> None:
    """Damage `entry_file` with `how`, or delete the entry's `checksum` when `how` is None."""
    if how is None:
        checksum.unlink()
    else:
        how(entry_file)


def warning(capsys, entry: Path, reason: str) -> None:
    """Exactly one warning was printed, on stderr, naming the entry and the reason."""
    captured = capsys.readouterr()
    lines = re.findall(r"kdbench: warning: .*", captured.err)
    assert len(lines) == 1, captured.err
    assert re.fullmatch(rf"kdbench: warning: damaged cache entry {re.escape(str(entry))} \(.*{reason}.*\): "
                        r"discarded, rebuilding", lines[0]), lines[0]
    assert "kdbench: warning" not in captured.out


@pytest.mark.parametrize("how, reason", DAMAGES)
def test_damaged_teacher_outputs_are_recomputed(how, reason, tiny_teacher, tmp_path, capsys):
    tokenizer, train, teacher = _setup(tiny_teacher, tmp_path / "glue")
    collator = Collator(tokenizer)
    first, _ = cached_teacher_logits(teacher, train, collator, batch_size=16, cache_dir=tmp_path)
    [path] = (tmp_path / "teacher-outputs").glob("*.npy")
    damage(path, checksum_file(path), how)
    capsys.readouterr()

    again, hit = cached_teacher_logits(teacher, train, collator, batch_size=16, cache_dir=tmp_path)
    warning(capsys, path, reason)
    assert not hit and np.array_equal(again, first)
    assert file_damage(path, shape=[48, 2], dtype="float32") is None
    third, hit = cached_teacher_logits(teacher, train, collator, batch_size=16, cache_dir=tmp_path)
    assert hit and np.array_equal(third, first) and "warning" not in capsys.readouterr().err


def test_teacher_outputs_of_another_shape_are_recomputed(tiny_teacher, tmp_path, capsys):
    """The checksum file says what the entry holds: rows = examples, columns = the teacher's labels."""
    tokenizer, train, teacher = _setup(tiny_teacher, tmp_path / "glue")
    first, _ = cached_teacher_logits(teacher, train, Collator(tokenizer), batch_size=16, cache_dir=tmp_path)
    [path] = (tmp_path / "teacher-outputs").glob("*.npy")
    np.save(path, first[:40])  # with a consistent checksum: only the shape is wrong
    write_file_checksum(path, shape=[40, 2], dtype="float32")
    capsys.readouterr()
    again, hit = cached_teacher_logits(teacher, train, Collator(tokenizer), batch_size=16, cache_dir=tmp_path)
    warning(capsys, path, r"shape \[40, 2\], expected \[48, 2\]")
    assert not hit and np.array_equal(again, first)


def test_a_garbled_teacher_output_does_not_change_the_run(glue_dir, tiny_teacher, tmp_path, capsys):
    """The issue's case: same seed, a damaged cache in between, the same numbers."""
    first = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "a"))
    [path] = (tmp_path / "cache" / "teacher-outputs").glob("*.npy")  # the autouse fixture's cache
    garble(path)
    capsys.readouterr()
    second = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "b"))
    warning(capsys, path, "content differs")
    assert second["teacher"]["outputs_cache_hit"] is False
    strip = lambda record: [{k: v for k, v in e.items() if "runtime" not in k and "per_second" not in k}
                            for e in record["evaluations"]]
    assert strip(second) == strip(first)


def drop_lines(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-2]))


def swap_a_word(path: Path) -> None:
    """Change one text, keeping the size and valid JSON: the silent kind of damage."""
    text = path.read_text()
    assert "premise 3" in text
    path.write_text(text.replace("premise 3", "premise 8", 1))


POOL_DAMAGES = [
    pytest.param(drop_lines, r"pool\.jsonl: \d+ bytes, expected \d+", id="lines dropped"),
    pytest.param(truncate, r"pool\.jsonl: \d+ bytes, expected \d+", id="truncated"),
    pytest.param(swap_a_word, r"pool\.jsonl: content differs", id="garbled"),
    pytest.param(None, "no checksum", id="checksum deleted"),
]


@pytest.mark.parametrize("how, reason", POOL_DAMAGES)
def test_damaged_pool_is_generated_again(how, reason, tmp_path, capsys):
    method, data = get_method("none"), pairs()
    first = cached_pool(method, method.parse_params(), Tagger, data, seed=1, cache_dir=tmp_path)
    damage(first.folder / POOL_FILE, first.folder / MANIFEST, how)
    capsys.readouterr()

    again = cached_pool(method, method.parse_params(), Tagger, data, seed=1, cache_dir=tmp_path)
    warning(capsys, first.folder, reason)
    assert not again.cache_hit and again.examples.to_list() == first.examples.to_list()
    assert folder_damage(first.folder) is None
    assert not [p for p in first.folder.parent.iterdir() if p != first.folder]  # no partial folder left
    third = cached_pool(method, method.parse_params(), Tagger, data, seed=1, cache_dir=tmp_path)
    assert third.cache_hit and third.examples.to_list() == first.examples.to_list()


def test_pool_whose_rows_disagree_with_its_metadata_is_generated_again(tmp_path, capsys):
    method, data = get_method("none"), pairs()
    first = cached_pool(method, method.parse_params(), Tagger, data, seed=1, cache_dir=tmp_path)
    drop_lines(first.folder / POOL_FILE)
    seal(first.folder)  # checksums consistent with the shorter file: the metadata still tells
    capsys.readouterr()
    again = cached_pool(method, method.parse_params(), Tagger, data, seed=1, cache_dir=tmp_path)
    size = json.loads((first.folder / META_FILE).read_text())["pool_size"]
    warning(capsys, first.folder, rf"pool\.jsonl: {size - 2} rows, expected {size}")
    assert again.examples.to_list() == first.examples.to_list()


@pytest.mark.parametrize("how, reason", DAMAGES)
def test_damaged_teacher_is_fine_tuned_again(how, reason, glue_dir, tiny_encoder, tmp_path, capsys):
    config = RunConfig(data=DataConfig(task="sst2", data_dir=str(glue_dir), max_length=32), student=str(tiny_encoder),
                       teacher_train=TRAIN, cache_dir=str(tmp_path / "cache"))
    folder, first, cached = finetune_teacher(config)
    assert not cached and folder_damage(folder) is None
    damage(folder / "model.safetensors", folder / MANIFEST, how)
    capsys.readouterr()

    folder_again, again, cached = finetune_teacher(config)
    warning(capsys, folder, reason)
    assert (folder_again, cached) == (folder, False)
    assert again["best"]["value"] == first["best"]["value"]
    assert again["training_loss"] == first["training_loss"]
    assert folder_damage(folder) is None
    assert [p.name for p in folder.parent.iterdir() if p.suffix != ".lock"] == [folder.name]
    _, third, cached = finetune_teacher(config)
    assert cached and third["best"] == json.loads(json.dumps(first["best"]))


@pytest.mark.parametrize("how, reason", DAMAGES)
def test_damaged_generator_is_trained_again(how, reason, tiny_encoder, tmp_path, capsys):
    data = DataConfig(task="sst2", data_dir=str(write_sst2(tmp_path / "glue")), max_length=32)
    settings = GeneratorSettings(max_steps=2)
    folder, _ = make_generator(str(tiny_encoder), data, settings)
    weights = file_checksum(folder / "model.safetensors")
    damage(folder / "model.safetensors", folder / MANIFEST, how)
    capsys.readouterr()

    assert make_generator(str(tiny_encoder), data, settings) == (folder, False)
    warning(capsys, folder, reason)
    assert folder_damage(folder) is None and file_checksum(folder / "model.safetensors") == weights
    AutoModelForMaskedLM.from_pretrained(folder)
    assert make_generator(str(tiny_encoder), data, settings) == (folder, True)


def test_a_generator_output_dir_written_before_checksums_is_rebuilt(tiny_encoder, tmp_path, capsys):
    """`--output-dir` of make-generator is reused like the cache (a foreign folder is refused, see
    test_generator), so it is verified like the cache."""
    data = DataConfig(task="sst2", data_dir=str(write_sst2(tmp_path / "glue")), max_length=32)
    settings = GeneratorSettings(max_steps=2)
    folder, _ = make_generator(str(tiny_encoder), data, settings, output_dir=tmp_path / "gen")
    (folder / MANIFEST).unlink()  # as an older kdbench left it
    capsys.readouterr()
    assert make_generator(str(tiny_encoder), data, settings, output_dir=folder) == (folder, False)
    warning(capsys, folder, "no checksum")
    assert folder_damage(folder) is None


# a manifest damaged so that it no longer says what the folder holds (each would read as "nothing to verify")
CORRUPT_MANIFESTS = [
    pytest.param(lambda text: text[: len(text) // 2], id="truncated"),
    pytest.param(lambda text: "", id="empty"),
    pytest.param(lambda text: "\x00" * len(text), id="zeroed"),
    pytest.param(lambda text: b"\xff\xfe" + text.encode(), id="not UTF-8"),
    pytest.param(lambda text: "[]", id="not an object"),
    pytest.param(lambda text: '{"files": ["pool.jsonl"]}', id="files not a mapping"),
    pytest.param(lambda text: text.replace('"blake2b"', '"blake2x"'), id="a digest missing"),
]


def overwrite(path: Path, corrupt) -> None:
    """Replace the text in `path` with `corrupt(text)`, a text or raw bytes."""
    damaged = corrupt(path.read_text())
    path.write_bytes(damaged if isinstance(damaged, bytes) else damaged.encode())


@pytest.mark.parametrize("corrupt", CORRUPT_MANIFESTS)
def test_an_unreadable_manifest_is_damage(corrupt, tmp_path):
    """A folder's manifest is its seal: one that cannot be read (or lost its form) cannot vouch for any file,
    so the folder counts as damaged, never as intact; the same for a single file's checksum file."""
    folder = tmp_path / "entry"
    folder.mkdir()
    (folder / "pool.jsonl").write_text('{"text_a": "a fine film"}\n')
    seal(folder)
    assert folder_damage(folder) is None
    overwrite(folder / MANIFEST, corrupt)
    assert folder_damage(folder) == "checksums.json: unreadable"

    array = tmp_path / "outputs.npy"
    np.save(array, np.zeros((2, 2), dtype=np.float32))
    write_file_checksum(array, shape=[2, 2], dtype="float32")
    overwrite(checksum_file(array), corrupt)
    assert file_damage(array, shape=[2, 2], dtype="float32") == "outputs.checksum.json: unreadable"


def test_a_pool_with_an_unreadable_manifest_is_generated_again(tmp_path, capsys):
    """The pool's own files are intact and its rows match the metadata, but its checksums.json is garbage:
    the pool is reported, discarded and generated again (then sealed afresh and read from the cache)."""
    method, data = get_method("none"), pairs()
    first = cached_pool(method, method.parse_params(), Tagger, data, seed=1, cache_dir=tmp_path)
    truncate(first.folder / MANIFEST)
    capsys.readouterr()

    again = cached_pool(method, method.parse_params(), Tagger, data, seed=1, cache_dir=tmp_path)
    warning(capsys, first.folder, r"checksums\.json: unreadable")
    assert not again.cache_hit and again.examples.to_list() == first.examples.to_list()
    assert folder_damage(first.folder) is None
    assert cached_pool(method, method.parse_params(), Tagger, data, seed=1, cache_dir=tmp_path).cache_hit
