"""Tests of bench.pipeline.data: every GLUE task's file layout, the hub fallback, subsets and custom files."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import datasets
import pytest

import bench.pipeline.data
from bench.parts.errors import DataFormatError, KdbenchError, UnknownNameError
from bench.parts.tasks import TASKS
from bench.pipeline.data import load_custom, load_task, train_subset

QUOTE = '" he said, and never closed the quote'  # an unbalanced quote, to be read verbatim
MNLI_HEADER = (
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
    "sentence1_parse\tsentence2_parse\tsentence1\tsentence2"
)


def _mnli_row(index: int, s1: str, s2: str, labels: list[str]) -> str:
    return "\t".join([str(index), "31193", "31193n", "government", "( ( x ) )", "( y )", "(ROOT x)", "(ROOT y)",
                      s1, s2, *labels])


# For each task: the files of its GLUE folder, and what each split must load as
# (text_a, text_b or None, labels). NaN labels stand for unlabeled regression rows.
GLUE_FIXTURES: dict[str, tuple[dict[str, str], dict[str, tuple[list, list | None, list]]]] = {
    "cola": (
        {
            "train.tsv": "gj04\t1\t\tOur friends won't buy this analysis.\ngj04\t0\t*\tThey drank the pub.\n",
            "dev.tsv": f"cl_1\t1\t\t{QUOTE}\n",
            "test.tsv": "index\tsentence\n0\tBill whistled past the house.\n",
        },
        {
            "train": (["Our friends won't buy this analysis.", "They drank the pub."], None, [1, 0]),
            "validation": ([QUOTE], None, [1]),
            "test": (["Bill whistled past the house."], None, [-1]),
        },
    ),
    "sst2": (
        {
            "train.tsv": f"sentence\tlabel\nhide new secretions from the parental units \t0\n{QUOTE}\t1\n",
            "dev.tsv": "sentence\tlabel\nit 's a charming journey . \t1\n",
            "test.tsv": "index\tsentence\n0\tuneasy mishmash of styles .\n1\t\" quoted start\n",
        },
        {
            "train": (["hide new secretions from the parental units ", QUOTE], None, [0, 1]),
            "validation": (["it 's a charming journey . "], None, [1]),
            "test": (["uneasy mishmash of styles .", '" quoted start'], None, [-1, -1]),
        },
    ),
    "mrpc": (
        {
            "train.tsv": "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
            "1\t702876\t702977\tAmrozi accused his brother .\tReferring to him as only \" the witness \" .\n"
            f"0\t2108705\t2108831\tYucaipa owned Dominick 's .\t{QUOTE}\n",
            "dev.tsv": "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n0\t1\t2\tHe said .\tShe said .\n",
            "test.tsv": "\ufeffindex\t#1 ID\t#2 ID\t#1 String\t#2 String\n0\t1089874\t1089925\tPCCW 's chief .\tCurrent Chief .\n",
        },
        {
            "train": (["Amrozi accused his brother .", "Yucaipa owned Dominick 's ."],
                      ['Referring to him as only " the witness " .', QUOTE], [1, 0]),
            "validation": (["He said ."], ["She said ."], [0]),
            "test": (["PCCW 's chief ."], ["Current Chief ."], [-1]),
        },
    ),
    "stsb": (
        {
            "train.tsv": "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
            "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane is taking off.\tAn air plane is taking off.\t5.000\n"
            f"1\tmain-news\theadlines\t2015\t0002\tnone\tnone\t{QUOTE}\tB.\t0.250\n",
            "dev.tsv": "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
            "0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\tA man.\tA woman.\t1.6\n",
            "test.tsv": "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\n"
            "0\tmain-captions\tMSRvid\t2012test\t0024\tnone\tnone\tA girl.\tA boy.\n",
        },
        {
            "train": (["A plane is taking off.", QUOTE], ["An air plane is taking off.", "B."], [5.0, 0.25]),
            "validation": (["A man."], ["A woman."], [1.6]),
            "test": (["A girl."], ["A boy."], [math.nan]),
        },
    ),
    "qqp": (
        {
            "train.tsv": "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
            f"133273\t213221\t213222\tHow is the life of a math student?\t{QUOTE}\t0\n"
            "402555\t536040\t536041\tHow do I control my horny emotions?\tHow do you control your horniness?\t1\n",
            "dev.tsv": "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t2\t3\tWhy?\tWhy not?\t1\n",
            "test.tsv": "id\tquestion1\tquestion2\n0\tWhy do rockets look white?\tWhy are rockets white?\n",
        },
        {
            "train": (["How is the life of a math student?", "How do I control my horny emotions?"],
                      [QUOTE, "How do you control your horniness?"], [0, 1]),
            "validation": (["Why?"], ["Why not?"], [1]),
            "test": (["Why do rockets look white?"], ["Why are rockets white?"], [-1]),
        },
    ),
    "mnli": (
        {
            "train.tsv": MNLI_HEADER + "\tlabel1\tgold_label\n"
            + _mnli_row(0, "Conceptually cream skimming has two dimensions.", QUOTE, ["neutral", "neutral"]) + "\n"
            + _mnli_row(1, "you know during the season", "You lose the things.", ["entailment", "entailment"]) + "\n",
            "dev_matched.tsv": MNLI_HEADER + "\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n"
            + _mnli_row(0, "The new rights are nice.", "Everyone hates them.", ["contradiction"] * 6) + "\n",
            "dev_mismatched.tsv": MNLI_HEADER + "\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n"
            + _mnli_row(0, "Your gift is appreciated.", "Hundreds gave.", ["neutral"] * 5 + ["entailment"]) + "\n",
            "test_matched.tsv": MNLI_HEADER + "\n" + _mnli_row(0, "Hierbas.", "A new herb.", []) + "\n",
            "test_mismatched.tsv": MNLI_HEADER + "\n" + _mnli_row(0, "What a day.", "A day.", []) + "\n",
        },
        {
            "train": (["Conceptually cream skimming has two dimensions.", "you know during the season"],
                      [QUOTE, "You lose the things."], [1, 0]),
            "validation_matched": (["The new rights are nice."], ["Everyone hates them."], [2]),
            "validation_mismatched": (["Your gift is appreciated."], ["Hundreds gave."], [0]),
            "test_matched": (["Hierbas."], ["A new herb."], [-1]),
            "test_mismatched": (["What a day."], ["A day."], [-1]),
        },
    ),
    "qnli": (
        {
            "train.tsv": "index\tquestion\tsentence\tlabel\n"
            f"0\tWhen did it start?\t{QUOTE}\tnot_entailment\n1\tWho?\tHe did.\tentailment\n",
            "dev.tsv": "index\tquestion\tsentence\tlabel\n0\tWhat?\tThat.\tentailment\n",
            "test.tsv": "index\tquestion\tsentence\n0\tWhere?\tThere.\n",
        },
        {
            "train": (["When did it start?", "Who?"], [QUOTE, "He did."], [1, 0]),
            "validation": (["What?"], ["That."], [0]),
            "test": (["Where?"], ["There."], [-1]),
        },
    ),
    "rte": (
        {
            "train.tsv": "index\tsentence1\tsentence2\tlabel\n"
            "0\tNo Weapons Found in Iraq Yet.\tWeapons Found in Iraq.\tnot_entailment\n"
            f"1\t{QUOTE}\tA quote.\tentailment\n",
            "dev.tsv": "index\tsentence1\tsentence2\tlabel\n0\tDana Reeve has died.\tReeve had an accident.\tnot_entailment\n",
            "test.tsv": "index\tsentence1\tsentence2\n0\tMangla was summoned.\tShukla is related to Mangla.\n",
        },
        {
            "train": (["No Weapons Found in Iraq Yet.", QUOTE], ["Weapons Found in Iraq.", "A quote."], [1, 0]),
            "validation": (["Dana Reeve has died."], ["Reeve had an accident."], [1]),
            "test": (["Mangla was summoned."], ["Shukla is related to Mangla."], [-1]),
        },
    ),
    "wnli": (
        {
            "train.tsv": "index\tsentence1\tsentence2\tlabel\n"
            "0\tI stuck a pin through a carrot.\tThe carrot had a hole.\t1\n"
            f"1\t{QUOTE}\tThe pin had a hole.\t0\n",
            "dev.tsv": "index\tsentence1\tsentence2\tlabel\n0\tThe drain is clogged.\tThe hair has to go.\t0\n",
            "test.tsv": "index\tsentence1\tsentence2\n0\tMaude and Dora had seen the trains.\tHorses ran away.\n",
        },
        {
            "train": (["I stuck a pin through a carrot.", QUOTE], ["The carrot had a hole.", "The pin had a hole."], [1, 0]),
            "validation": (["The drain is clogged."], ["The hair has to go."], [0]),
            "test": (["Maude and Dora had seen the trains."], ["Horses ran away."], [-1]),
        },
    ),
}


def _write_glue(root: Path, task: str, files: dict[str, str] | None = None) -> Path:
    """A GLUE folder under root holding the fixture files of `task` (or the `files` given)."""
    folder = root / TASKS[task].glue_dir
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (files if files is not None else GLUE_FIXTURES[task][0]).items():
        (folder / name).write_bytes(text.encode("utf-8"))
    return folder


def _same_labels(got: list, want: list) -> bool:
    return len(got) == len(want) and all(
        (math.isnan(g) and math.isnan(w)) if isinstance(w, float) and math.isnan(w) else g == pytest.approx(w)
        for g, w in zip(got, want)
    )


def test_fixtures_cover_every_task_and_split():
    assert set(GLUE_FIXTURES) == set(TASKS)
    for task, (_, expected) in GLUE_FIXTURES.items():
        assert set(expected) == set(TASKS[task].splits), task


@pytest.mark.parametrize("task", sorted(GLUE_FIXTURES))
def test_every_glue_layout_loads_exact_texts_and_labels(tmp_path, task):
    folder = _write_glue(tmp_path, task)
    expected = GLUE_FIXTURES[task][1]
    data = load_task(task, data_dir=tmp_path, splits=list(expected))
    assert data.source == str(folder)
    assert list(data.splits) == list(expected)
    for split, (text_a, text_b, labels) in expected.items():
        ds = data.splits[split]
        assert ds["text_a"] == text_a, split
        if text_b is None:
            assert ds.column_names == ["text_a", "label"]
        else:
            assert ds["text_b"] == text_b, split
            assert ds.column_names == ["text_a", "text_b", "label"]
        assert _same_labels(ds["label"], labels), (split, ds["label"])
        assert ds.features["label"].dtype == ("float32" if data.task.is_regression else "int64")


def test_default_splits_are_train_and_eval_splits_from_env(tmp_path, monkeypatch):
    _write_glue(tmp_path, "mnli")
    monkeypatch.setenv("KDBENCH_GLUE_DIR", str(tmp_path))
    data = load_task("MNLI")
    assert list(data.splits) == ["train", "validation_matched", "validation_mismatched"]
    assert data.task.name == "mnli"


@pytest.mark.parametrize("content", ["", "index\tsentence1\tsentence2\tlabel\n"], ids=["empty", "header-only"])
def test_a_file_without_examples_is_an_error_naming_it(tmp_path, content):
    folder = _write_glue(tmp_path, "rte", {"dev.tsv": content})
    with pytest.raises(KdbenchError) as err:
        load_task("rte", data_dir=tmp_path, splits=["validation"])
    assert str(err.value) == (f"{folder / 'dev.tsv'}: no examples (the file is empty or holds only its header); "
                              "give a file with at least one example")


def test_short_row_reports_path_and_physical_line(tmp_path):
    folder = _write_glue(tmp_path, "rte", {"dev.tsv": "index\tsentence1\tsentence2\tlabel\n"
                                                      "0\tA.\tB.\tentailment\n\n1\tonly two\n"})
    with pytest.raises(DataFormatError) as err:
        load_task("rte", data_dir=tmp_path, splits=["validation"])
    assert err.value.path == str(folder / "dev.tsv")
    assert err.value.line == 4
    assert "expected at least 4 tab-separated columns, found 2" in str(err.value)


def test_short_row_in_headerless_bom_file(tmp_path):
    folder = _write_glue(tmp_path, "cola", {"train.tsv": "\ufeffgj04\t1\t\tFine.\ngj04\t0\n"})
    with pytest.raises(DataFormatError) as err:
        load_task("cola", data_dir=tmp_path, splits=["train"])
    assert (err.value.path, err.value.line) == (str(folder / "train.tsv"), 2)
    assert "expected at least 4 tab-separated columns, found 2" in str(err.value)


def test_unknown_label_reports_path_line_and_valid_labels(tmp_path):
    folder = _write_glue(tmp_path, "sst2", {"train.tsv": "sentence\tlabel\ngood\t1\nbad\tfoo\n"})
    with pytest.raises(DataFormatError) as err:
        load_task("sst2", data_dir=tmp_path, splits=["train"])
    assert (err.value.path, err.value.line) == (str(folder / "train.tsv"), 3)
    assert "label 'foo' is not one of 0, 1" in str(err.value)


def test_unparsable_score(tmp_path):
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    _write_glue(tmp_path, "stsb", {"dev.tsv": header + "0\tg\tf\ty\to\ts\ts\tA.\tB.\tfive\n"})
    with pytest.raises(DataFormatError, match=r"dev.tsv:2: expected a number as the score, found 'five'"):
        load_task("stsb", data_dir=tmp_path, splits=["validation"])


def test_missing_folder_and_missing_file(tmp_path):
    with pytest.raises(KdbenchError) as err:
        load_task("rte", data_dir=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere" / "RTE") in str(err.value)
    assert "--data-dir" in str(err.value) and "download_glue_data.py" in str(err.value)

    _write_glue(tmp_path, "rte", {"train.tsv": "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tentailment\n"})
    with pytest.raises(KdbenchError) as err:
        load_task("rte", data_dir=tmp_path)
    assert str(tmp_path / "RTE" / "dev.tsv") in str(err.value)


def test_unknown_task_and_split_suggest_near_names(tmp_path):
    with pytest.raises(UnknownNameError) as err:
        load_task("sst", data_dir=tmp_path)
    assert "sst2" in err.value.near
    with pytest.raises(UnknownNameError) as err:
        load_task("mnli", data_dir=tmp_path, splits=["validation"])
    assert "validation_matched" in err.value.near


def test_hub_unreachable_names_the_offline_options(monkeypatch):
    monkeypatch.delenv("KDBENCH_GLUE_DIR", raising=False)
    monkeypatch.setattr(bench.pipeline.data, "hub_reachable", lambda: False)
    with pytest.raises(KdbenchError) as err:
        load_task("sst2")
    message = str(err.value)
    assert "no GLUE folder was given" in message and "hub is unreachable" in message
    for option in ("--data-dir", "KDBENCH_GLUE_DIR", "download_glue_data.py", "--train-file", "--validation-file"):
        assert option in message


def test_hub_splits_are_normalised(monkeypatch):
    """The hub path, with `load_dataset` replaced by in-memory data shaped like `nyu-mll/glue`."""
    def fake_load_dataset(path, name):
        assert (path, name) == ("nyu-mll/glue", "stsb")
        features = datasets.Features({"sentence1": datasets.Value("string"), "sentence2": datasets.Value("string"),
                                      "label": datasets.Value("float32"), "idx": datasets.Value("int32")})
        rows = {"sentence1": ["A.", "C."], "sentence2": ["B.", "D."], "label": [4.5, 1.0], "idx": [0, 1]}
        test = dict(rows, label=[-1.0, -1.0])
        return datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows, features=features),
                                     "validation": datasets.Dataset.from_dict(rows, features=features),
                                     "test": datasets.Dataset.from_dict(test, features=features)})

    monkeypatch.delenv("KDBENCH_GLUE_DIR", raising=False)
    monkeypatch.setattr(bench.pipeline.data, "hub_reachable", lambda: True)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_task("stsb", splits=["train", "test"], max_train_examples=1, seed=0)
    assert data.source == "hub:nyu-mll/glue/stsb"
    assert data.splits["train"].column_names == ["text_a", "text_b", "label"]
    assert len(data.splits["train"]) == 1
    assert data.splits["test"]["text_b"] == ["B.", "D."]
    assert all(math.isnan(x) for x in data.splits["test"]["label"])


def test_hub_class_labels_become_int_indices(monkeypatch):
    def fake_load_dataset(path, name):
        features = datasets.Features({"sentence": datasets.Value("string"),
                                      "label": datasets.ClassLabel(names=["negative", "positive"]),
                                      "idx": datasets.Value("int32")})
        return datasets.DatasetDict({"validation": datasets.Dataset.from_dict(
            {"sentence": ["bad", "good"], "label": [0, 1], "idx": [0, 1]}, features=features)})

    monkeypatch.delenv("KDBENCH_GLUE_DIR", raising=False)
    monkeypatch.setattr(bench.pipeline.data, "hub_reachable", lambda: True)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    ds = load_task("sst2", splits=["validation"]).splits["validation"]
    assert ds[:] == {"text_a": ["bad", "good"], "label": [0, 1]}
    assert ds.features["label"] == datasets.Value("int64")


def test_train_subset_is_seeded_and_keeps_file_order():
    ds = datasets.Dataset.from_dict({"text_a": [f"s{i}" for i in range(100)], "label": list(range(100))})
    a = train_subset(ds, 10, seed=1)["label"]
    assert a == train_subset(ds, 10, seed=1)["label"]
    assert a == sorted(a) and len(set(a)) == 10
    assert a != train_subset(ds, 10, seed=2)["label"]
    assert train_subset(ds, None, seed=1) is ds
    assert train_subset(ds, 100, seed=1) is ds
    with pytest.raises(KdbenchError):
        train_subset(ds, 0, seed=1)


def test_max_train_examples_applies_to_train_only(tmp_path):
    rows = "".join(f"{i}\tA {i}.\tB {i}.\t{i % 2}\n" for i in range(20))
    header = "index\tsentence1\tsentence2\tlabel\n"
    _write_glue(tmp_path, "wnli", {"train.tsv": header + rows, "dev.tsv": header + rows})
    data = load_task("wnli", data_dir=tmp_path, max_train_examples=5, seed=3)
    assert len(data.splits["train"]) == 5 and len(data.splits["validation"]) == 20
    again = load_task("wnli", data_dir=tmp_path, max_train_examples=5, seed=3)
    assert data.splits["train"]["text_a"] == again.splits["train"]["text_a"]


# Custom files ------------------------------------------------------------------------------------


def test_custom_csv_single_sentence(tmp_path):
    (tmp_path / "train.csv").write_text('text,label,extra\n"great, really",pos,x\nawful,neg,y\n"said ""hi""",pos,z\n')
    (tmp_path / "dev.csv").write_text("label,text,extra\nneg,meh,q\n")
    (tmp_path / "test.csv").write_text("text\nunseen\n")
    data = load_custom(tmp_path / "train.csv", tmp_path / "dev.csv", text_columns=["text"], label_column="label",
                       test_file=tmp_path / "test.csv")
    spec = data.task
    assert (spec.name, spec.label_names, spec.label_values, spec.metrics) == (
        "custom", ("neg", "pos"), ("neg", "pos"), ("f1", "accuracy"))
    assert not spec.is_pair and spec.splits["train"].filename == str(tmp_path / "train.csv")
    assert data.splits["train"][:] == {"text_a": ["great, really", "awful", 'said "hi"'], "label": [1, 0, 1]}
    assert data.splits["validation"][:] == {"text_a": ["meh"], "label": [0]}
    assert data.splits["test"][:] == {"text_a": ["unseen"], "label": [-1]}
    assert str(tmp_path / "train.csv") in data.source and str(tmp_path / "dev.csv") in data.source


