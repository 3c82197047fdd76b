"""`kdbench report`: tables that reproduce the stored numbers, figures of the expected size, one page
showing everything, and clear messages for studies that are empty, partial or unknown.

The studies here are written as the producing commands write them (an ablation manifest with its
searches in an Optuna storage, a demo folder of run records, a speed JSON), from synthetic run
records with known scores, so each number in a table can be checked against its source.
"""

from __future__ import annotations

import dataclasses
import json
import re
import statistics
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from PIL import Image

from bench.cli import main
from bench.pipeline.runs import DataConfig, RunConfig
from bench.store.record_store import INLINE, KEY, SUMMARY, record_store, summarise
import bench.store.search
from bench.store.search import create_search
from bench.store.studies import SearchProfile, open_storage
from reports.figures import COLUMN_WIDTH_IN, DPI
from reports.report import CAPTIONS, attack_points, dev_rows, study_figures
from reports.significance import _metric_names
from reports.scores import score_tables
from reports.studies import (COMPARISON, MANIFEST_DIR, Study, _frame, _row, read_ablation, write_manifest,
                             write_speed_results)

# ASO at 100 bootstrap iterations (tests/conftest.py): no test here reads eps_min, only markers of scores
# that never overlap; the tables, LaTeX and claims come out the same as at deepsig's 1,000 (checked)
pytestmark = pytest.mark.usefixtures("fewer_aso_iterations")

PROFILE = SearchProfile("quick", (1e-4,), (16,), 2, 64, 1000, seeds=(42, 43, 44))
TEACHER = {"sst2": 0.90, "rte": 0.70}
SCORES = {  # task -> variant -> per-seed dev scores (0-1)
    "sst2": {"no KD": [0.81, 0.83, 0.80], "KD": [0.85, 0.84, 0.86], "AD2": [0.86, 0.845, 0.87]},
    "rte": {"no KD": [0.60, 0.58, 0.61], "KD": [0.62, 0.64, 0.63], "AD2": [0.655, 0.61, 0.64]},
}
SPACE = {"learning_rate": list(PROFILE.learning_rates), "per_device_train_batch_size": list(PROFILE.batch_sizes),
         "seed": list(PROFILE.seeds)}  # the search's parameter values
KINDS = {"no KD": ("finetune", "none"), "KD": ("distill", "none"), "AD2": ("distill", "ad2")}


@pytest.fixture(autouse=True)
def synthetic_content(monkeypatch):
    """The studies here hold synthetic records of GLUE tasks that are not on disk: no data to hash."""
    monkeypatch.setattr(bench.store.search, "study_content", lambda config: {"data": f"{config.data.task} rows", "teacher": None})


def record(task: str, variant: str, seed: int, score: float, *, training_s: float = 30.0) -> dict:
    """A run record with the fields reports read: two evaluations, training losses, timings."""
    kind, method = KINDS.get(variant, ("distill", variant))
    return {
        "kind": kind, "task": task, "method": method, "seed": seed,
        "config": {"model": "teacher-layers:0", "train": {"learning_rate": 1e-4, "per_device_train_batch_size": 16,
                                                          "num_train_epochs": 2}},
        "data": {"train_examples": 1000},
        "teacher": None if kind == "finetune" else {"best": {"value": TEACHER[task]}},
        "evaluations": [{"epoch": 1.0, "step": 63, "eval_validation_score": score - 0.01},
                        {"epoch": 2.0, "step": 126, "eval_validation_score": score}],
        "training_loss": [{"epoch": e / 10, "step": 6 * e, "loss": 0.7 - 0.02 * e} for e in range(1, 21)],
        "best": {"metric": "validation_score", "value": score, "step": 126, "epoch": 2.0},
        "timings_s": {"data": 0.5, "teacher_inference": 1.0, "training": training_s, "evaluation": 2.0},
        "throughput": {"global_steps": 126, "train_examples_per_s": 2000 / training_s},
        "peak_memory": {"cpu_rss_mb": 1200.0},
        "environment": {"device": {"type": "cpu", "name": "x86_64", "threads": 2}, "host": "test",
                        "packages": {"torch": "2.13.0", "transformers": "5.0"}, "git_commit": "abc"},
    }


