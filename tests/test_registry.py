"""The one registry of every kind of part: aliases, wildcards, near-match errors, base-class check,
entry points per kind, lazy built-ins."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest

import bench.parts.registry
from bench.parts.errors import KdbenchError, UnknownNameError
from bench.parts.registry import Registry, param
from bench.pipeline.students import STUDENTS
from methods import get_method
from objectives import OBJECTIVES, get_objective, list_objectives, register_objective
from objectives.base import Objective
from schemes import list_schemes


def test_an_alias_finds_its_part():
    assert get_method("back-translation") is get_method("backtranslation")


def test_listing_takes_wildcards():
    assert [part.name for part in list_objectives("ann*")] == ["annealing"]
    assert {"kd", "annealing", "continuation", "rw-kd", "kd-gce", "kd-bootstrap"} <= {p.name for p in list_objectives()}
    assert [part.name for part in list_schemes()][:2] == ["plain", "swa"]
    assert {p.name for p in STUDENTS.list()} == {"teacher-layers", "fresh", "kronecker", "pretrained"}


def test_an_unknown_name_gets_the_nearest_valid_ones():
    with pytest.raises(UnknownNameError, match="annealing"):
        get_objective("anealing")


def test_a_part_must_derive_from_its_kinds_base():
    with pytest.raises(KdbenchError, match="must be a subclass of objectives.base.Objective"):
        register_objective("not-an-objective", description="x")(dict)


def test_parameters_are_typed_and_checked_with_the_parts_name():
    with pytest.raises(KdbenchError, match="parameter tau_max of objective annealing must be >= 1"):
        get_objective("annealing").parse_params(["tau_max=0"])


def test_entry_points_are_read_per_kind(monkeypatch):
    @dataclass(frozen=True)
    class Params:
        weight: float = param(1.0, "a weight")

    class EntryPoint:
        def load(self):
            register_objective("from-a-package", description="a plugin objective", params=Params)(
                type("FromPackage", (Objective,), {}))

    asked = []
    monkeypatch.setattr(bench.parts.registry, "entry_points",
                        lambda group: asked.append(group) or ([EntryPoint()] if group == "kdbench.objectives" else []))
    monkeypatch.setattr(OBJECTIVES, "_plugins_loaded", False)
    monkeypatch.setattr(OBJECTIVES, "_parts", dict(OBJECTIVES._parts))
    assert get_objective("from-a-package").parse_params(["weight=2"]).weight == 2.0
    assert asked == ["kdbench.objectives"]


def test_looking_a_part_up_imports_its_module_only():
    code = ("import sys\nfrom methods import get_method\nfrom objectives import get_objective\n"
            "get_method('ad2'); get_objective('kd')\n"
            "print(sorted(m for m in ('methods.eda', 'methods.mlm', 'nlpaug', 'nltk', 'objectives.rw_kd') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_a_registry_refuses_a_kind_it_does_not_have():
    registry = Registry("thing", plural="things", base="objectives.base:Objective", builtins={}, kinds=("a", "b"))
    with pytest.raises(KdbenchError, match="must be one of a, b"):
        registry.register("x", description="x", kind="c")


def test_a_method_declares_the_objective_it_runs_with_and_its_demo_parameters(monkeypatch, capsys):
    from bench.cli import main
    from bench.pipeline.config import RunConfig
    from methods import METHODS, register_method
    from methods.base import InLoopMethod

    monkeypatch.setattr(METHODS, "_parts", dict(METHODS._parts))
    register_method("paired-plugin", kind="in-loop", description="a plugin method with its own objective",
                    objective=("annealing", {"tau_max": 4}), demo_params={"x": 1})(
        type("PairedPlugin", (InLoopMethod,), {}))
    config = RunConfig(method="paired-plugin", objective_params={"phase1_fraction": 0.5})
    assert (config.objective, config.objective_params) == ("annealing", {"tau_max": 4, "phase1_fraction": 0.5})
    assert RunConfig(method="paired-plugin", objective_params={"tau_max": 2}).objective_params == {"tau_max": 2}
    with pytest.raises(KdbenchError, match="paired-plugin runs with the annealing objective, not rw-kd"):
        RunConfig(method="paired-plugin", objective="rw-kd")
    assert RunConfig(method="ad2").objective == "kd"  # a method that declares none keeps the default
    assert main(["list", "methods", "paired-plugin"]) == 0
    shown = capsys.readouterr().out
    assert "runs with objective annealing (tau_max=4)" in shown and "the demo runs it with x=1" in shown


@dataclass
class FirstRowsParams:
    k: int = param(2, "rows kept")


@pytest.fixture
def first_rows_selector():
    """A selector with a parameter, registered for the test: no built-in selector has one yet."""
    from selection import SELECTORS, register_selector
    from selection.base import Selector

    register_selector("first-rows", description="the first k rows (a test)", params=FirstRowsParams)(
        type("FirstRows", (Selector,), {"select": lambda self, rows: list(range(self.params.k))}))
    yield
    SELECTORS._parts.pop("first-rows")


@dataclass
class ShardParams:
    shards: int = param(1, "files the cache is split into")


@pytest.fixture
def sharded_source():
    """A teacher source with a parameter, registered for the test: no built-in source has one yet."""
    from teachers import TEACHER_SOURCES, register_teacher_source
    from teachers.base import TeacherSource

    register_teacher_source("sharded", description="a test", params=ShardParams)(type("Sharded", (TeacherSource,), {}))
    yield
    TEACHER_SOURCES._parts.pop("sharded")


def test_each_role_is_one_row_that_the_command_line_specs_and_run_tables_read(first_rows_selector, sharded_source):
    from ablations.spec import parse_spec
    from bench.cli import build_parser
    from bench.commands.options import role_values
    from bench.roles import ROLES
    from bench.store.run_table import config_columns

    chosen = {"method": ("ad2", "eps", 2e-5), "objective": ("continuation", "t_max", 4), "scheme": ("swa", "start", 0.5),
              "selector": ("first-rows", "k", 3), "student": ("fresh", "hidden_size", 64),
              "teacher_outputs": ("sharded", "shards", 2)}
    argv = ["distill", "--teacher", "t"]
    for role in ROLES:
        assert bench.parts.registry.resolve(role.registry).get(role.default).name == role.default
        name, key, value = chosen[role.name]
        argv += [f"--{role.name}", name, role.param_flag, f"{key}={value}"]
    values = role_values(build_parser().parse_args(argv))
    assert values == {**{r.name: chosen[r.name][0] for r in ROLES},
                      **{r.params: {chosen[r.name][1]: str(chosen[r.name][2])} for r in ROLES}}
    variant = {"label": "x", **{r.name: chosen[r.name][0] for r in ROLES},
               **{r.spec_params: {chosen[r.name][1]: chosen[r.name][2]} for r in ROLES}}
    spec = parse_spec({"tasks": ["sst2"], "variants": [variant]}, name="roles")
    assert spec.variants[0].parts() == {**{r.name: chosen[r.name][0] for r in ROLES},
                                        **{r.params: {chosen[r.name][1]: chosen[r.name][2]} for r in ROLES}}
    columns = config_columns(spec.variants[0].parts())
    assert {f"{r.name}.{chosen[r.name][1]}": columns[f"{r.name}.{chosen[r.name][1]}"] for r in ROLES} == {
        f"{r.name}.{chosen[r.name][1]}": chosen[r.name][2] for r in ROLES}