def test_custom_tsv_pair_with_three_classes(tmp_path):
    (tmp_path / "train.tsv").write_text('p\th\ty\nA "quote.\tB.\tyes\nC.\tD.\tno\nE.\tF.\tmaybe\n')
    (tmp_path / "dev.tsv").write_text("p\th\ty\nG.\tH.\tno\n")
    data = load_custom(tmp_path / "train.tsv", tmp_path / "dev.tsv", text_columns=("p", "h"), label_column="y")
    assert data.task.is_pair and data.task.metrics == ("accuracy",)
    assert data.task.label_names == ("maybe", "no", "yes")
    assert data.splits["train"][:] == {"text_a": ['A "quote.', "C.", "E."], "text_b": ["B.", "D.", "F."],
                                       "label": [2, 1, 0]}
    assert data.splits["validation"]["label"] == [1]


def test_custom_jsonl_regression_pair(tmp_path):
    train = [{"a": "x", "b": "y", "score": 3.5}, {"a": "z", "b": "w", "score": "1"}]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in train) + "\n\n")
    (tmp_path / "dev.jsonl").write_text(json.dumps({"a": "p", "b": "q", "score": 0}) + "\n")
    (tmp_path / "test.jsonl").write_text(json.dumps({"a": "r", "b": "s"}) + "\n")
    data = load_custom(tmp_path / "train.jsonl", tmp_path / "dev.jsonl", text_columns=["a", "b"],
                       label_column="score", regression=True, test_file=tmp_path / "test.jsonl")
    assert data.task.is_regression and data.task.metrics == ("pearson", "spearmanr")
    assert data.splits["train"][:] == {"text_a": ["x", "z"], "text_b": ["y", "w"], "label": [3.5, 1.0]}
    assert data.splits["validation"]["label"] == [0.0]
    assert math.isnan(data.splits["test"]["label"][0])
    assert data.splits["train"].features["label"] == datasets.Value("float32")


