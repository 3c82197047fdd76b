"""The student as a role: its short form and its builder's name and parameters, one the other's image; the
command line, specs and configs that give it either way; and stored studies that keep their names."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ablations.spec import parse_spec
from bench.cli import build_parser
from bench.commands.options import role_values
from bench.parts.errors import KdbenchError, UnknownNameError
from bench.pipeline.config import DataConfig, RunConfig, from_identity, identity, stored
from students.registry import split_student, student_text


@pytest.mark.parametrize("short, name, params", [
    ("teacher-layers:0,2,4", "teacher-layers", {"layers": "0,2,4"}),
    ("teacher-layers:1", "teacher-layers", {"layers": "1"}),
    ("fresh:num_hidden_layers=4,hidden_size=256", "fresh", {"num_hidden_layers": "4", "hidden_size": "256"}),
    ("fresh", "fresh", {}),
    ("minilm", "pretrained", {"model": "minilm"}),
    ("google/bert_uncased_L-4_H-256_A-4", "pretrained", {"model": "google/bert_uncased_L-4_H-256_A-4"}),
    ("/models/my:student", "pretrained", {"model": "/models/my:student"}),  # no registered kind before the colon
    ("pretrained:/models/x", "pretrained", {"model": "/models/x"}),
])
def test_a_short_form_is_a_builder_and_its_parameters(short, name, params):
    assert split_student(short) == (name, params)
    if not short.startswith("pretrained:"):
        assert student_text(name, params) == short  # what `model` held: a stored study's key


def test_parameters_given_apart_join_the_short_form_and_defaults_are_left_out():
    assert split_student("teacher-layers", {"layers": "1"}) == ("teacher-layers", {"layers": "1"})
    assert split_student("fresh:hidden_size=8", {"num_hidden_layers": 2}) == (
        "fresh", {"hidden_size": "8", "num_hidden_layers": 2})
    assert split_student("teacher-layers:1", {"layers": "1"}) == ("teacher-layers", {"layers": "1"})
    with pytest.raises(KdbenchError, match="both set layers"):  # a replaced student with the old one's parameters
        replace(RunConfig(student="teacher-layers:0,2"), student="teacher-layers:1")
    assert student_text("teacher-layers", {}) == "teacher-layers:0,2,4"  # its default layers
    assert student_text("fresh", {"hidden_size": 64, "num_hidden_layers": None}) == "fresh:hidden_size=64"
    with pytest.raises(KdbenchError, match="key=value"):
        split_student("fresh:hidden_size")


def test_the_config_keeps_the_old_model_field_in_its_identity():
    short = RunConfig(data=DataConfig(task="sst2"), student="teacher-layers:0,2")
    apart = RunConfig(data=DataConfig(task="sst2"), student="teacher-layers", student_params={"layers": "0,2"})
    assert (short.student, short.student_params) == ("teacher-layers", {"layers": "0,2"})
    assert identity(short) == identity(apart)
    assert identity(short)["model"] == "teacher-layers:0,2"
    assert not {"student", "student_params"} & set(identity(short))
    assert stored(short)["model"] == "teacher-layers:0,2" and stored(short)["student"] == "teacher-layers"
    assert from_identity(identity(short)) == short  # an earlier study's config, with only `model`
    assert from_identity(stored(short)) == short
    changed = replace(short, student_params={"layers": "0"})
    assert identity(changed)["model"] == "teacher-layers:0"


def test_the_command_line_takes_the_short_form_or_the_parameters():
    def config(*student):
        return RunConfig(teacher="t", **role_values(build_parser().parse_args(["distill", "--teacher", "t", *student])))

    short = config("--student", "teacher-layers:0")
    apart = config("--student", "teacher-layers", "--student-param", "layers=0")
    default = config()
    assert identity(short) == identity(apart) and identity(short)["model"] == "teacher-layers:0"
    assert identity(default)["model"] == "teacher-layers:0,2,4"
    teacher_args = build_parser().parse_args(["finetune-teacher", "--model", "minilm"])
    assert role_values(teacher_args) == {"student": "minilm", "student_params": {}}


def test_an_unknown_student_parameter_names_the_valid_ones():
    from bench.pipeline.choice import choose_parts

    with pytest.raises(UnknownNameError, match="layers"):
        choose_parts(RunConfig(student="teacher-layers", student_params={"layer": "0"}))
    with pytest.raises(KdbenchError, match="comma-separated layer indices"):
        choose_parts(RunConfig(student="teacher-layers:0,x"))


def test_specs_give_the_student_at_the_top_per_variant_or_swept():
    top = parse_spec({"tasks": ["sst2"], "student": "teacher-layers:0",
                      "variants": [{"label": "kd"}, {"label": "fresh", "student": "fresh:num_hidden_layers=1"}]},
                     name="s")
    assert [v.student_text for v in top.variants] == ["teacher-layers:0", "fresh:num_hidden_layers=1"]
    assert top.variants[1].parts()["student_params"] == {"num_hidden_layers": 1}
    assert top.student == "teacher-layers:0, fresh:num_hidden_layers=1"
    swept = parse_spec({"tasks": ["sst2"], "student": "teacher-layers:0",
                        "sweep": {"parameter": "student.layers", "values": ["0", "0,2"]}}, name="s")
    assert [v.student_text for v in swept.variants] == ["teacher-layers:0", "teacher-layers:0,2"]
    with pytest.raises(KdbenchError, match="layers"):
        parse_spec({"tasks": ["sst2"], "variants": [{"label": "x", "student": "teacher-layers",
                                                     "student_params": {"layer": "0"}}]}, name="s")


# The settings digests of these searches' names, computed by the code before the student was a role
# (commit 4b4fa1f, where it was the string `RunConfig.model`): stored studies keep their names.
EARLIER_KEYS = {
    ("teacher-layers:0,2", "none"): "ba5d83442b41fe16c84eab54",
    ("teacher-layers:0,2", "ad2"): "2a150235f420a973f24cf910",
    ("fresh:num_hidden_layers=1,hidden_size=32", "none"): "6799ea4d37d6cb46758f47de",
    ("fresh:num_hidden_layers=1,hidden_size=32", "ad2"): "42736b6ebf74d3ae2261d73e",
    ("minilm", "none"): "a300292ca7cbccf25ec30b2c",
    ("minilm", "ad2"): "5597eba1e4ea3266b6890757",
}


@pytest.mark.parametrize("student, method", EARLIER_KEYS)
def test_searches_keep_the_names_they_had_before_the_student_was_a_role(student, method, glue_dir):
    from bench.store.search import apply_profile, study_key
    from bench.store.studies import SearchProfile

    tiny = SearchProfile("tiny", (1e-3,), (8,), 1, 32, None, seeds=(1,))
    config = RunConfig(data=DataConfig(task="sst2", data_dir=str(glue_dir)), teacher="t", method=method,
                       method_params={"eps": "1e-5"} if method == "ad2" else {}, student=student)
    name, settings, _ = study_key(apply_profile(config, tiny), "distill", tiny)
    assert settings == EARLIER_KEYS[student, method]
    assert name.startswith(f"sst2-distill-{method}-")  # the student is in the settings, not the name
