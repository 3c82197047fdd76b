"""Studies keyed by content: the same search wherever its files lie, another one when the rows or the
teacher's weights differ, and a worker or machine with other data or another teacher refused."""

from __future__ import annotations

import re
import shutil
from dataclasses import asdict, replace

import pytest

from ablations import SPEC_DIR
from bench.cli import main
from bench.parts.errors import KdbenchError
from bench.pipeline.runs import DataConfig
from bench.store.search import apply_profile, create_search, join_search, study_key
from bench.store.studies import SearchProfile, open_storage
from methods import get_method
from tests.test_runs import distill_config

TINY = SearchProfile("tiny", (1e-3,), (8,), 1, 32, None, seeds=(1,))


def _config(glue, teacher, **changes):
    config = distill_config(glue, teacher, glue.parent / "out", data=DataConfig(task="sst2", data_dir=str(glue)))
    return apply_profile(replace(config, **changes), TINY)


def _name(config, kind: str = "distill") -> str:
    return study_key(config, kind, TINY)[0]


def test_the_key_is_the_content_not_the_folders(glue_dir, tiny_teacher, tmp_path):
    here = _config(glue_dir, tiny_teacher)
    glue, teacher = shutil.copytree(glue_dir, tmp_path / "elsewhere" / "glue"), tmp_path / "elsewhere" / "teacher"
    shutil.copytree(tiny_teacher, teacher)
    there = replace(_config(glue, teacher), cache_dir=str(tmp_path / "other-cache"))
    assert _name(here) == _name(there)
    changed = tmp_path / "changed"
    shutil.copytree(glue_dir, changed)
    tsv = changed / "SST-2" / "train.tsv"
    tsv.write_text(tsv.read_text().replace("\t1\n", "\t0\n", 1))  # one training label
    assert _name(_config(changed, tiny_teacher)) != _name(here)
    assert _name(here, "finetune") != _name(here)


def test_parameters_typed_or_spelled_out_give_one_key(glue_dir, tiny_teacher):
    """`--param eps=1e-5` on the command line and `eps = 1e-5` in a spec (which spells out every parameter)."""
    typed = _config(glue_dir, tiny_teacher, method="ad2", method_params={"eps": "1e-5"})
    spelled = asdict(get_method("ad2").parse_params({"eps": 1e-5}))
    assert _name(typed) == _name(replace(typed, method_params=spelled))
    assert _name(typed) != _name(replace(typed, method_params={"eps": "1e-4"}))


def test_a_worker_with_other_data_or_another_teacher_refuses(glue_dir, tiny_teacher, tiny_encoder, tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'studies.db'}")
    config = _config(glue_dir, tiny_teacher, cache_dir=str(tmp_path / "their-cache"))
    name = create_search(config, kind="distill", profile=TINY, storage=storage).name
    copy = shutil.copytree(tiny_teacher, tmp_path / "my-teacher")
    assert join_search(storage, name, teacher=str(copy)).config.teacher == str(copy)  # a copy is the same teacher
    assert join_search(storage, name).config.cache_dir == str(tmp_path / "their-cache")  # the search's, by default
    assert join_search(storage, name, cache_dir=str(tmp_path / "mine")).config.cache_dir == str(tmp_path / "mine")
    other = shutil.copytree(glue_dir, tmp_path / "other-glue")
    lines = (glue_dir / "SST-2" / "dev.tsv").read_text().splitlines(keepends=True)
    (other / "SST-2" / "dev.tsv").write_text("".join(lines[:-1]))  # one dev sentence fewer
    data_differs = rf"^this worker's data differs from search {re.escape(name)}'s .*: give --data-dir the GLUE"
    with pytest.raises(KdbenchError, match=data_differs):
        join_search(storage, name, data_dir=str(other))
    with pytest.raises(KdbenchError, match="this worker's teacher differs .*give --teacher a copy"):
        join_search(storage, name, teacher=str(tiny_encoder))