def test_custom_jsonl_integer_labels_and_subset(tmp_path):
    lines = [json.dumps({"t": f"s{i}", "l": i % 2}) for i in range(10)]
    (tmp_path / "train.json").write_text("\n".join(lines))
    (tmp_path / "dev.json").write_text(lines[0])
    data = load_custom(tmp_path / "train.json", tmp_path / "dev.json", text_columns=["t"], label_column="l",
                       max_train_examples=4, seed=7)
    assert data.task.label_names == ("0", "1")
    assert len(data.splits["train"]) == 4 and len(data.splits["validation"]) == 1


def _custom_error(tmp_path, train: str, dev: str, suffix: str, **kwargs) -> DataFormatError:
    (tmp_path / f"train{suffix}").write_text(train)
    (tmp_path / f"dev{suffix}").write_text(dev)
    kwargs = {"text_columns": ["text"], "label_column": "label", **kwargs}
    with pytest.raises(DataFormatError) as err:
        load_custom(tmp_path / f"train{suffix}", tmp_path / f"dev{suffix}", **kwargs)
    return err.value


def test_custom_missing_column_names_existing_ones(tmp_path):
    err = _custom_error(tmp_path, "sentence,label\na,b\n", "sentence,label\na,b\n", ".csv")
    assert (err.path, err.line) == (str(tmp_path / "train.csv"), 1)
    assert "no column 'text'" in str(err) and "columns: sentence, label" in str(err)

    err = _custom_error(tmp_path, '{"text": "a", "label": "x"}\n{"text": "b", "lbl": "y"}\n', "", ".jsonl")
    assert (err.path, err.line) == (str(tmp_path / "train.jsonl"), 2)
    assert "no column 'label'" in str(err) and "this line has: text, lbl" in str(err)


