"""Any method with any objective and scheme: AD2's perturbed view scored by the run's objective, a
schedule and a scheme's state carried across a resume, composition errors caught before training,
and a plugin objective end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.parts.context import Batch, TrainingContext
from bench.parts.errors import KdbenchError
from bench.parts.kd_config import KDConfig
from bench.parts.tasks import get_task
from bench.pipeline.records import RECORD_FILE
from bench.pipeline.runs import run_distill
from methods import get_method
from methods.ad2 import Ascent, perturbed
from bench.parts.losses import kd_divergence
from objectives import OBJECTIVES, get_objective, register_objective
from objectives.base import Objective
from tests.conftest import tiny_config
from tests.methods.test_ad2 import batch, models
from tests.test_resume import _evaluations
from tests.test_runs import distill_config

ROOT = Path(__file__).parent.parent


def test_ad2_scores_its_perturbed_view_with_the_runs_objective(tokenizer_dir, monkeypatch):
    teacher, student = models()
    inputs = batch(tokenizer_dir)
    context = TrainingContext(get_task("sst2"), 100, "tiny", teacher_model=teacher, kd=KDConfig())
    context.state = type("State", (), {"global_step": 2, "max_steps": 18, "epoch": 0.2})()  # phase 1, tau 2
    annealing = get_objective("annealing").implementation(get_objective("annealing").parse_params(), context)
    ad2 = get_method("ad2").implementation(get_method("ad2").parse_params({"target": "teacher_clean"}), context)
    delta = torch.randn(*inputs["input_ids"].shape, 32) * 0.1

    def perturbation(*args):  # as AD2's own: it keeps what the perturbation was made of, for measuring
        ad2.last_ascent = Ascent(start=torch.zeros_like(delta))
        return delta

    monkeypatch.setattr(ad2, "perturbation", perturbation)
    with torch.no_grad():
        teacher_logits = teacher(**inputs).logits
    loss = ad2.loss(student, Batch(inputs, None, teacher_logits), annealing)
    with torch.no_grad(), perturbed(student, ad2.params.site, delta):
        perturbed_logits = student(**inputs).logits
    scale = annealing.scale(context.progress)
    clean_logits = student(**inputs).logits
    by_hand = (((clean_logits - teacher_logits * scale) ** 2).mean()
               + ((perturbed_logits - teacher_logits * scale) ** 2).mean())  # alpha 1: both views, annealing's MSE
    assert scale == pytest.approx(2 / 7)
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_a_resumed_run_continues_the_schedule_and_the_schemes_average(glue_dir, tiny_teacher, tmp_path,
                                                                      ctrl_c_in_epoch_2):
    """Interrupted in annealing's phase 1 with SWA already averaging: resumed, the same numbers (one schedule
    across both phases: SWA's constant rate and annealing's restart of the schedule cannot both hold)."""
    parts = dict(objective="annealing", objective_params={"phase2": "continue"}, scheme="swa",
                 scheme_params={"start": 0.25})
    config = distill_config(glue_dir, tiny_teacher, tmp_path / "run", resume=True, **parts)
    with pytest.raises(KeyboardInterrupt):
        run_distill(config)
    ctrl_c_in_epoch_2.undo()
    resumed = run_distill(config)
    uninterrupted = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "clean", **parts))
    assert resumed["resumed_from"]["step"] == 6
    assert _evaluations(resumed) == _evaluations(uninterrupted)
    assert resumed["scheme_info"]["measured"] == uninterrupted["scheme_info"]["measured"]


def distill_args(glue_dir: Path, teacher: Path, out: Path, *extra: str) -> list[str]:
    return ["distill", "--task", "sst2", "--data-dir", str(glue_dir), "--teacher", str(teacher), "--student",
            "teacher-layers:0", "--max_length", "32", "--num-train-epochs", "1", "--output-dir", str(out), *extra]


@pytest.mark.parametrize("extra, message", [
    (["--objective", "annealing", "--temperature", "2"], "objective annealing does not read temperature"),
    (["--objective", "annealing", "--scheme", "swa"], "scheme swa sets a schedule of its own: pass --objective-param "
                                                      "phase2=continue"),
    (["--objective", "annealing", "--objective-param", "tau_max=0"], "tau_max of objective annealing must be >= 1"),
    (["--objective", "kd-gce"], "kd-gce mitigates noisy labels in the label term: set --alpha-ce > 0"),
    (["--scheme", "swa", "--scheme-param", "start=1"], "start of scheme swa must be in [0, 1)"),
    (["--objective", "anealing"], "did you mean annealing"),
])
def test_a_composition_that_cannot_run_stops_before_anything_is_loaded(glue_dir, tiny_teacher, tmp_path, capsys,
                                                                       extra, message):
    assert main(distill_args(glue_dir, tiny_teacher, tmp_path / "run", *extra)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_an_ablation_spec_composes_and_is_checked_in_its_dry_run(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text('tasks = ["sst2"]\n[sweep]\nparameter = "objective.tau_max"\nvalues = [3, 7]\n')
    assert main(["ablate", str(spec), "--dry-run"]) == 2  # the sweep's base objective is kd: no tau_max
    assert "parameter of objective kd" in capsys.readouterr().err
    spec.write_text('tasks = ["sst2"]\nobjective = "annealing"\nmethod = "ad2"\n'
                    '[sweep]\nparameter = "objective.tau_max"\nvalues = [3, 0]\n')
    assert main(["ablate", str(spec), "--dry-run"]) == 2
    assert "tau_max of objective annealing must be >= 1, got 0" in capsys.readouterr().err
    spec.write_text('tasks = ["sst2"]\nobjective = "annealing"\nmethod = "ad2"\n'
                    '[sweep]\nparameter = "objective.tau_max"\nvalues = [3, 7]\n')
    assert main(["ablate", str(spec), "--dry-run"]) == 0
    assert "objective.tau_max=3: distill method=ad2 params={} kd={} objective=annealing {'tau_max': 3}" in \
        capsys.readouterr().out


def test_a_plugin_objective_runs_end_to_end(glue_dir, tiny_teacher, tmp_path, capsys):
    plugin = str(ROOT / "examples" / "logit_mse.py")
    assert main(["list", "objectives", "logit*", "--plugin", plugin]) == 0
    assert "logit-mse: mean squared error" in capsys.readouterr().out
    out = tmp_path / "run"
    assert main(distill_args(glue_dir, tiny_teacher, out, "--plugin", plugin, "--objective", "logit-mse",
                             "--objective-param", "beta=0.5", "--method", "ad2")) == 0
    record = json.loads((out / RECORD_FILE).read_text())
    assert record["objective_info"]["name"] == "logit-mse" and record["objective_info"]["params"] == {"beta": 0.5}
    assert record["method"] == "ad2" and record["in_loop"]["batches"] > 0


def test_a_part_trains_parameters_of_its_own_sees_example_ids_and_steps(glue_dir, tiny_teacher, tmp_path):
    """The context's offers to a part: its own trainable parameters with their own optimiser (a learnt
    temperature here), per-step callbacks, the batch's example ids, and the teacher's hidden states."""
    seen = {"ids": set(), "steps": [], "hidden": None, "objective": None}

    @register_objective("learnt-temperature", description="KD at a temperature learnt with the student (a test)")
    class LearntTemperature(Objective):
        kd_settings = ()

        def __init__(self, params, context):
            super().__init__(params, context)
            self.log_t = torch.nn.Parameter(torch.zeros(()))
            context.add_parameters([self.log_t], lr=0.1)
            context.on_step(lambda ctx: seen["steps"].append(ctx.step))
            seen["objective"] = self

        def loss(self, student_logits, batch):
            seen["ids"].update(batch.example_ids.tolist())
            if seen["hidden"] is None:
                seen["hidden"] = len(self.context.teacher_forward(batch.inputs, ["hidden_states"]).hidden_states)
            return self.view_loss(student_logits, batch.teacher_logits, batch)

        def view_loss(self, student_logits, teacher_logits, batch):
            return kd_divergence(student_logits, teacher_logits, temperature=self.log_t.exp(), regression=False)

        def state_dict(self):
            return {"log_t": self.log_t.detach().clone()}

    try:
        record = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "run", objective="learnt-temperature"))
    finally:
        OBJECTIVES._parts.pop("learnt-temperature")
    assert seen["ids"] == set(range(48))  # every training example, by its row
    assert seen["steps"] == list(range(1, record["throughput"]["global_steps"] + 1))
    assert seen["hidden"] == tiny_config().num_hidden_layers + 1  # the embedding output, then each layer's
    assert record["objective_info"]["name"] == "learnt-temperature"
    assert seen["objective"].log_t.item() != 0  # stepped by its own optimiser, with the loss's gradient


def test_a_pool_method_composes_with_an_in_loop_one(glue_dir, tiny_teacher, tmp_path):
    """`eda+ad2`: the student trains on EDA's pool (the same pool an EDA run makes) with AD2's step on top."""
    cache = str(tmp_path / "cache")
    eda = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "eda", method="eda",
                                     method_params={"num_aug": 1}, cache_dir=cache))
    both = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "both", method="eda+ad2",
                                      method_params={"num_aug": 1, "ad2.steps": 2}, cache_dir=cache))
    assert both["augmentation"]["pool_folder"] == eda["augmentation"]["pool_folder"]
    assert both["augmentation"]["cache_hit"] and both["augmentation"]["pool_size"] > 0
    assert both["in_loop"]["batches"] == both["throughput"]["global_steps"] > eda["throughput"]["global_steps"] / 2
    assert eda["in_loop"] is None
    info = both["method_info"]
    assert (info["name"], info["label"], info["kind"]) == ("eda+ad2", "EDA + AD2", "pool+in-loop")
    assert info["params"]["eda.num_aug"] == 1 and info["params"]["ad2.steps"] == 2
    assert [part["name"] for part in info["parts"]] == ["eda", "ad2"]


@pytest.mark.parametrize("method, params, message", [
    ("eda+ad2", {"alpha": 0.1}, "parameter alpha of method eda\\+ad2: more than one of eda, ad2 takes it; write "
                                "it as METHOD.alpha"),
    ("eda+ad2", {"colour": 1}, "none of eda, ad2 takes it"),
    ("ad2+mate-kd", {}, "ad2 and mate-kd both change the training step"),
    ("none+ad2", {}, "compose distinct methods that each do something"),
    ("ad2+ad2", {}, "compose distinct methods"),
    ("eda+ad2", {"ad2.eps": -1.0}, "parameter eps of method ad2 must be"),
])
def test_a_composition_is_checked_before_anything_loads(method, params, message, glue_dir, tiny_teacher, tmp_path):
    from bench.pipeline.choice import choose_parts

    with pytest.raises(KdbenchError, match=message):
        choose_parts(distill_config(glue_dir, tiny_teacher, tmp_path, method=method, method_params=params))


def test_a_composition_routes_each_parameter_to_its_method(glue_dir, tiny_teacher, tmp_path):
    from ablations.spec import parse_spec
    from bench.pipeline.choice import choose_parts

    params = {"back-translation.engine": "apertium", "eps": "2e-5", "ad2.alpha": "3"}  # as --param gives them
    chosen = choose_parts(distill_config(glue_dir, tiny_teacher, tmp_path, method="back-translation+ad2",
                                         method_params=params))
    (bt, ad2) = chosen.methods
    assert (bt.part.name, bt.params.engine) == ("backtranslation", "apertium")
    assert (ad2.params.eps, ad2.params.alpha) == (2e-5, 3.0)
    spec = parse_spec({"tasks": ["sst2"], "variants": [{"method": "eda+ad2", "params": {"eda.alpha": 0.2,
                                                                                          "eps": 1}}]}, name="x")
    assert spec.variants[0].params == {"eda.alpha": 0.2, "eps": 1.0}  # checked and typed, as given


def test_a_composition_runs_with_the_objective_its_method_declares(monkeypatch):
    from bench.pipeline.config import RunConfig
    from methods import METHODS, register_method
    from methods.base import PoolAugmenter

    config = RunConfig(method="eda+combined-kd")  # Combined-KD declares annealing, tau_max 10, phase 1 0.75
    assert (config.objective, config.objective_params) == ("annealing", {"tau_max": 10, "phase1_fraction": 0.75})
    with pytest.raises(KdbenchError, match="eda\\+combined-kd runs with the annealing objective, not rw-kd"):
        RunConfig(method="eda+combined-kd", objective="rw-kd")
    monkeypatch.setattr(METHODS, "_parts", dict(METHODS._parts))
    register_method("pool-with-objective", kind="pool", description="a pool that runs with continuation (a test)",
                    objective=("continuation", {}))(type("PoolWithObjective", (PoolAugmenter,), {}))
    with pytest.raises(KdbenchError, match="its methods run with different objectives \\(continuation, annealing\\)"):
        RunConfig(method="pool-with-objective+combined-kd")