def test_a_machine_whose_teacher_came_out_otherwise_is_refused(glue_dir, tiny_teacher, tiny_encoder, tmp_path):
    """The same spec on two machines, each fine-tuning its own teacher: their searches would not compare."""
    storage = open_storage(f"sqlite:///{tmp_path / 'studies.db'}")
    origin = "minilm fine-tuned with the spec's settings"
    first = create_search(_config(glue_dir, tiny_teacher), kind="distill", profile=TINY, storage=storage,
                          teacher_origin=origin)
    with pytest.raises(KdbenchError, match=rf"^this worker's teacher differs from search {re.escape(first.name)}'s "):
        create_search(_config(glue_dir, tiny_encoder), kind="distill", profile=TINY, storage=storage,
                      teacher_origin=origin)
    create_search(_config(glue_dir, tiny_encoder), kind="distill", profile=TINY, storage=storage)  # a teacher as given


def test_searches_with_other_settings_are_not_compared(glue_dir, tiny_teacher, tmp_path):
    """Only a search with the same settings is another machine's copy: another method's search on other
    training rows, with the same teacher, is a search of its own."""
    storage = open_storage(f"sqlite:///{tmp_path / 'studies.db'}")
    create_search(_config(glue_dir, tiny_teacher), kind="distill", profile=TINY, storage=storage)
    changed = shutil.copytree(glue_dir, tmp_path / "changed")
    tsv = changed / "SST-2" / "train.tsv"
    tsv.write_text(tsv.read_text().replace("\t1\n", "\t0\n", 1))  # one training label
    other = create_search(_config(changed, tiny_teacher, method="ad2"), kind="distill", profile=TINY,
                          storage=storage)
    assert other.config.method == "ad2"


def test_studies_carry_readable_attributes(glue_dir, tiny_teacher, tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'studies.db'}")
    config = _config(glue_dir, tiny_teacher, method="ad2")
    search = create_search(config, kind="distill", profile=TINY, storage=storage,
                           labels={"spec": "ad2-eps", "variant": "1e-05", "swept": "eps", "value": "1e-05"})
    for stage in ("grid", "seeds"):
        attrs = storage.get_study_user_attrs(storage.get_study_id_from_name(f"{search.name}/{stage}"))
        assert {k: attrs[k] for k in ("task", "kind", "method", "objective", "spec", "swept", "value")} == {
            "task": "sst2", "kind": "distill", "method": "ad2", "objective": "kd", "spec": "ad2-eps", "swept": "eps",
            "value": "1e-05"}


@pytest.mark.parametrize("command", [["worker", "--study", "x"], ["ablate", str(SPEC_DIR / "methods.toml")],
                                     ["search", "--teacher", "t"]])
def test_searches_refuse_torchrun_with_the_recipe(command, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    open_storage(storage)
    assert main([*command, "--storage", storage, "--output-dir", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "under torchrun each of the 2 processes would pull its own" in error and "one worker per device" in error
    assert not (tmp_path / "out").exists()


def test_the_first_machine_to_create_a_search_describes_it(glue_dir, tiny_teacher, tmp_path):
    """The same search created again from copies of its files (another machine) keeps the first one's stored
    configuration: the folders a worker joining it uses by default."""
    from bench.store.studies import load_search

    storage = open_storage(f"sqlite:///{tmp_path / 'studies.db'}")
    name = create_search(_config(glue_dir, tiny_teacher), kind="distill", profile=TINY, storage=storage).name
    glue, teacher = shutil.copytree(glue_dir, tmp_path / "copy" / "glue"), tmp_path / "copy" / "teacher"
    shutil.copytree(tiny_teacher, teacher)
    assert create_search(_config(glue, teacher), kind="distill", profile=TINY, storage=storage).name == name
    stored = load_search(storage, name).config
    assert (stored.data.data_dir, stored.teacher) == (str(glue_dir), str(tiny_teacher))