def test_custom_missing_value_and_wrong_column_count(tmp_path):
    err = _custom_error(tmp_path, "text\tlabel\na\tx\n\tx\n", "text\tlabel\n", ".tsv")
    assert (err.path, err.line) == (str(tmp_path / "train.tsv"), 3)
    assert "missing value in column 'text'" in str(err)

    err = _custom_error(tmp_path, "text,label\na,x\nb,y\n", "text,label\nc,x,extra\n", ".csv")
    assert (err.path, err.line) == (str(tmp_path / "dev.csv"), 2)
    assert "expected 2 columns as in the header, found 3" in str(err)

    err = _custom_error(tmp_path, '{"text": "a", "label": null}\n', "", ".jsonl")
    assert err.line == 1 and "missing value in column 'label'" in str(err)


def test_custom_invalid_json(tmp_path):
    err = _custom_error(tmp_path, '{"text": "a", "label": "x"}\n\n{"text": "b", "label": \n', "", ".jsonl")
    assert (err.path, err.line) == (str(tmp_path / "train.jsonl"), 3)
    assert "invalid JSON" in str(err)


def test_custom_dev_label_not_in_train(tmp_path):
    err = _custom_error(tmp_path, "text,label\na,x\nb,y\n", "text,label\nc,x\nd,z\n", ".csv")
    assert (err.path, err.line) == (str(tmp_path / "dev.csv"), 3)
    assert "label 'z' is not one of x, y" in str(err)


