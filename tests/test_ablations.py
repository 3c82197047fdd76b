"""Ablation specs: checked whole before anything runs; a tiny ablation and a tiny speed run end to end."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest

from ablations import SPEC_DIR
from ablations.spec import SpecError, load_spec
from ablations.speed import run_speed
from ablations.study import run_ablation
from reports.speed import speed_tables
from reports.studies import read_speed
from bench.cli import main
from bench.store.record_store import trial_records
from bench.store.studies import open_storage
from tests.conftest import communicate_all

TINY = """
tasks = {tasks}
teacher = "{teacher}"
student = "teacher-layers:0,2"
profile = "quick"
learning_rates = [3e-3]
batch_sizes = [8, 16]
seeds = [1, 2]
num_train_epochs = 1
max_length = 32
"""


def write_spec(folder: Path, body: str, *, name: str = "tiny", tasks: str = '["sst2"]', teacher: str = "minilm") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(TINY.format(tasks=tasks, teacher=teacher) + body)
    return path


@pytest.mark.parametrize("path", sorted(SPEC_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_specs_are_valid(path):
    spec = load_spec(path)
    assert spec.name == path.stem and spec.variants


def test_shipped_ad2_sweeps_are_the_issue_values():
    sweeps = [load_spec(p) for p in SPEC_DIR.glob("ad2-*.toml") if load_spec(p).swept != "variant"]
    values = {spec.name: [v.label.split("=", 1)[1] for v in spec.variants] for spec in sweeps}
    assert values["ad2-eps"] == ["0", "1e-05", "0.001", "0.01", "0.1", "1"]
    assert load_spec(SPEC_DIR / "ad2-eps.toml").variants[0].params == {"reading": "ours", "eta": 1.0, "eps": 0.0}
    assert values["ad2-eta"] == ["0", "0.001", "0.1", "10", "1000"]
    assert [v.params for v in load_spec(SPEC_DIR / "ad2-reading.toml").variants] == [
        {}, {"reading": "ours"}, {"reading": "smart"}, {"reading": "ports"}]
    assert values["ad2-steps"] == ["1", "2", "3", "5"]
    assert values["ad2-alpha"] == ["0", "0.25", "0.5", "1", "2"]
    assert values["ad2-temperature"] == ["1", "2", "5", "10"]
    assert load_spec(SPEC_DIR / "ad2-temperature.toml").variants[1].kd == {"temperature": 2.0}
    assert [v.label for v in load_spec(SPEC_DIR / "methods.toml").variants] == [
        "no KD", "KD", "AD2", "EDA", "back-translation", "masked-LM", "MATE-KD", "Combined-KD"]


def test_the_mate_kd_spec_sweeps_mask_rate_and_step_ratio():
    variants = load_spec(SPEC_DIR / "mate-kd.toml").variants
    assert [(v.method, v.params) for v in variants] == [
        ("none", {}), ("mate-kd", {"mask_rate": 0.1}), ("mate-kd", {}), ("mate-kd", {"mask_rate": 0.5}),
        ("mate-kd", {"generator_steps": 0}), ("mate-kd", {"student_steps": 30}), ("mate-kd", {"student_steps": 10})]


@pytest.mark.parametrize(("body", "message"), [
    ('method = "ad2"\n[sweep]\nparameter = "epss"\nvalues = [0]\n', "unknown parameter of method ad2 'epss': did you mean eps"),
    ('method = "ad2"\n[sweep]\nparameter = "eps"\nvalues = [0, "big"]\n', "parameter eps of method ad2 takes a float, got 'big'"),
    ('method = "ad2"\n[sweep]\nparameter = "steps"\nvalues = [1, 2.5]\n', "parameter steps of method ad2 takes an int, got 2.5"),
    ('method = "ad2"\n[sweep]\nparameter = "init"\nvalues = ["zeros"]\n', "unknown value of init 'zeros': did you mean zero?"),
    ('method = "ad2"\n[sweep]\nparameter = "kd.temprature"\nvalues = [1]\n', "'temprature': did you mean temperature?"),
    ('method = "ad2"\n[sweep]\nparameter = "kd.temperature"\nvalues = [true]\n', "temperature takes a float, got True"),
    ('method = "adv2"\n[sweep]\nparameter = "eps"\nvalues = [0]\n', "unknown method 'adv2': did you mean ad2?"),
    ('method = "ad2"\n[sweep]\nparameter = "eps"\nvalues = []\n', "[sweep] values is empty"),
    ('metod = "ad2"\n[sweep]\nparameter = "eps"\nvalues = [0]\n', "unknown key 'metod': did you mean method?"),
    ('[[variants]]\nmethod = "none"\n', None),
    ('[sweep]\nparameter = "eps"\nvalues = [0]\n[[variants]]\nmethod = "none"\n', "not both"),
    ('[[variants]]\nlabel = "x"\nbaseline = "finetun"\n', "unknown baseline of [[variants]] #1 'finetun'"),
    ('[[variants]]\nlabel = "x"\nbaseline = "finetune"\nmethod = "ad2"\n', "takes no method"),
    ('[[variants]]\nmethod = "none"\n[[variants]]\nmethod = "none"\n', "same label"),
    ('[[variants]]\nmethod = "none"\n[train]\nlearning_rate = 1e-4\n', "set by the search profile"),
    ('[[variants]]\nmethod = "none"\n[kd]\nalpha_kd = "one"\n', "[kd] alpha_kd takes a float, got 'one'"),
    ('[[variants]]\nmethod = "none"\n[data]\nmax_lenght = 8\n', "did you mean max_length?"),
    ('[[variants]]\nmethod = "none"\n[train]\nmax_grad_norm = -1\n', "[train]: max_grad_norm must be >= 0, got -1.0"),
    ('[[variants]]\nmethod = "none"\n[teacher_train]\nlearning_rate = 1e-4\n', None),  # the teacher's is the spec's
    ('pool_seed = -1\n[[variants]]\nmethod = "none"\n', "pool_seed must be in [0, 4294967295], got -1"),
    ('[sweep]\nparameter = "kd.alpha_kd"\nvalues = [1, 0]\n',
     "variant kd.alpha_kd=0 on sst2: [kd]: alpha_kd and alpha_ce are both 0: the student would learn nothing"),
])
def test_spec_errors_name_the_problem(tmp_path, body, message):
    path = write_spec(tmp_path, body)
    if message is None:
        assert load_spec(path).swept == "variant"
        return
    with pytest.raises(SpecError) as error:
        load_spec(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)


@pytest.mark.parametrize(("line", "message"), [
    ("learning_rates = [1e-4, 0]", "learning_rates[1] must be > 0, got 0.0"),
    ("batch_sizes = [0]", "batch_sizes[0] must be >= 1, got 0"),
    ("seeds = [-1]", "seeds[0] must be in [0, 4294967295], got -1"),
    ("seeds = []", "seeds is empty: give at least one value"),
    ("num_train_epochs = 0", "num_train_epochs must be > 0, got 0.0"),
    ("max_length = 0", "max_length must be >= 5, got 0"),
    ("max_train_examples = 0", "max_train_examples must be >= 1, got 0"),
])
def test_a_profiles_values_are_range_checked_when_the_spec_is_read(tmp_path, line, message):
    path = tmp_path / "profile.toml"
    path.write_text(f'tasks = ["sst2"]\n{line}\n[[variants]]\nmethod = "none"\n')
    with pytest.raises(SpecError) as error:
        load_spec(path)
    assert str(error.value) == f"{path}: {message}"


def test_spec_errors_for_tasks_profiles_and_toml(tmp_path):
    assert load_spec(write_spec(tmp_path, '[[variants]]\nmethod = "none"\n', tasks='["SST-2"]')).tasks == ("sst2",)
    with pytest.raises(SpecError, match="unknown task 'sts': did you mean stsb"):
        load_spec(write_spec(tmp_path, '[[variants]]\nmethod = "none"\n', tasks='["sts"]'))
    with pytest.raises(SpecError, match="max_train_examples takes an int, got 'all'"):
        load_spec(write_spec(tmp_path, 'max_train_examples = "all"\n[[variants]]\nmethod = "none"\n'))
    bare = tmp_path / "bare.toml"
    bare.write_text('tasks = ["rte"]\nprofile = "quik"\nseeds = [1, "two"]\n[[variants]]\nmethod = "none"\n')
    with pytest.raises(SpecError, match="unknown profile 'quik': did you mean quick"):
        load_spec(bare)
    bare.write_text('tasks = ["rte"]\nseeds = [1, "two"]\n[[variants]]\nmethod = "none"\n')
    with pytest.raises(SpecError, match="seeds\\[1\\] takes an int, got 'two'"):
        load_spec(bare)
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(write_spec(tmp_path, "[[variants]\n"))
    with pytest.raises(SpecError, match="no ablation spec at"):
        load_spec(tmp_path / "missing.toml")


def test_cli_checks_every_spec_before_running_any(tmp_path, capsys):
    good = write_spec(tmp_path, '[[variants]]\nmethod = "none"\n', name="good")
    bad = write_spec(tmp_path, 'method = "ad2"\n[sweep]\nparameter = "eps"\nvalues = ["x"]\n', name="bad")
    out = tmp_path / "results"
    assert main(["ablate", str(good), str(bad), "--output-dir", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("kdbench: error:") and "bad.toml" in error and "\n" not in error
    assert not out.exists()


def test_tiny_ablation_end_to_end(glue_dir, tiny_encoder, tmp_path):
    """A two-value AD2 sweep: teacher fine-tuned once, grid then seeds per value, the table from the
    stored trials, and a rerun that trains nothing."""
    spec = load_spec(write_spec(tmp_path, 'method = "ad2"\n[sweep]\nparameter = "eps"\nvalues = [0, 1e-3]\n',
                                teacher=str(tiny_encoder)))
    out = tmp_path / "results"
    markdown_file = run_ablation(spec, data_dir=str(glue_dir), output_dir=str(out))
    table = pd.read_csv(markdown_file.with_suffix(".csv"), dtype={"eps": str})
    assert list(table["eps"]) == ["0", "0.001"] and list(table["n"]) == [2, 2]
    storage = open_storage(f"sqlite:///{out / 'studies.db'}")
    studies = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
    assert len(studies) == 4  # grid and seeds per value
    readable = {(s.user_attrs["spec"], s.user_attrs["swept"], s.user_attrs["value"], s.user_attrs["method"])
                for s in optuna.get_all_study_summaries(storage)}  # what optuna-dashboard shows of each study
    assert readable == {("tiny", "eps", "0", "ad2"), ("tiny", "eps", "0.001", "ad2")}
    for name in studies:
        trials = optuna.load_study(study_name=name, storage=storage).trials
        assert len(trials) == 2 and all(t.state.name == "COMPLETE" for t in trials)
        if name.endswith("/seeds"):
            scores = sorted(t.value for t in trials)
            eps = trial_records(storage, trials[:1])[0]["config"]["method_params"]["eps"]
            row = table[table["eps"].astype(float) == eps]
            assert row["median"].item() == pytest.approx(sum(scores) / 2)
            assert (row["min"].item(), row["max"].item()) == (scores[0], scores[1])
    runs = sorted((out / "runs").iterdir())
    assert len(runs) == 6  # 2 grid points + 1 new seed, per value
    assert markdown_file == out / "tables" / "tiny.md"
    markdown = markdown_file.read_text()
    assert "profile quick" in markdown and "seeds 1, 2" in markdown and "cpu" in markdown
    first = table.iloc[0]
    assert f"| 0     | {100 * first['median']:.2f} [{100 * first['min']:.2f}, {100 * first['max']:.2f}] |" in markdown
    assert (out / "tables" / "tiny.tex").read_text().count("\\toprule") == 1

    run_ablation(spec, data_dir=str(glue_dir), output_dir=str(out))
    pd.testing.assert_frame_equal(pd.read_csv(markdown_file.with_suffix(".csv"), dtype={"eps": str}), table)
    assert sorted((out / "runs").iterdir()) == runs


def test_tiny_method_comparison_over_two_tasks(glue_dir, tiny_encoder, tmp_path):
    body = '[[variants]]\nlabel = "no KD"\nbaseline = "finetune"\n[[variants]]\nlabel = "KD"\nmethod = "none"\n'
    spec = load_spec(write_spec(tmp_path, body, tasks='["sst2", "stsb"]', teacher=str(tiny_encoder)))
    table = pd.read_csv(run_ablation(spec, data_dir=str(glue_dir), output_dir=str(tmp_path / "results"))
                        .with_suffix(".csv"))
    assert list(zip(table["task"], table["variant"])) == [("sst2", "no KD"), ("sst2", "KD"), ("stsb", "no KD"),
                                                          ("stsb", "KD")]
    markdown = (tmp_path / "results" / "tables" / "tiny.md").read_text()
    kd = table[table["variant"] == "KD"]
    kd_row = [cell.strip() for cell in next(line for line in markdown.splitlines() if line.startswith("| KD ")).split("|")]
    assert kd_row[-3] == f"{100 * kd['median'].mean():.2f}"  # the average over tasks
    assert kd_row[-2] == f"{kd['retention_pct'].mean():.2f}"  # % of the teacher's score kept
    assert "teacher: SST-2 " in markdown and "STS-B " in markdown


def test_tiny_speed_run(glue_dir, tiny_encoder, tmp_path):
    """Every variant measured from an empty cache in its own process; ratios to KD and AD2."""
    body = ('[[variants]]\nlabel = "KD"\nmethod = "none"\n[[variants]]\nlabel = "AD2"\nmethod = "ad2"\n'
            '[[variants]]\nlabel = "dropout"\nmethod = "word-dropout"\nparams = { copies = 1 }\n')
    plugin = str(Path(__file__).parent.parent / "examples" / "word_dropout.py")
    from methods import load_plugins

    load_plugins([plugin])
    spec = load_spec(write_spec(tmp_path, body, teacher=str(tiny_encoder)))
    out = tmp_path / "speed"
    markdown_file = run_speed(spec, data_dir=str(glue_dir), output_dir=str(out), repeats=2, plugins=[plugin])
    table = speed_tables(read_speed(out / "tiny.json")).tables["measured (median over repeats)"]
    assert list(table["variant"]) == ["KD", "AD2", "dropout"]
    by = table.set_index("variant")
    assert by.loc["KD", "generation_s"] == 0 and by.loc["AD2", "generation_s"] == 0
    assert by.loc["dropout", "generation_s"] > 0  # generated, not read from a cache
    assert by.loc["dropout", "train_examples"] > by.loc["KD", "train_examples"] == 48
    assert (table["teacher_s"] > 0).all() and (table["peak_rss_mb"] > 100).all()
    measured = pd.read_csv(out / "tiny.csv")
    assert len(measured) == 6 and sorted(measured["repeat"].unique()) == [0, 1]
    medians = measured.groupby("variant")["train_s_per_epoch"].median()
    assert by.loc["KD", "train_s_per_epoch"] == round(medians["KD"], 2)
    markdown = markdown_file.read_text()
    assert "## divided by KD" in markdown and "## divided by AD2" in markdown and "28x" in markdown
    ratio = medians["AD2"] / medians["KD"]
    assert f"{round(ratio, 2):g}" in markdown.split("## divided by KD")[1].split("##")[0]
    assert not [p for p in out.iterdir() if p.name.startswith(".fresh-")]  # fresh caches removed
    assert not math.isnan(by.loc["AD2", "score"])


def test_two_ablate_processes_share_one_storage(glue_dir, tiny_encoder, tmp_path):
    """The same `kdbench ablate` on two machines (here processes): every grid point and seed of
    every variant is trained once, and both print the same table."""
    spec = write_spec(tmp_path, '[sweep]\nparameter = "kd.temperature"\nvalues = [1, 2]\n', teacher=str(tiny_encoder))
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, "-m", "bench.cli", "ablate", str(spec), "--data-dir", str(glue_dir),
                                 "--storage", storage, "--output-dir", str(tmp_path / f"worker{i}")],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(2)]
    outputs = communicate_all(workers, timeout=300)  # both read at once: either may wait for the other's points
    assert [w.returncode for w in workers] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    trials = [(s.study_name, t) for s in optuna.get_all_study_summaries(storage)
              for t in optuna.load_study(study_name=s.study_name, storage=storage).trials]
    complete = [(name, tuple(sorted(t.params.items()))) for name, t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == len(set(complete)) == 8  # 2 variants x (2 grid + 2 seeds), each point once
    others = [(name, t.number, t.state.name, t.system_attrs.get("fail_reason")) for name, t in trials
              if t.state.name not in ("COMPLETE", "PRUNED")]  # PRUNED: a point two workers took at once, skipped
    assert not others, outputs[0][1][-2000:] + outputs[1][1][-2000:]
    tables = [(tmp_path / f"worker{i}" / "tables" / "tiny.md").read_text() for i in range(2)]
    assert "kd.temperature" in tables[0] and tables[0].split("\n\n")[-1] == tables[1].split("\n\n")[-1]


def test_a_variants_training_set_size_and_the_specs_length_reach_the_search(glue_dir, tiny_teacher, tmp_path):
    """A variant's `data` (its training-set size) and the spec's [data] (the maximum length) win over the
    search profile's, which the search would otherwise put back."""
    from ablations.spec import parse_spec
    from ablations.study import TaskSetup, profile_with, run_config
    from bench.pipeline.config import DataConfig
    from bench.store.search import create_search

    spec = parse_spec({"tasks": ["sst2"], "teacher": str(tiny_teacher), "data": {"max_length": 32},
                       "variants": [{"label": "small", "data": {"max_train_examples": 10}}, {"label": "all"}]},
                      name="sizes")
    setup = TaskSetup(DataConfig(task="sst2", data_dir=str(glue_dir), max_length=32, max_train_examples=1000),
                      str(tiny_teacher), None)
    storage = open_storage(f"sqlite:///{tmp_path / 'studies.db'}")
    searched = []
    for variant in spec.variants:
        search = create_search(run_config(spec, setup, variant, cache_dir=None), kind="distill", storage=storage,
                               profile=profile_with(spec.profile, {**spec.data, **variant.data}))
        searched.append((search.config.data.max_train_examples, search.config.data.max_length))
    assert searched == [(10, 32), (1000, 32)]


def test_the_speed_tables_count_the_rows_a_selector_kept():
    from reports.speed import speed_figures

    record = {"timings_s": {"training": 10.0}, "throughput": {"global_steps": 10, "train_examples_per_s": 1.0},
              "best": {"step": 10, "value": 0.5}, "config": {"train": {"num_train_epochs": 2}},
              "peak_memory": {"cpu_rss_mb": 1.0}, "data": {"train_examples": 100},
              "augmentation": {"pool_size": 800}}
    assert speed_figures(record)["train_examples"] == 900  # a record made before selectors: the whole pool
    record["training_rows"] = {"original": 100, "eda": 200}  # Glitter's 2 slots per original of the 800
    assert speed_figures(record)["train_examples"] == 300
