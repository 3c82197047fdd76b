"""Declared ranges: every value a user can set is checked when its config is built (command line,
ablation spec, Python), with one line naming the setting and what it allows, before anything loads."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import datasets
import pytest

import bench.demo
import bench.pipeline.generator
import bench.pipeline.runs
from ablations.spec import SpecError, load_spec
from bench.cli import main
from bench.parts.errors import KdbenchError, UnknownNameError
from bench.parts.features import tokenize
from bench.parts.fields import AT_LEAST_ONE, MAX_STEPS, NON_NEGATIVE, POSITIVE, PROBABILITY, SEED, Range, check_ranges
from bench.parts.models import load_tokenizer
from bench.pipeline.config import MIN_MAX_LENGTH, DataConfig
from bench.pipeline.config import GeneratorSettings
from bench.pipeline.config import KDConfig, TrainConfig
from bench.pipeline.runs import RunConfig
from methods import get_method, list_methods, load_plugins

PLUGIN = str(Path(__file__).parent.parent / "examples" / "word_dropout.py")


def _must_not_load(*args, **kwargs):
    pytest.fail("data or a model was loaded before the range check")


@pytest.fixture
def nothing_loads(monkeypatch):
    """Fail the test if a command gets as far as loading a tokenizer, data or a model."""
    for name in ("load_tokenizer", "prepare_data", "load_classifier"):
        monkeypatch.setattr(bench.pipeline.runs, name, _must_not_load)
    monkeypatch.setattr(bench.pipeline.generator, "make_generator", _must_not_load)
    for name in ("check_prerequisites", "finetune_teacher"):
        monkeypatch.setattr(bench.demo, name, _must_not_load)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kdbench: error: "), err
    return err.strip()


@pytest.mark.parametrize(("range_", "text"), [
    (POSITIVE, "> 0"), (NON_NEGATIVE, ">= 0"), (AT_LEAST_ONE, ">= 1"), (PROBABILITY, "in [0, 1]"),
    (MAX_STEPS, "-1 or >= 1"), (SEED, "in [0, 4294967295]"), (Range(high=1, high_open=True), "< 1")])
def test_a_range_reads_as_its_constraint(range_, text):
    assert str(range_) == text


def test_a_range_check_returns_the_value_or_names_it():
    assert POSITIVE.check(1e-5, "learning_rate") == 1e-5 and MAX_STEPS.check(-1, "max_steps") == -1
    assert PROBABILITY.check(0, "p") == 0 and PROBABILITY.check(1.0, "p") == 1.0
    with pytest.raises(KdbenchError, match=r"^learning_rate must be > 0, got -1.0$"):
        POSITIVE.check(-1.0, "learning_rate")
    for bad in (0, float("nan"), None, True, "1"):
        with pytest.raises(KdbenchError):
            POSITIVE.check(bad, "x")
    with pytest.raises(KdbenchError, match="must be in \\[0, 4294967295\\], got 4294967296"):
        SEED.check(2**32, "seed")


@dataclass
class Example:
    rate: float = field(default=0.1, metadata={"range": POSITIVE})
    limit: int | None = field(default=None, metadata={"range": AT_LEAST_ONE})
    sizes: tuple[int, ...] = field(default=(16, 32), metadata={"range": AT_LEAST_ONE})
    mode: str = field(default="a", metadata={"choices": ("a", "b")})
    free: float = -5.0  # no declared range: anything goes


def test_check_ranges_checks_declared_fields_items_of_tuples_and_choices():
    check_ranges(Example())  # None is fine for an optional field
    check_ranges(Example(limit=1, sizes=(1,), mode="b"))
    for bad, message in [({"rate": 0.0}, "rate must be > 0, got 0.0"), ({"limit": 0}, "limit must be >= 1, got 0"),
                         ({"sizes": (16, 0)}, "sizes[1] must be >= 1, got 0"), ({"sizes": ()}, "sizes is empty"),
                         ({"rate": None}, "rate must be > 0, got None")]:
        with pytest.raises(KdbenchError) as error:
            check_ranges(Example(**bad))
        assert message in str(error.value)
    with pytest.raises(UnknownNameError, match="unknown value of mode 'c'"):
        check_ranges(Example(mode="c"))


@pytest.mark.parametrize(("build", "message"), [
    (lambda: TrainConfig(learning_rate=0), "learning_rate must be > 0, got 0"),
    (lambda: TrainConfig(max_steps=0), "max_steps must be -1 or >= 1, got 0"),
    (lambda: TrainConfig(eval_strategy="no"), "unknown value of eval_strategy 'no'"),
    (lambda: KDConfig(temperature=0), "temperature must be > 0, got 0"),
    (lambda: DataConfig(max_length=MIN_MAX_LENGTH - 1), f"max_length must be >= {MIN_MAX_LENGTH}, got 4"),
    (lambda: GeneratorSettings(max_steps=0), "max_steps must be -1 or >= 1, got 0"),
    (lambda: GeneratorSettings(mlm_probability=0.0), "mlm_probability must be in (0, 1], got 0.0"),
    (lambda: RunConfig(pool_seed=-1), "pool_seed must be in [0, 4294967295], got -1"),
])
def test_python_configs_check_their_ranges_when_built(build, message):
    with pytest.raises(KdbenchError) as error:
        build()
    assert message in str(error.value)


def test_defaults_and_boundaries_are_valid():
    RunConfig()
    KDConfig(alpha_kd=0, alpha_ce=1)
    GeneratorSettings(mlm_probability=1.0, max_steps=-1)
    TrainConfig(max_steps=1, warmup_steps=0, weight_decay=0, max_grad_norm=0, eval_steps=1, seed=2**32 - 1)
    DataConfig(max_length=MIN_MAX_LENGTH, max_train_examples=1, subset_seed=0)


def test_min_max_length_is_the_shortest_that_keeps_both_sides_of_a_pair():
    tokenizer = load_tokenizer("minilm")
    pair = datasets.Dataset.from_dict({"text_a": ["a man is playing a large flute ."],
                                       "text_b": ["a man plays the guitar loudly ."], "label": [0]})

    def text_pieces(max_length: int) -> tuple[int, int]:
        """Word pieces kept of each side ([CLS] a [SEP] has type 0, b [SEP] type 1)."""
        types = tokenize(pair, tokenizer, max_length)[0]["token_type_ids"]
        return types.count(0) - 2, types.count(1) - 1

    assert text_pieces(MIN_MAX_LENGTH) == (1, 1)
    assert 0 in text_pieces(MIN_MAX_LENGTH - 1)
    assert text_pieces(2) == text_pieces(512)  # below 3 truncation is silently ignored: how 0 got through


@pytest.mark.parametrize(("options", "message"), [
    (["--learning-rate", "-1"], "learning_rate must be > 0, got -1.0"),
    (["--per-device-train-batch-size", "0"], "per_device_train_batch_size must be >= 1, got 0"),
    (["--per-device-eval-batch-size", "0"], "per_device_eval_batch_size must be >= 1, got 0"),
    (["--num-train-epochs", "0"], "num_train_epochs must be > 0, got 0.0"),
    (["--max-steps", "0"], "max_steps must be -1 or >= 1, got 0"),
    (["--warmup-steps", "-1"], "warmup_steps must be >= 0, got -1.0"),
    (["--weight-decay", "-0.1"], "weight_decay must be >= 0, got -0.1"),
    (["--max-grad-norm", "-1"], "max_grad_norm must be >= 0, got -1.0"),
    (["--gradient-accumulation-steps", "0"], "gradient_accumulation_steps must be >= 1, got 0"),
    (["--eval-strategy", "epochs"], "unknown value of eval_strategy 'epochs': did you mean epoch"),
    (["--eval-steps", "0"], "eval_steps must be >= 1, got 0"),
    (["--logging-steps", "0"], "logging_steps must be >= 1, got 0"),
    (["--seed", "-1"], "seed must be in [0, 4294967295], got -1"),
    (["--seed", str(2**32)], "seed must be in [0, 4294967295], got 4294967296"),
    (["--temperature", "0"], "temperature must be > 0, got 0.0"),
    (["--alpha-kd", "-1"], "alpha_kd must be >= 0, got -1.0"),
    (["--alpha-ce", "-1"], "alpha_ce must be >= 0, got -1.0"),
    (["--max-length", "0"], f"max_length must be >= {MIN_MAX_LENGTH}, got 0"),
    (["--max-train-examples", "0"], "max_train_examples must be >= 1, got 0"),
    (["--subset-seed", "-1"], "subset_seed must be in [0, 4294967295], got -1"),
    (["--pool-seed", "-1"], "pool_seed must be in [0, 4294967295], got -1"),
    (["--method", "ad2", "--param", "eps=-1"], "parameter eps of method ad2 must be >= 0, got -1.0"),
    (["--method", "eda", "--param", "alpha=0"], "parameter alpha of method eda must be in (0, 1], got 0.0"),
])
def test_distill_refuses_an_out_of_range_option_in_one_line_before_loading(options, message, nothing_loads, capsys):
    assert main(["distill", "--teacher", "x", *options]) == 2
    assert message in one_error_line(capsys)


@pytest.mark.parametrize("command", ["finetune-teacher", "finetune", "search"])
def test_other_run_commands_check_the_same_options(command, nothing_loads, capsys):
    assert main([command, "--teacher", "x", "--learning-rate", "0"] if command != "finetune-teacher"
                else [command, "--learning-rate", "0"]) == 2
    assert "learning_rate must be > 0, got 0.0" in one_error_line(capsys)


@pytest.mark.parametrize(("options", "message"), [
    (["--mlm-probability", "0"], "mlm_probability must be in (0, 1], got 0.0"),
    (["--head-learning-rate", "0"], "head_learning_rate must be > 0, got 0.0"),
    (["--max-steps", "0"], "max_steps must be -1 or >= 1, got 0"),
    (["--max-length", "2"], f"max_length must be >= {MIN_MAX_LENGTH}, got 2"),
])
def test_make_generator_refuses_an_out_of_range_option(options, message, nothing_loads, capsys):
    assert main(["make-generator", *options]) == 2
    assert message in one_error_line(capsys)


@pytest.mark.parametrize(("options", "message"), [
    (["--max-train-examples", "0"], "max_train_examples must be >= 1, got 0"),
    (["--seed", "-1"], "seed must be in [0, 4294967295], got -1"),
])
def test_demo_refuses_an_out_of_range_option_before_anything_loads(options, message, nothing_loads, capsys):
    assert main(["demo", *options]) == 2
    assert message in one_error_line(capsys)


def test_demo_refuses_an_unknown_profile_naming_the_profiles(nothing_loads, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["demo", "--profile", "tiny"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err  # argparse quotes the choices in some Python versions
    assert "invalid choice: 'tiny'" in err and "small-student" in err and "three-layer" in err


def test_every_demo_profile_names_a_student_that_parses():
    from bench.pipeline.config import DEFAULT_DEMO_PROFILE, DEMO_PROFILES, TrainConfig
    from bench.pipeline.students import parse_student

    assert DEFAULT_DEMO_PROFILE in DEMO_PROFILES
    for profile in DEMO_PROFILES.values():
        parse_student(profile.student)
        TrainConfig(learning_rate=profile.learning_rate, num_train_epochs=profile.num_train_epochs)  # range-checked


SPEC = """
tasks = ["sst2"]
teacher = "minilm"
"""


@pytest.mark.parametrize(("body", "message"), [
    ('method = "ad2"\n[sweep]\nparameter = "eps"\nvalues = [-1]\n',
     "parameter eps of method ad2 must be >= 0, got -1.0"),
    ('method = "ad2"\n[sweep]\nparameter = "kd.temperature"\nvalues = [0]\n', "kd of kd.temperature=0: temperature must be > 0, got 0.0"),
    ('[[variants]]\nmethod = "mlm"\nparams = {p_t = 1.5}\n', "parameter p_t of method mlm must be in [0, 1], got 1.5"),
    ('[[variants]]\nmethod = "none"\n[kd]\ntemperature = 0\n', "[kd]: temperature must be > 0, got 0.0"),
    ('[[variants]]\nmethod = "none"\n[train]\nmax_grad_norm = -1\n', "[train]: max_grad_norm must be >= 0, got -1.0"),
    ('[[variants]]\nmethod = "none"\n[teacher_train]\nwarmup_steps = -1\n', "[teacher_train]: warmup_steps must be >= 0, got -1.0"),
    ('[[variants]]\nmethod = "none"\n[data]\nmax_train_examples = 0\n', "[data]: max_train_examples must be >= 1, got 0"),
    ('[[variants]]\nmethod = "none"\n[generator]\nmlm_probability = 0\n', "[generator]: mlm_probability must be in (0, 1], got 0.0"),
])
def test_ablate_dry_run_refuses_an_out_of_range_spec_value_naming_the_file(tmp_path, body, message, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(SPEC + body)
    with pytest.raises(SpecError) as error:
        load_spec(path)
    assert str(error.value) == f"{path}: {message}"
    assert main(["ablate", "--dry-run", str(path)]) == 2
    assert one_error_line(capsys) == f"kdbench: error: {path}: {message}"


@pytest.mark.parametrize(("method", "assignment", "message"), [
    ("ad2", "eps=-1", "must be >= 0, got -1.0"), ("ad2", "eta=-1e-3", "must be >= 0"), ("ad2", "steps=-1", ">= 0"),
    ("ad2", "alpha=-1", ">= 0"), ("ad2", "temperature=0", "> 0"),
    ("eda", "alpha=0", "in (0, 1]"), ("eda", "alpha=1.5", "in (0, 1]"), ("eda", "num_aug=0", ">= 1"),
    ("backtranslation", "temperature=0", "> 0"), ("backtranslation", "top_k=-1", ">= 0"),
    ("backtranslation", "copies=0", ">= 1"), ("backtranslation", "batch_size=0", ">= 1"),
    ("backtranslation", "max_length=0", ">= 1"),
    ("mlm", "p_t=-0.1", "in [0, 1]"), ("mlm", "n_a=0", ">= 1"), ("mlm", "top_k=0", ">= 1"),
    ("mlm", "glove_vocab=0", ">= 1"), ("mlm", "batch_size=0", ">= 1"), ("mlm", "max_length=2", ">= 3"),
    ("word-dropout", "p=1.5", "in [0, 1]"), ("word-dropout", "copies=0", ">= 1"),
])
def test_method_parameters_are_range_checked_from_text_and_from_values(method, assignment, message):
    load_plugins([PLUGIN])
    spec = get_method(method)
    name, value = assignment.split("=")
    for given in ([assignment], {name: spec.params[[p.name for p in spec.params].index(name)].type(value)}):
        with pytest.raises(KdbenchError) as error:
            spec.parse_params(given)
        assert str(error.value).startswith(f"parameter {name} of method {method} must be ")
        assert message in str(error.value)


def test_method_parameters_at_their_bounds_or_unset_are_valid():
    assert get_method("ad2").parse_params(["eps=0", "steps=0", "temperature=none"]).eps == 0
    assert get_method("mlm").parse_params({"p_t": 1, "n_a": None}).p_t == 1.0
    assert get_method("eda").parse_params(["alpha=1", "num_aug=none"]).alpha == 1.0


def test_every_numeric_method_parameter_declares_a_range():
    load_plugins([PLUGIN])
    missing = [f"{m.name}.{p.name}" for m in list_methods() for p in m.params
               if p.type in (int, float) and p.range is None]
    assert not missing


def test_kdbench_methods_lists_the_ranges(capsys):
    assert main(["methods", "--plugin", PLUGIN]) == 0
    lines = capsys.readouterr().out.splitlines()

    def line(name: str) -> str:
        return next(text for text in lines if text.split()[:1] == [name])

    assert line("eps").endswith("; must be >= 0") and line("steps").endswith("; must be >= 0")
    assert line("p_t").endswith("; must be in [0, 1]")
    assert line("p").endswith("; must be in [0, 1]")  # the plugin's parameter
    assert "must be" not in line("init")  # a choice: listed as its names