def test_custom_bad_score(tmp_path):
    err = _custom_error(tmp_path, "text,label\na,0.5\nb,high\n", "text,label\nc,1\n", ".csv", regression=True)
    assert err.line == 3 and "expected a number as the score, found 'high'" in str(err)


def test_custom_argument_errors(tmp_path):
    (tmp_path / "train.csv").write_text("a,b,c,label\nx,y,z,1\nx,y,z,0\n")
    (tmp_path / "dev.txt").write_text("a,label\nx,1\n")
    with pytest.raises(KdbenchError, match="one or two text columns"):
        load_custom(tmp_path / "train.csv", tmp_path / "train.csv", text_columns=["a", "b", "c"], label_column="label")
    with pytest.raises(KdbenchError, match="unknown data file type '.txt'"):
        load_custom(tmp_path / "train.csv", tmp_path / "dev.txt", text_columns=["a"], label_column="label")
    with pytest.raises(KdbenchError, match="not found"):
        load_custom(tmp_path / "train.csv", tmp_path / "nope.csv", text_columns=["a"], label_column="label")
    (tmp_path / "one.csv").write_text("a,label\nx,1\ny,1\n")
    with pytest.raises(KdbenchError, match="at least two classes"):
        load_custom(tmp_path / "one.csv", tmp_path / "one.csv", text_columns=["a"], label_column="label")


