"""Studies keyed by content: the same search wherever its files lie, another one when the rows or the
teacher's weights differ, and a worker or machine with other data or another teacher refused."""

from __future__ import annotations

import re
import shutil
from dataclasses import asdict, replace
from pathlib import Path

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


def _one_label_changed(glue: Path, where: Path) -> Path:
    """A copy of the GLUE folder `glue` at `where` with one SST-2 training label flipped: other content."""
    changed = shutil.copytree(glue, where)
    tsv = changed / "SST-2" / "train.tsv"
    tsv.write_text(tsv.read_text().replace("\t1\n", "\t0\n", 1))
    return changed


def test_the_key_is_the_content_not_the_folders(glue_dir, tiny_teacher, tmp_path):
    here = _config(glue_dir, tiny_teacher)
    glue, teacher = shutil.copytree(glue_dir, tmp_path / "elsewhere" / "glue"), tmp_path / "elsewhere" / "teacher"
    shutil.copytree(tiny_teacher, teacher)
    there = replace(_config(glue, teacher), cache_dir=str(tmp_path / "other-cache"))
    assert _name(here) == _name(there)
    assert _name(_config(_one_label_changed(glue_dir, tmp_path / "changed"), tiny_teacher)) != _name(here)
    assert _name(here, "finetune") != _name(here)


def test_a_searchs_name_spells_its_parts_and_not_its_grid_point(glue_dir, tiny_teacher):
    """`task-kind-method[+objective][+scheme][+selector]-digest`, the roles at their default left out; the
    learning rate, batch size and seed, which the search varies, change neither its name nor its settings."""
    config = _config(glue_dir, tiny_teacher, method="eda")
    assert re.fullmatch(r"sst2-distill-eda-[0-9a-f]{24}", _name(config))
    assert re.fullmatch(r"sst2-distill-eda\+swa-[0-9a-f]{24}", _name(replace(config, scheme="swa")))
    every = replace(config, objective="continuation", scheme="swa", selector="glitter")
    assert re.fullmatch(r"sst2-distill-eda\+continuation\+swa\+glitter-[0-9a-f]{24}", _name(every))
    point = replace(config, train=replace(config.train, learning_rate=7e-4, per_device_train_batch_size=3, seed=9))
    assert study_key(point, "distill", TINY)[:2] == study_key(config, "distill", TINY)[:2]


def test_another_profile_is_another_search_and_another_origin(glue_dir, tiny_teacher):
    """The profile (grid, seeds, epochs, ...) is in the name and in the settings an origin is keyed on."""
    config = _config(glue_dir, tiny_teacher)
    name, settings, _ = study_key(config, "distill", TINY)
    wider_name, wider_settings, _ = study_key(config, "distill", replace(TINY, learning_rates=(1e-3, 2e-3)))
    assert wider_name != name and wider_settings != settings


def test_a_distillation_that_would_learn_nothing_is_refused_before_its_studies_and_fine_tuning_is_not(
        glue_dir, tiny_teacher, tmp_path):
    """A search checks its parts as its kind runs them (bench/pipeline/choice.py) before a study is made:
    KD weights both 0 leave a student nothing to learn; fine-tuning reads no KD weight."""
    storage = open_storage(f"sqlite:///{tmp_path / 'studies.db'}")
    config = _config(glue_dir, tiny_teacher)
    config = replace(config, kd=replace(config.kd, alpha_kd=0.0, alpha_ce=0.0))
    with pytest.raises(KdbenchError, match="alpha_kd and alpha_ce are both 0"):
        create_search(config, kind="distill", profile=TINY, storage=storage)
    assert not storage.get_all_studies()
    assert create_search(config, kind="finetune", profile=TINY, storage=storage).kind == "finetune"


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
    changed = _one_label_changed(glue_dir, tmp_path / "changed")
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
    first = create_search(_config(glue_dir, tiny_teacher), kind="distill", profile=TINY, storage=storage)
    name = first.name
    assert load_search(storage, name) == first  # a worker joining it runs the search its creator holds
    glue, teacher = shutil.copytree(glue_dir, tmp_path / "copy" / "glue"), tmp_path / "copy" / "teacher"
    shutil.copytree(tiny_teacher, teacher)
    assert create_search(_config(glue, teacher), kind="distill", profile=TINY, storage=storage).name == name
    stored = load_search(storage, name).config
    assert (stored.data.data_dir, stored.teacher) == (str(glue_dir), str(tiny_teacher))
