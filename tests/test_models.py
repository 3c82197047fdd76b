"""Model resolution, students built from teacher layers or a fresh config, and their errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import AutoModelForSequenceClassification

import bench.parts.models
from bench.parts.errors import KdbenchError, UnknownNameError
from bench.parts.models import MINILM, load_classifier, resolve_model
from bench.parts.tasks import get_task
from bench.pipeline.students import build_student, parse_student

SST2 = get_task("sst2")


def test_keeping_layers_copies_exactly_those_teacher_layers(tiny_teacher, tmp_path):
    teacher = load_classifier(str(tiny_teacher), SST2)
    student = build_student("teacher-layers:0,2", teacher, SST2)
    assert student.config.num_hidden_layers == 2 and len(student.bert.encoder.layer) == 2
    for new, old in ((0, 0), (1, 2)):
        for (name, p_new), (_, p_old) in zip(student.bert.encoder.layer[new].named_parameters(),
                                             teacher.bert.encoder.layer[old].named_parameters()):
            assert torch.equal(p_new, p_old), name
    assert torch.equal(student.bert.embeddings.word_embeddings.weight, teacher.bert.embeddings.word_embeddings.weight)
    assert student.bert.encoder.layer[1].attention.self.layer_idx == 1
    # a copy, not shared weights, and the teacher keeps its 4 layers
    assert student.bert.encoder.layer[0].attention.self.query.weight is not teacher.bert.encoder.layer[0].attention.self.query.weight
    assert teacher.config.num_hidden_layers == 4

    student.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    ids = torch.tensor([[101, 2204, 3185, 102]])
    student.eval(), reloaded.eval()
    assert torch.allclose(student(input_ids=ids).logits, reloaded(input_ids=ids).logits)


@pytest.mark.parametrize("spec", ["teacher-layers:0,9", "teacher-layers:1,1", "teacher-layers:a,b"])
def test_bad_layer_selections_are_explained(tiny_teacher, spec):
    teacher = load_classifier(str(tiny_teacher), SST2)
    with pytest.raises(KdbenchError, match="teacher-layers"):
        build_student(spec, teacher, SST2)


def test_fresh_student_changes_only_the_named_config_values(tiny_teacher):
    teacher = load_classifier(str(tiny_teacher), SST2)
    torch.manual_seed(0)
    student = build_student("fresh:num_hidden_layers=1,intermediate_size=16", teacher, SST2)
    assert student.config.num_hidden_layers == 1 and student.config.intermediate_size == 16
    assert student.config.hidden_size == teacher.config.hidden_size
    assert not torch.equal(student.bert.embeddings.word_embeddings.weight,
                           teacher.bert.embeddings.word_embeddings.weight)


def test_fresh_student_unknown_field_names_the_nearest(tiny_teacher):
    teacher = load_classifier(str(tiny_teacher), SST2)
    with pytest.raises(UnknownNameError, match="num_hidden_layers"):
        build_student("fresh:num_hiden_layers=2", teacher, SST2)


def test_student_spec_parsing():
    def named(spec):
        part, params = parse_student(spec)
        return part.name, {k: v for k, v in dataclasses.asdict(params).items() if v is not None}

    assert named("teacher-layers:0,2,4") == ("teacher-layers", {"layers": "0,2,4"})
    assert named("fresh:hidden_size=256,hidden_act=relu") == ("fresh", {"hidden_size": 256, "hidden_act": "relu"})
    assert named("google/bert_uncased_L-4_H-256_A-4") == ("pretrained", {"model": "google/bert_uncased_L-4_H-256_A-4"})


@pytest.mark.parametrize("spec, message", [
    ("fresh:hidden_size=0", "parameter hidden_size of student fresh must be >= 1"),
    ("fresh:hidden_size=big", "parameter hidden_size of student fresh takes an int"),
    ("fresh:hidden_size", "key=value"),
    ("teacher-layers:0,x", "comma-separated layer indices"),
])
def test_a_students_parameters_are_typed_and_checked_before_any_model_loads(spec, message):
    with pytest.raises(KdbenchError, match=message):
        parse_student(spec)


def test_teacher_without_a_trained_head_is_refused(tiny_encoder):
    with pytest.raises(KdbenchError, match="finetune-teacher"):
        load_classifier(str(tiny_encoder), SST2, require_trained_head=True)


def test_offline_minilm_resolves_to_the_packaged_copy(monkeypatch):
    monkeypatch.setattr(bench.parts.models, "hub_reachable", lambda: False)
    monkeypatch.setattr(bench.parts.models, "_cached_snapshot", lambda name: None)
    path = resolve_model("minilm")
    assert path == resolve_model(MINILM) and path.endswith("model")
    assert load_classifier("minilm", SST2).config.num_hidden_layers == 6


def test_unknown_model_offline_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(bench.parts.models, "hub_reachable", lambda: False)
    with pytest.raises(KdbenchError) as error:
        resolve_model("sentence-transformers/all-MiniLM-L6-v3")
    message = str(error.value)
    assert "hub is unreachable" in message and "did you mean sentence-transformers/all-MiniLM-L6-v2" in message
    assert "\n" not in message


def test_missing_local_folder_is_reported(tmp_path):
    with pytest.raises(KdbenchError, match="no model folder"):
        resolve_model(str(tmp_path / "nope"))
    with pytest.raises(KdbenchError, match="no config.json"):
        resolve_model(str(tmp_path))
