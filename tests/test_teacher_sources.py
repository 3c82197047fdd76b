"""The teacher source is a role (bench/roles.py): its parts declare what they cache, the run follows the
declaration rather than the name, a spec gives it for every variant or per variant, and stored studies keep
their keys."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from ablations.spec import parse_spec
from bench.cli import main
from bench.parts.errors import KdbenchError
from bench.pipeline.config import RunConfig, identity
from bench.pipeline.runs import run_distill
from teachers import TEACHER_SOURCES, register_teacher_source
from teachers.base import TeacherSource
from tests.test_runs import distill_config


def test_the_built_in_sources_declare_what_they_cache():
    declared = {part.name: (part.implementation.logits_cached, part.implementation.states_cached)
                for part in TEACHER_SOURCES.list()}
    assert declared == {"cached": (True, False), "online": (False, False), "cached-all": (True, True)}


@pytest.fixture
def plugin_sources():
    """Plugin sources under new names: one that caches nothing (the run must treat it as online), one that
    caches the states too (as cached-all)."""
    register_teacher_source("streamed", description="a test")(type("Streamed", (TeacherSource,), {"logits_cached": False}))
    register_teacher_source("stored", description="a test")(type("Stored", (TeacherSource,), {"states_cached": True}))
    yield
    TEACHER_SOURCES._parts.pop("streamed")
    TEACHER_SOURCES._parts.pop("stored")


def _learned(record: dict) -> tuple:
    return record["training_loss"], [(e["eval_validation_score"], e["eval_validation_loss"]) for e in record["evaluations"]]


def test_a_run_follows_the_sources_declaration_not_its_name(plugin_sources, glue_dir, tiny_teacher, tmp_path):
    cache = tmp_path / "cache"

    def run(out: str, **changes) -> dict:
        return run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / out, cache_dir=str(cache), **changes))

    streamed = run("streamed", teacher_outputs="streamed")
    assert streamed["teacher"]["outputs"] == "streamed" and streamed["teacher"]["outputs_cache_hit"] is None
    assert not (cache / "teacher-outputs").exists()  # no logits were cached
    assert _learned(streamed) == _learned(run("online", teacher_outputs="online"))  # the teacher ran online
    cached = run("cached")
    assert cached["teacher"]["outputs_cache_hit"] is False and any((cache / "teacher-outputs").glob("*.npy"))
    stored = run("stored", teacher_outputs="stored", objective="pkd")
    assert stored["teacher"]["states_cache_hit"] is False and (cache / "teacher-states").is_dir()


def test_an_unknown_source_gets_the_nearest_names(glue_dir, tiny_teacher, tmp_path, capsys):
    assert main(["distill", "--task", "sst2", "--data-dir", str(glue_dir), "--teacher", str(tiny_teacher),
                 "--teacher-outputs", "cached-al", "--output-dir", str(tmp_path / "run")]) != 0
    assert "unknown teacher source 'cached-al': did you mean cached-all or cached?" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def _variants(raw: dict) -> dict[str, tuple[str, dict]]:
    spec = parse_spec({"tasks": ["sst2"], **raw}, name="sources")
    return {v.label: (v.teacher_outputs, v.teacher_outputs_params) for v in spec.variants}


def test_a_spec_gives_the_source_for_every_variant_or_one_of_its_own():
    variants = [{"label": "KD"}, {"label": "AD2", "method": "ad2", "teacher_outputs": "online"}]
    assert _variants({"variants": variants}) == {"KD": ("cached", {}), "AD2": ("online", {})}
    assert _variants({"teacher_outputs": "online", "variants": variants[:1]}) == {"KD": ("online", {})}
    assert _variants({"teacher_outputs": "cached-all", "variants": variants}) == {
        "KD": ("cached-all", {}), "AD2": ("online", {})}
    with pytest.raises(KdbenchError, match="unknown teacher source 'onlin'"):
        _variants({"teacher_outputs": "onlin", "variants": variants[:1]})
    with pytest.raises(KdbenchError, match="only the student and the teacher outputs may be given at the top level"):
        _variants({"objective": "pkd", "variants": variants[:1]})


def test_stored_keys_are_unchanged_by_the_role():
    for outputs in ("cached", "online", "cached-all"):
        key = identity(RunConfig(teacher_outputs=outputs))
        assert "teacher_outputs_params" not in key  # at the value earlier versions behaved as
        assert (key.get("teacher_outputs") == outputs) == (outputs != "cached")
    assert "teacher_outputs_params" in asdict(RunConfig())  # records keep it
