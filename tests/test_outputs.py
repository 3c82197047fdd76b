"""Parts that read more than logits: the student's and the teacher's hidden states and attentions,
computed in the same forward only when a part declares it reads them; the layer map between their
layers; and the teacher's logits from the cache or from an online forward of each batch."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from bench.parts.errors import KdbenchError
from bench.parts.models import load_classifier
from bench.parts.tasks import get_task
from bench.pipeline.choice import choose_parts
from bench.pipeline.runs import run_distill
from bench.pipeline.students import build_student, layer_map
from tests.conftest import tiny_config
from tests.test_runs import distill_config


def _run(glue_dir: Path, teacher: Path, out: Path, **changes) -> dict:
    return run_distill(distill_config(glue_dir, teacher, out, objective="reader", **changes))


def test_hidden_states_come_with_the_logits_only_when_read(reader, glue_dir, tiny_teacher, tmp_path):
    _run(glue_dir, tiny_teacher, tmp_path / "logits")
    first = reader["batches"][0]
    assert first["student"].hidden_states is None and first["teacher"].hidden_states is None
    assert torch.equal(first["student"].logits, first["logits"])
    reader["class"].reads, reader["batches"] = frozenset({"hidden_states"}), []
    _run(glue_dir, tiny_teacher, tmp_path / "hidden")
    for seen in reader["batches"]:
        student, teacher, direct = seen["student"], seen["teacher"], seen["direct"]
        assert len(student.hidden_states) == 2 + 1 and len(teacher.hidden_states) == tiny_config().num_hidden_layers + 1
        assert student.attentions is None and teacher.attentions is None
        assert student.hidden_states[-1].requires_grad  # the student's own forward, not a copy without gradient
        assert torch.equal(teacher.logits, seen["teacher_logits"])  # the cached logits, as before
        for mine, direct_state in zip(teacher.hidden_states, direct.hidden_states):
            assert torch.allclose(mine, direct_state, atol=1e-6)
        assert seen["map"] == {0: 0, 1: 1, 2: 3}  # teacher-layers:0,2 keeps the teacher's layers 0 and 2


def test_attentions_are_probabilities_over_the_real_tokens(reader, glue_dir, tiny_teacher, tmp_path):
    reader["class"].reads = frozenset({"attentions"})
    _run(glue_dir, tiny_teacher, tmp_path / "attentions")
    seen = reader["batches"][0]
    student, teacher, mask = seen["student"], seen["teacher"], seen["mask"]
    assert len(student.attentions) == 2 and len(teacher.attentions) == tiny_config().num_hidden_layers
    for layer in (*student.attentions, *teacher.attentions):
        assert layer.shape[1] == tiny_config().num_attention_heads and layer.shape[-1] == mask.shape[1]
        assert torch.all(layer.masked_select(~mask.bool()[:, None, None, :]) < 1e-6)  # nothing on padding
    for layer in teacher.attentions:  # the student's, in training, are as its attention dropout left them
        assert torch.allclose(layer.sum(-1), torch.ones_like(layer.sum(-1)), atol=1e-5)
    assert not torch.allclose(student.attentions[0].sum(-1), torch.ones_like(student.attentions[0].sum(-1)))


def test_the_teacher_online_gives_the_cached_logits_and_writes_no_cache(reader, glue_dir, tiny_teacher, tmp_path):
    cached = _run(glue_dir, tiny_teacher, tmp_path / "cached", cache_dir=str(tmp_path / "cache-a"))
    cached_logits = [seen["teacher_logits"] for seen in reader["batches"]]
    reader["batches"] = []
    online = _run(glue_dir, tiny_teacher, tmp_path / "online", cache_dir=str(tmp_path / "cache-b"),
                  teacher_outputs="online")
    assert online["teacher"]["outputs"] == "online" and online["teacher"]["outputs_cache_hit"] is None
    assert cached["teacher"]["outputs"] == "cached" and cached["teacher"]["outputs_cache_hit"] is False
    assert not (tmp_path / "cache-b" / "teacher-outputs").exists()
    for mine, theirs in zip([seen["teacher_logits"] for seen in reader["batches"]], cached_logits, strict=True):
        assert torch.allclose(mine, theirs, atol=1e-5)  # the same batches; padded otherwise, so not bit for bit
    for a, b in zip(cached["evaluations"], online["evaluations"], strict=True):
        assert a["eval_validation_score"] == b["eval_validation_score"]


def test_an_in_loop_method_refuses_a_part_that_reads_more_than_logits(reader, glue_dir, tiny_teacher, tmp_path):
    reader["class"].reads = frozenset({"hidden_states"})
    config = distill_config(glue_dir, tiny_teacher, tmp_path, objective="reader", method="ad2")
    with pytest.raises(KdbenchError, match="objective reader reads more than logits, which in-loop method ad2"):
        choose_parts(config)
    choose_parts(replace(config, method="eda"))  # a pool method computes no forwards of its own
    reader["class"].reads = frozenset({"gradients"})
    with pytest.raises(KdbenchError, match="objective reader reads gradients: a part may read hidden_states and "
                                           "attentions"):
        choose_parts(replace(config, method="none"))


def test_the_layer_map_pairs_kept_layers_and_spaces_the_others_evenly(tiny_teacher):
    teacher = load_classifier(str(tiny_teacher), get_task("sst2"))
    assert layer_map("teacher-layers:1,3", build_student("teacher-layers:1,3", teacher, get_task("sst2")),
                     teacher) == {0: 0, 1: 2, 2: 4}
    layers = tiny_config().num_hidden_layers
    fresh = build_student("fresh:num_hidden_layers=2", teacher, get_task("sst2"))
    assert layer_map("fresh:num_hidden_layers=2", fresh, teacher) == {0: 0, 1: round(layers / 2), 2: layers}