def write_ablation(results: Path, scores: dict, *, name: str = "methods", swept: str = "variant",
                   grid_done: bool = True, storage: str | None = None, inline: bool = False) -> None:
    """A study as `kdbench ablate` leaves it: manifest, plus each search's trials in the storage
    (`scores` lists the finished seeds of each task x variant; None: the search has not started).
    Trials carry a summary and their record's key, or (`inline`) the whole record, as before."""
    results.mkdir(parents=True, exist_ok=True)
    storage = open_storage(storage or f"sqlite:///{results / 'studies.db'}")
    searches = []
    for task, variants in scores.items():
        for variant, seed_scores in variants.items():
            kind, method = KINDS.get(variant, ("distill", "ad2"))  # else a sweep's "eps=VALUE"
            params = dict([variant.split("=")]) if "=" in variant else {}
            config = RunConfig(data=DataConfig(task=task), method=method, method_params=params)
            study = create_search(config, kind=kind, profile=PROFILE,
                                  storage=storage).name
            searches.append({"task": task, "variant": variant, "study": study})
            if seed_scores is None:
                continue
            if grid_done:
                _add_trial(storage, f"{study}/grid", {"learning_rate": 1e-4, "per_device_train_batch_size": 16},
                           record(task, variant, 42, seed_scores[0]), inline)
            for seed, score in zip(PROFILE.seeds, seed_scores):
                _add_trial(storage, f"{study}/seeds", {"seed": seed}, record(task, variant, seed, score), inline)
    write_manifest(results / MANIFEST_DIR / f"{name}.json", name=name, title="a test study", swept=swept,
                   profile=dataclasses.asdict(PROFILE), notes=["profile note"],
                   spec="", searches=searches)


def _add_trial(storage, study_name: str, params: dict, run: dict, inline: bool) -> None:
    study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize", load_if_exists=True)
    key = f"{study_name.replace('/', '-')}-{run['seed']}"
    if not inline:
        record_store(storage).put(key, run)
    study.add_trial(optuna.trial.create_trial(
        params=params, distributions={k: optuna.distributions.CategoricalDistribution(SPACE[k]) for k in params},
        value=run["best"]["value"], user_attrs={INLINE: run} if inline else {SUMMARY: summarise(run), KEY: key}))


def markdown_table(markdown: str) -> pd.DataFrame:
    """The first Markdown table in `markdown`, cells as text."""
    lines = markdown[markdown.index("\n|"):].strip().split("\n\n")[0].splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return pd.DataFrame(cells[2:], columns=cells[0])


def rows(markdown: str) -> dict[str, list[str]]:
    """The first Markdown table's rows by their first cell."""
    return {row[0]: row[1:] for row in markdown_table(markdown).values.tolist()}


def test_main_table_reproduces_the_stored_scores(tmp_path, capsys):
    write_ablation(tmp_path / "ablations", SCORES)
    assert main(["report", str(tmp_path / "ablations"), "--output-dir", str(tmp_path / "report")]) == 0
    stats = pd.read_csv(tmp_path / "report" / "tables" / "methods.csv")
    for row in stats.itertuples():
        scores = SCORES[row.task][row.variant]
        assert (row.median, row.min, row.max, row.n) == (statistics.median(scores), min(scores), max(scores), 3)
        assert row.iqr == np.percentile(scores, 75) - np.percentile(scores, 25)
        assert row.teacher == TEACHER[row.task]
        assert row.retention_pct == 100 * statistics.median(scores) / TEACHER[row.task]
    table = rows((tmp_path / "report" / "tables" / "methods.md").read_text())
    assert list(table) == ["teacher", "no KD", "KD", "AD2"]
    assert table["teacher"] == ["90.00", "70.00", "80.00", "100.00"]
    for variant in ("no KD", "KD", "AD2"):
        sst2, rte = SCORES["sst2"][variant], SCORES["rte"][variant]
        cells = [cell.rstrip("*+") for cell in table[variant][:2]]  # the markers: tests/test_significance.py
        assert cells[0] == f"{100 * statistics.median(sst2):.2f} [{100 * min(sst2):.2f}, {100 * max(sst2):.2f}]"
        assert cells[1] == f"{100 * statistics.median(rte):.2f} [{100 * min(rte):.2f}, {100 * max(rte):.2f}]"
        assert table[variant][2] == f"{100 * (statistics.median(sst2) + statistics.median(rte)) / 2:.2f}"
        retention = (statistics.median(sst2) / 0.9 + statistics.median(rte) / 0.7) / 2
        assert table[variant][3] == f"{100 * retention:.2f}"
    latex = (tmp_path / "report" / "tables" / "methods.tex").read_text()
    assert "\\toprule" in latex and "\\midrule" in latex and "\\bottomrule" in latex and "\\% of teacher" in latex
    assert "KD & 85.00 [84.00, 86.00]* & 63.00 [62.00, 64.00]* & 74.00 &" in latex  # KD above no KD in every seed
    assert "methods (comparison, 18 runs): complete" in capsys.readouterr().out
    claims = (tmp_path / "report" / "claims.md").read_text()  # AD2 - KD = +1 point on each task: short of 1.2
    assert "**does not hold** (methods): AD2 - KD = +1.00 points" in claims
    assert "**does not hold** (methods): AD2 keeps 93.49%" in claims and "not measured" in claims  # no speed study