# Real GLUE files ---------------------------------------------------------------------------------

# read at import, before the autouse fixture clears the variable; else ../shared/glue beside the repo
REAL_GLUE = Path(os.environ.get("KDBENCH_GLUE_DIR") or Path(__file__).resolve().parents[2] / "shared" / "glue")


@pytest.mark.skipif(not (REAL_GLUE / "SST-2").is_dir(), reason="no real GLUE folder")
@pytest.mark.parametrize(("task", "split", "rows"), [
    ("sst2", "train", 67349), ("sst2", "validation", 872), ("rte", "validation", 277),
    ("stsb", "validation", 1500), ("wnli", "validation", 71),
])
def test_real_glue_row_counts(task, split, rows):
    """Row count = line count - header: with quote handling on, unbalanced `"` would merge lines."""
    spec = TASKS[task]
    path = REAL_GLUE / spec.glue_dir / spec.splits[split].filename
    with path.open("rb") as f:
        assert sum(1 for _ in f) - 1 == rows
    ds = load_task(task, data_dir=REAL_GLUE, splits=[split]).splits[split]
    assert len(ds) == rows
    if spec.is_regression:
        assert 0 <= min(ds["label"]) and max(ds["label"]) <= 5
    else:
        assert set(ds["label"]) == set(range(spec.num_labels))
