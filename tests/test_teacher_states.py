"""The teacher's hidden states and attentions from the cache on disk (`--teacher-outputs cached-all`): each batch
gets what an online forward of it gives on the real tokens and zeros on padding, the entry is reused, a damaged
one rebuilt, and a run that cannot hold it is refused before any teacher forward."""

from __future__ import annotations

from collections import namedtuple
from dataclasses import replace

import numpy as np
import pytest
import torch

from bench.parts.errors import KdbenchError
from bench.pipeline import teacher_states
from bench.pipeline.choice import choose_parts
from bench.pipeline.runs import run_distill
from tests.conftest import tiny_config
from tests.test_outputs import _run
from tests.test_runs import distill_config

BOTH = frozenset({"hidden_states", "attentions"})


def _entries(cache):
    return [p for p in (cache / "teacher-states").iterdir() if not p.name.startswith(".")]


def test_each_batch_gets_the_online_states_on_its_real_tokens(reader, glue_dir, tiny_teacher, tmp_path):
    reader["class"].reads = BOTH
    record = _run(glue_dir, tiny_teacher, tmp_path / "run", cache_dir=str(tmp_path / "cache"),
                  teacher_outputs="cached-all")
    assert record["teacher"]["states_cache_hit"] is False
    padded = 0
    for seen in reader["batches"]:
        stored, direct, mask = seen["teacher"], seen["direct"], seen["mask"].bool()
        padded += int((~mask).sum())
        assert len(stored.hidden_states) == tiny_config().num_hidden_layers + 1
        assert len(stored.attentions) == tiny_config().num_hidden_layers
        assert torch.equal(stored.logits, seen["teacher_logits"])
        for mine, online in zip(stored.hidden_states, direct.hidden_states, strict=True):
            assert mine.shape == online.shape
            assert torch.allclose(mine[mask], online[mask], atol=1e-5)
            assert torch.all(mine[~mask] == 0)
        pairs = mask[:, None, :, None] & mask[:, None, None, :]  # [batch, 1, query, key], both real
        for mine, online in zip(stored.attentions, direct.attentions, strict=True):
            assert mine.shape == online.shape
            real = pairs.expand_as(mine)
            assert torch.allclose(mine[real], online[real], atol=1e-5)
            assert torch.all(mine[~real] == 0)
    assert padded  # some batch had padding, so the zeros were tried


def _scores(record: dict) -> list[tuple[float, float]]:
    return [(e["eval_validation_score"], e["eval_validation_loss"]) for e in record["evaluations"]]


def test_the_entry_is_reused_and_trains_as_the_online_states_do(glue_dir, tiny_teacher, tmp_path, capsys):
    cache = tmp_path / "cache"

    def run(out: str, outputs: str) -> dict:
        return run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / out, objective="pkd",
                                          cache_dir=str(cache), teacher_outputs=outputs))

    first = run("a", "cached-all")
    written = capsys.readouterr().out
    second = run("b", "cached-all")
    assert "teacher states: writing hidden_states of" in written and " MB, to " in written
    assert "read from" in capsys.readouterr().out
    assert first["teacher"]["states_cache_hit"] is False and second["teacher"]["states_cache_hit"] is True
    assert len(_entries(cache)) == 1 and _scores(first) == _scores(second)
    online = run("c", "cached")
    assert online["teacher"]["states_cache_hit"] is None
    for (score, loss), (online_score, online_loss) in zip(_scores(first), _scores(online), strict=True):
        assert score == online_score and loss == pytest.approx(online_loss, abs=1e-4)
    hidden = np.load(_entries(cache)[0] / "hidden_states.npy", mmap_mode="r")
    lengths = np.load(_entries(cache)[0] / "lengths.npy")
    assert len(lengths) == sum(first["training_rows"].values())
    assert hidden.shape == (lengths.sum(), tiny_config().num_hidden_layers + 1, tiny_config().hidden_size)
    assert not (_entries(cache)[0] / "attentions.npy").exists()  # only what the parts read


def test_a_damaged_entry_is_rebuilt(reader, glue_dir, tiny_teacher, tmp_path, capsys):
    reader["class"].reads = BOTH
    cache = tmp_path / "cache"
    first = _run(glue_dir, tiny_teacher, tmp_path / "a", cache_dir=str(cache), teacher_outputs="cached-all")
    entry = _entries(cache)[0]
    with open(entry / "attentions.npy", "r+b") as handle:  # same size, other content
        handle.seek(-8, 2)
        handle.write(b"\x7f" * 8)
    capsys.readouterr()
    again = _run(glue_dir, tiny_teacher, tmp_path / "b", cache_dir=str(cache), teacher_outputs="cached-all")
    assert "damaged cache entry" in capsys.readouterr().err
    assert again["teacher"]["states_cache_hit"] is False and _scores(again) == _scores(first)


def test_no_room_on_disk_is_refused_before_any_teacher_forward(reader, glue_dir, tiny_teacher, tmp_path,
                                                                monkeypatch):
    reader["class"].reads = BOTH
    monkeypatch.setattr(teacher_states.shutil, "disk_usage", lambda path: namedtuple("Usage", "free")(1024))
    monkeypatch.setattr(teacher_states, "_write", lambda *args: pytest.fail("wrote without room"))
    with pytest.raises(KdbenchError, match=r"needs [\d.,]+ MB and .* has 0.0 MB free: .*--teacher-outputs cached"):
        _run(glue_dir, tiny_teacher, tmp_path / "run", cache_dir=str(tmp_path / "cache"), teacher_outputs="cached-all")
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").glob("record.json"))


def test_a_selector_that_swaps_rows_is_refused_with_stored_states(glue_dir, tiny_teacher, tmp_path):
    config = distill_config(glue_dir, tiny_teacher, tmp_path, objective="tinybert", method="eda",
                            selector="glitter", teacher_outputs="cached-all")
    with pytest.raises(KdbenchError, match="selector glitter puts other rows in a batch's places, and "
                                           "--teacher-outputs cached-all reads the teacher's states for objective "
                                           "tinybert by place"):
        choose_parts(config)
    choose_parts(replace(config, teacher_outputs="cached"))
    choose_parts(replace(config, objective="kd"))  # nothing read from the states