def test_figures_are_written_at_column_width(tmp_path):
    write_ablation(tmp_path / "ablations", {"sst2": SCORES["sst2"]})
    write_ablation(tmp_path / "ablations", {"sst2": {"eps=0": [0.8, 0.81, 0.82], "eps=1e-05": [0.8, 0.83, 0.82]}},
                   name="ad2-eps", swept="eps")
    assert main(["report", str(tmp_path / "ablations"), "--output-dir", str(tmp_path / "report")]) == 0
    figures = tmp_path / "report" / "figures"
    expected = {f"{name}.{suffix}" for name in ("methods-sst2-tradeoff", "methods-sst2-curves",
                                                "ad2-eps-sst2-ablation", "ad2-eps-sst2-curves")
                for suffix in ("pdf", "png")}
    assert {p.name for p in figures.iterdir()} == expected
    for png in figures.glob("*.png"):
        width, height = Image.open(png).size
        assert width == round(COLUMN_WIDTH_IN * DPI) and 1.5 * DPI <= height <= 4 * DPI, png.name
        pdf = png.with_suffix(".pdf").read_bytes()
        assert pdf.startswith(b"%PDF") and len(pdf) > 5000
        box = re.search(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf)
        assert float(box.group(1)) == pytest.approx(COLUMN_WIDTH_IN * 72, abs=0.5)
    page = (tmp_path / "report" / "index.html").read_text()
    for path in figures.glob("*.png"):
        assert f'src="figures/{path.name}"' in page and f'href="figures/{path.stem}.pdf"' in page
    for table in ("methods", "ad2-eps"):
        assert f'href="tables/{table}.tex"' in page and f'href="tables/{table}.md"' in page
    assert page.count("<table") == 2 and "Incomplete" not in page
    # the same runs, the same report, byte for byte (no timestamps in PDFs)
    assert main(["report", str(tmp_path / "ablations"), "--output-dir", str(tmp_path / "again")]) == 0
    for path in (tmp_path / "report").rglob("*.*"):
        assert path.read_bytes() == (tmp_path / "again" / path.relative_to(tmp_path / "report")).read_bytes(), path


def test_partial_study_says_what_is_missing(tmp_path, capsys):
    partial = {"sst2": {"no KD": SCORES["sst2"]["no KD"], "KD": SCORES["sst2"]["KD"][:2], "AD2": None}}
    write_ablation(tmp_path / "ablations", partial)
    assert main(["report", str(tmp_path / "ablations"), "--output-dir", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "methods (comparison, 5 runs): incomplete" in out
    assert "missing: sst2 / KD: 1 of 1 grid points and 2 of 3 seeds done" in out
    assert "missing: sst2 / AD2: not started" in out and "rerun `kdbench ablate`" in out
    markdown = (tmp_path / "report" / "tables" / "methods.md").read_text()
    table = rows(markdown)
    kd = SCORES["sst2"]["KD"][:2]
    assert table["KD"][0] == f"{100 * statistics.median(kd):.2f} [{100 * min(kd):.2f}, {100 * max(kd):.2f}] (n=2)"
    assert table["AD2"] == ["-", "-"]
    assert "- missing: sst2 / AD2: not started" in markdown
    page = (tmp_path / "report" / "index.html").read_text()
    assert "Incomplete" in page and "sst2 / AD2: not started" in page


def test_empty_study_is_an_error_not_a_traceback(tmp_path, capsys):
    write_ablation(tmp_path / "ablations", {"sst2": {"KD": None, "AD2": None}})
    assert main(["report", str(tmp_path / "ablations"), "--output-dir", str(tmp_path / "report")]) == 2
    captured = capsys.readouterr()
    assert "methods (comparison, 0 runs): no finished runs yet" in captured.out
    assert "sst2 / KD: not started" in captured.out
    assert captured.err.startswith("kdbench: error: no study has a finished run yet") and "Traceback" not in captured.err
    assert not (tmp_path / "report" / "tables").exists() and not (tmp_path / "report" / "figures").exists()
    assert "No finished runs yet" in (tmp_path / "report" / "index.html").read_text()


def test_unknown_study_and_missing_folder(tmp_path, capsys):
    write_ablation(tmp_path / "ablations", {"sst2": {"KD": SCORES["sst2"]["KD"]}})
    assert main(["report", str(tmp_path / "ablations"), "--study", "method", "--output-dir", str(tmp_path / "r")]) == 2
    assert "unknown study 'method'" in capsys.readouterr().err and not (tmp_path / "r").exists()
    assert main(["report", str(tmp_path / "nowhere"), "--output-dir", str(tmp_path / "r")]) == 2
    error = capsys.readouterr().err
    assert "no results folder" in error and "nowhere" in error and "kdbench demo" in error


def test_demo_and_speed_studies(tmp_path):
    demo = tmp_path / "demo"
    for variant, score in (("no KD", 0.79), ("KD", 0.80), ("ad2", 0.805), ("eda", 0.78)):
        folder = demo / variant.replace(" ", "-")
        folder.mkdir(parents=True)
        (folder / "record.json").write_text(json.dumps(record("sst2", variant, 42, score)))
    measurements = [{"task": "sst2", "variant": label, "method": method, "baseline": "distill", "repeat": repeat,
                     "record": record("sst2", method, 42, 0.8, training_s=seconds * (1 + repeat / 10))}
                    for repeat in range(2)
                    for label, method, seconds in (("KD", "none", 20.0), ("AD2", "ad2", 70.0), ("EDA", "eda", 140.0))]
    write_speed_results(tmp_path / "speed" / "speed.json", name="speed", title="speed test", notes=["speed note"],
                        measurements=measurements)
    assert main(["report", str(demo), str(tmp_path / "speed"), "--output-dir", str(tmp_path / "report")]) == 0
    demo_table = (tmp_path / "report" / "tables" / "demo.md").read_text()
    assert "- students: teacher-layers:0, 2 epochs at learning rate 0.0001" in demo_table  # from the records
    table = rows(demo_table)
    assert list(table) == ["teacher", "no KD", "KD", "AD2", "EDA"]  # the demo's order
    assert table["AD2"] == ["80.50", f"{100 * 0.805 / 0.9:.2f}"]  # one seed: the score alone
    speed = (tmp_path / "report" / "tables" / "speed.md").read_text()
    ratios = markdown_table(speed.split("## divided by KD")[1]).set_index("variant")
    assert list(ratios["train_s_per_epoch"]) == ["1", "3.5", "7"] and "28x" in speed
    figures = {p.name for p in (tmp_path / "report" / "figures").glob("*.png")}
    assert figures == {"demo-sst2-tradeoff.png", "demo-sst2-curves.png", "speed-sst2-tradeoff.png",
                       "speed-sst2-curves.png"}


def test_searches_missing_from_the_given_storage(tmp_path, capsys):
    """An ablation run with `--storage URL` and reported without it: the searches are not found."""
    write_ablation(tmp_path / "ablations", {"sst2": {"KD": SCORES["sst2"]["KD"]}})
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert main(["report", str(tmp_path / "ablations"), "--storage", other, "--output-dir", str(tmp_path / "r")]) == 2
    assert f"no Optuna storage at {tmp_path / 'other.db'}" in capsys.readouterr().err
    assert not (tmp_path / "other.db").exists()  # a storage that is only read is never created
    open_storage(other)  # a storage that exists, without these searches
    assert main(["report", str(tmp_path / "ablations"), "--storage", other, "--output-dir", str(tmp_path / "r")]) == 2
    assert "is not in this storage; give `--storage` the one `kdbench ablate` used" in capsys.readouterr().out


def test_report_and_results_read_a_postgresql_storage(postgres_url, tmp_path, capsys):
    """An ablation whose searches and records live in PostgreSQL: its tables hold the stored scores,
    and `kdbench results` exports every trial."""
    write_ablation(tmp_path / "ablations", SCORES, storage=postgres_url)
    assert main(["report", str(tmp_path / "ablations"), "--storage", postgres_url,
                 "--output-dir", str(tmp_path / "report")]) == 0
    assert "methods (comparison, 18 runs): complete" in capsys.readouterr().out
    stats = pd.read_csv(tmp_path / "report" / "tables" / "methods.csv")
    assert {(row.task, row.variant): (row.median, row.n) for row in stats.itertuples()} == {
        (task, variant): (statistics.median(scores), 3) for task, variants in SCORES.items()
        for variant, scores in variants.items()}
    assert main(["results", "--storage", postgres_url, "--output", str(tmp_path / "runs.csv")]) == 0
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert len(runs) == 24 and sorted(runs.loc[runs["study"].str.endswith("/seeds"), "seed"].unique()) == [42, 43, 44]
    assert set(runs["method"]) == {"none", "ad2"} and (runs["seconds_training"] == 30.0).all()


def test_stores_written_before_with_records_inline_are_read(tmp_path):
    """Trials that carry their whole record (as before records were kept beside the studies)."""
    write_ablation(tmp_path / "ablations", {"sst2": SCORES["sst2"]}, inline=True)
    study = read_ablation(tmp_path / "ablations" / MANIFEST_DIR / "methods.json")
    assert not study.missing and len(study.records) == 9
    assert sorted(r["best"]["value"] for r in study.records) == sorted(sum(SCORES["sst2"].values(), []))


def test_a_trial_whose_record_is_gone_is_one_clear_error(tmp_path, capsys):
    write_ablation(tmp_path / "ablations", {"sst2": {"KD": SCORES["sst2"]["KD"]}})
    engine = open_storage(f"sqlite:///{tmp_path / 'ablations' / 'studies.db'}").engine
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM kdbench_records")
    assert main(["report", str(tmp_path / "ablations"), "--output-dir", str(tmp_path / "r")]) == 2
    error = capsys.readouterr().err
    assert "which its storage does not hold (table kdbench_records" in error and "Traceback" not in error


def _with_ood(run: dict, correct: int) -> dict:
    """`run` scored on an out-of-domain set of 20 examples (labels 0, 1 alternating), `correct` of them right."""
    labels = [i % 2 for i in range(20)]
    predictions = [y if i < correct else 1 - y for i, y in enumerate(labels)]
    return {**run, "ood": {"hans": {"metrics": {"accuracy": correct / 20, "score": correct / 20},
                                    "labels": labels, "predictions": predictions}}}


def test_out_of_domain_scores_get_a_table_of_their_own_with_the_same_statistics_and_tests():
    correct = {"no KD": [4, 5, 6], "KD": [15, 16, 17]}  # KD right on every example no KD gets right, and more
    runs = [_row("rte", variant, _with_ood(record("rte", variant, seed, SCORES["rte"][variant][i]), n))
            for variant, counts in correct.items() for i, (seed, n) in enumerate(zip(PROFILE.seeds, counts))]
    runs.append(_row("rte", "AD2", record("rte", "AD2", 42, 0.655)))  # a run not scored on the set
    study = Study("robust", "a test study", COMPARISON, "variant", _frame(runs),
                  [("rte", "no KD"), ("rte", "KD"), ("rte", "AD2")], 3, Path("."))
    tables = score_tables(study).tables
    dev, ood = tables[""].set_index("model"), tables["out-of-domain: hans"].set_index("model")
    assert "teacher" in dev.index and "teacher" not in ood.index and "% of teacher" not in ood.columns
    assert dev.loc["KD", "RTE"].rstrip("*+") == "63.00 [62.00, 64.00]"  # the dev table is the dev scores'
    assert ood.loc["no KD", "RTE"] == "25.00 [20.00, 30.00]"
    assert ood.loc["KD", "RTE"] == "80.00 [75.00, 85.00]*+"  # ASO and the bootstrap over its predictions
    assert ood.loc["AD2", "RTE"] == "-"  # no run of AD2 was scored on it
    assert tables["robustness"].set_index("model").loc["AD2"].to_dict() == {"RTE dev": dev.loc["AD2", "RTE"],
                                                                            "RTE hans": "-"}
    long = score_tables(study).long
    assert long[long["evaluated_on"] == "ood:hans"].set_index("variant").loc["KD", "median"] == 0.8
    assert dev_rows(long).set_index("variant").loc["KD", "median"] == 0.63  # what the AD2 claims are checked on


def _attacked(run: dict, correct: int) -> dict:
    """`run` attacked with PWWS on 20 examples (labels 0, 1 alternating), `correct` of them still right after."""
    labels = [i % 2 for i in range(20)]
    predictions = [y if i < correct else 1 - y for i, y in enumerate(labels)]
    return {**run, "attack": {"pwws": {"metrics": {"score": correct / 20, "accuracy_under_attack": correct / 20},
                                       "score_metrics": ["accuracy"], "labels": labels, "predictions": predictions}}}


def test_accuracy_under_attack_gets_a_table_and_a_figure_against_the_dev_score(tmp_path):
    correct = {"no KD": [12, 13, 14], "KD": [2, 3, 4]}  # KD wins on dev and loses under attack
    runs = [_row("rte", variant, _attacked(record("rte", variant, seed, SCORES["rte"][variant][i]), n))
            for variant, counts in correct.items() for i, (seed, n) in enumerate(zip(PROFILE.seeds, counts))]
    study = Study("robust", "a test study", COMPARISON, "variant", _frame(runs), [("rte", "no KD"), ("rte", "KD")],
                  3, Path("."))
    attacked = score_tables(study).tables["under attack: pwws"].set_index("model")
    assert attacked.loc["no KD", "RTE"] == "65.00 [60.00, 70.00]"
    assert attacked.loc["KD", "RTE"] == "15.00 [10.00, 20.00]"  # worse: no mark of a win
    side_by_side = score_tables(study).tables["robustness"].set_index("model")
    assert list(side_by_side.columns) == ["RTE dev", "RTE pwws"] and list(side_by_side.index) == ["no KD", "KD"]
    assert side_by_side.loc["KD", "RTE pwws"] == "15.00 [10.00, 20.00]"
    assert side_by_side.loc["KD", "RTE dev"] == score_tables(study).tables[""].set_index("model").loc["KD", "RTE"]
    long = score_tables(study).long
    assert long[long["evaluated_on"] == "attack:pwws"].set_index("variant").loc["KD", "median"] == 0.15
    figures = study_figures(study, tmp_path)
    assert [path.name for path, caption in figures.items() if caption == CAPTIONS["attack"]] == ["robust-rte-pwws.png"]
    points = attack_points(study.runs, "pwws")
    assert points.groupby("variant")["attacked"].median().to_dict() == {"KD": 0.15, "no KD": 0.65}
    assert points.groupby("variant")["score"].median().to_dict() == {"KD": 0.63, "no KD": 0.60}


def test_an_attacks_bootstrap_scores_accuracy_even_where_the_task_scores_f1():
    best = {"metric": "attack_score", "value": 0.5, "metrics": {}, "score_metrics": ["accuracy"]}
    assert _metric_names({"best": best}, "mrpc") == ("accuracy",)
    assert _metric_names({"best": {k: v for k, v in best.items() if k != "score_metrics"}}, "mrpc") == ("f1", "accuracy")


def test_runs_that_predict_one_class_are_named_in_the_notes():
    labels = [i % 2 for i in range(20)]

    def with_dev(run: dict, predictions: list[int]) -> dict:
        return {**run, "predictions": {"validation": {"labels": labels, "predictions": predictions}}}

    learned, constant = [y if i < 15 else 1 - y for i, y in enumerate(labels)], [1] * 20
    runs = [_row("rte", "KD", with_dev(record("rte", "KD", seed, 0.6), constant if seed == 43 else learned))
            for seed in PROFILE.seeds]
    runs.append(_row("rte", "AD2", with_dev(record("rte", "AD2", 42, 0.5), [0] * 20)))
    study = Study("robust", "a test study", COMPARISON, "variant", _frame(runs), [("rte", "KD"), ("rte", "AD2")], 3,
                  Path("."))
    note = [n for n in score_tables(study).notes if n.startswith("one class for every dev example")]
    assert len(note) == 1 and note[0].endswith("accuracy under attack is that class's share): RTE KD seed 43, "
                                               "RTE AD2 seed 42")
    runs = [_row("rte", "KD", with_dev(record("rte", "KD", seed, 0.6), learned)) for seed in PROFILE.seeds]
    study = dataclasses.replace(study, runs=_frame(runs))
    assert not [n for n in score_tables(study).notes if n.startswith("one class")]
