"""AD2: the perturbation stays in its ball and off padding, each reading (site x projection) gives
the size it says and the paper's values perturb under SMART's readings, the ascent raises the
divergence, the target switch follows the embeddings, what the perturbation did is measured, and
the whole method trains single sentences, pairs and regression under the harness."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AlbertConfig, AlbertForSequenceClassification, AutoTokenizer, BertForSequenceClassification

from bench.parts.context import Batch
from bench.parts.errors import KdbenchError
from bench.parts.kd_config import KDConfig
from bench.parts.registry import NoParams
from bench.parts.tasks import get_task
from bench.pipeline.runs import DataConfig, run_distill
from methods import get_method
from methods.ad2 import AD2, PROJECTIONS, READINGS, SITES, _rounded, perturbed, site_module, site_shape
from methods.base import MethodContext
from objectives import get_objective
from tests.conftest import tiny_config
from tests.test_runs import distill_config

SENTENCES = [("the film was good", "a fine story , really"), ("really bad acting , dull plot", "awful")]


def models(hidden: int = 32, labels: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    teacher = BertForSequenceClassification(tiny_config(num_labels=labels)).eval()
    student = BertForSequenceClassification(tiny_config(num_labels=labels, hidden_size=hidden,
                                                        num_hidden_layers=2)).eval()
    return teacher, student


def batch(tokenizer_dir, pair: bool = False) -> dict[str, torch.Tensor]:
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    texts = list(zip(*SENTENCES)) if pair else ([a for a, _ in SENTENCES],)
    return dict(tokenizer(*texts, padding=True, return_tensors="pt"))


def context(teacher=None, task: str = "sst2", temperature: float = 1.0) -> MethodContext:
    return MethodContext(task=get_task(task), train_size=100, teacher="tiny", teacher_model=teacher,
                         kd=KDConfig(temperature=temperature))


def ad2(teacher, task: str = "sst2", temperature: float = 1.0, **params) -> AD2:
    spec = get_method("ad2")
    return spec.implementation(spec.parse_params(params), context(teacher, task, temperature))


def kd(task: str = "sst2", temperature: float = 1.0):
    """The `kd` objective of a run with this temperature (alpha_kd 1, alpha_ce 0)."""
    return get_objective("kd").implementation(NoParams(), context(None, task, temperature))


def kd_value(objective, student_logits, teacher_logits) -> torch.Tensor:
    return objective.loss(student_logits, Batch({}, None, teacher_logits)).mean()


@pytest.mark.parametrize("norm", ["l2", "linf", "sign"])
@pytest.mark.parametrize("init", ["zero", "gaussian", "uniform"])
def test_perturbation_stays_in_the_ball_and_off_padding(tokenizer_dir, norm, init):
    teacher, student = models()
    inputs = batch(tokenizer_dir, pair=True)
    eps = 1e-2
    method = ad2(teacher, reading="ours", eps=eps, eta=1.0, steps=3, norm=norm, init=init)  # eta >> eps: projection must bind
    delta = method.perturbation(student, inputs, teacher(**inputs).logits)
    size = delta.norm(dim=-1) if norm == "l2" else delta.abs().amax(dim=-1)
    assert size.max() <= eps * (1 + 1e-5)
    assert size.max() >= eps * 0.99  # a step 100x the radius ends on the sphere
    padding = inputs["attention_mask"] == 0
    assert padding.any() and delta[padding].abs().max() == 0


def test_no_steps_and_zero_init_is_no_perturbation(tokenizer_dir):
    teacher, student = models()
    inputs = batch(tokenizer_dir)
    delta = ad2(teacher, steps=0, init="zero").perturbation(student, inputs, teacher(**inputs).logits)
    assert delta.abs().max() == 0


@pytest.mark.parametrize("target", ["teacher_perturbed", "teacher_clean"])
def test_ascent_increases_the_divergence(tokenizer_dir, target):
    teacher, student = models()
    inputs = batch(tokenizer_dir)
    method = ad2(teacher, reading="ours", eps=0.5, eta=0.5, steps=1, init="zero", target=target)
    objective = kd()
    with torch.no_grad():
        clean_target = teacher(**inputs).logits
        before = kd_value(objective, student(**inputs).logits, clean_target)
    delta = method.perturbation(student, inputs, clean_target)
    embeds = student.get_input_embeddings()(inputs["input_ids"]) + delta
    rest = {k: v for k, v in inputs.items() if k != "input_ids"}
    with torch.no_grad():
        after_target = (teacher(inputs_embeds=teacher.get_input_embeddings()(inputs["input_ids"]) + delta, **rest).logits
                        if target == "teacher_perturbed" else clean_target)
        after = kd_value(objective, student(inputs_embeds=embeds, **rest).logits, after_target)
    assert after > before


def test_same_seed_same_perturbation(tokenizer_dir):
    teacher, student = models()
    inputs = batch(tokenizer_dir)
    logits = teacher(**inputs).logits
    deltas = []
    for _ in range(2):
        torch.manual_seed(3)
        deltas.append(ad2(teacher, steps=2).perturbation(student, inputs, logits))
    assert torch.equal(deltas[0], deltas[1]) and deltas[0].abs().max() > 0


def test_target_follows_the_embedding_shapes(tokenizer_dir):
    teacher, narrow_student = models(hidden=16)
    inputs = batch(tokenizer_dir)
    logits = teacher(**inputs).logits
    method = ad2(teacher)  # auto
    method.perturbation(narrow_student, inputs, logits)
    assert method._perturbed_target is False
    same = ad2(teacher)
    same.perturbation(models()[1], inputs, logits)
    assert same._perturbed_target is True
    with pytest.raises(KdbenchError, match="target=teacher_clean"):
        ad2(teacher, target="teacher_perturbed").perturbation(narrow_student, inputs, logits)


def test_loss_is_clean_kd_plus_alpha_times_perturbed_kd(tokenizer_dir):
    teacher, student = models()
    inputs = batch(tokenizer_dir)
    with torch.no_grad():
        logits = teacher(**inputs).logits
    objective = kd(temperature=2.0)
    clean = kd_value(objective, student(**inputs).logits, logits)
    loss = lambda method: method.loss(student, Batch(inputs, None, logits), objective)  # noqa: E731
    assert torch.allclose(loss(ad2(teacher, temperature=2.0, alpha=0.0)), clean)
    assert loss(ad2(teacher, temperature=2.0, alpha=1.0, eps=0.1)) > clean


def test_regression_uses_mse(tokenizer_dir):
    teacher, student = models(labels=1)
    inputs = batch(tokenizer_dir, pair=True)
    method = ad2(teacher, task="stsb", eps=0.1, eta=0.1)
    loss = method.loss(student, Batch(inputs, None, teacher(**inputs).logits.detach()), kd(task="stsb"))
    assert loss.ndim == 0 and torch.isfinite(loss)


@pytest.mark.parametrize("task", ["sst2", "stsb"])
def test_ad2_distils_single_sentences_and_regression_pairs(glue_dir, tiny_teacher, tiny_regression_teacher,
                                                           tmp_path, task):
    teacher_dir = tiny_regression_teacher if task == "stsb" else tiny_teacher
    data = DataConfig(task=task, data_dir=str(glue_dir), max_length=32)
    record = run_distill(distill_config(glue_dir, teacher_dir, tmp_path / "run", method="ad2",
                                        method_params={"steps": "2"}, data=data))
    assert record["method_info"]["name"] == "ad2" and record["method_info"]["params"]["steps"] == 2
    assert record["in_loop"]["batches"] == record["throughput"]["global_steps"]  # measured on every batch
    assert record["in_loop"]["relative_size_median"] > 0
    assert record["best"]["value"] is not None
    plain = run_distill(distill_config(glue_dir, teacher_dir, tmp_path / "plain", data=data))
    assert record["evaluations"][-1]["eval_validation_loss"] != plain["evaluations"][-1]["eval_validation_loss"]


def _delta(tokenizer_dir, seed: int = 0, **params) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    teacher, student = models()
    inputs = batch(tokenizer_dir, pair=True)
    with torch.no_grad():
        logits = teacher(**inputs).logits
    torch.manual_seed(seed)
    return ad2(teacher, **params).perturbation(student, inputs, logits), inputs


@pytest.mark.parametrize("projection", PROJECTIONS)
@pytest.mark.parametrize("site", SITES)
def test_each_site_and_projection_gives_the_size_it_says(tokenizer_dir, site, projection):
    """ball: at most eps; unit: 1 per token; none: the start plus K steps of eta at most (l2 per token)."""
    steps, eps, eta = 2, 1e-5, 1e-3  # the paper's eps and eta
    delta, inputs = _delta(tokenizer_dir, site=site, projection=projection, steps=steps)
    tokens = inputs["attention_mask"].bool()
    size = delta.norm(dim=-1)[tokens]
    if projection == "ball":
        assert size.max() <= eps * (1 + 1e-5)
    elif projection == "unit":
        assert torch.allclose(size, torch.ones_like(size), atol=1e-5)
    else:
        start, _ = _delta(tokenizer_dir, site=site, projection=projection, steps=0)
        moved = (delta - start).norm(dim=-1)[tokens]
        assert moved.max() <= steps * eta * (1 + 1e-4) and moved.min() >= eta * 0.5  # the steps did move it
    assert delta[~tokens].abs().max() == 0  # padding untouched


def _logit_change(tokenizer_dir, site: str, projection: str) -> float:
    teacher, student = models()
    inputs = batch(tokenizer_dir, pair=True)
    torch.manual_seed(0)
    delta = ad2(teacher, site=site, projection=projection).perturbation(student, inputs, teacher(**inputs).logits)
    with torch.no_grad():
        clean = student(**inputs).logits
        with perturbed(student, site, delta):
            return (student(**inputs).logits - clean).abs().max().item()


@pytest.mark.parametrize("site", SITES)
def test_at_the_papers_values_unit_and_none_change_the_logits_and_the_ball_does_not(tokenizer_dir, site):
    ball, unit, none = (_logit_change(tokenizer_dir, site, projection) for projection in PROJECTIONS)
    assert unit > 1000 * ball and none > 10 * ball and unit > 1e-3


def test_a_reading_sets_site_and_projection_unless_given():
    spec = get_method("ad2")
    for reading, values in READINGS.items():
        params = spec.parse_params({"reading": reading})
        assert (params.site, params.projection) == (values["site"], values["projection"])
    mixed = spec.parse_params(["reading=smart", "projection=none"])
    assert (mixed.site, mixed.projection) == ("embedding_output", "none")
    assert spec.parse_params(spec.describe(mixed)["params"]) == mixed  # what a record stores reads back the same


def test_the_hook_reading_equals_adding_delta_to_the_input_embeddings(tokenizer_dir):
    """site=word_embeddings through the forward hook is the embeddings-input forward of earlier versions."""
    _, student = models()
    inputs = batch(tokenizer_dir)
    delta = torch.randn(*inputs["input_ids"].shape, 32) * 1e-2
    rest = {k: v for k, v in inputs.items() if k != "input_ids"}
    with torch.no_grad():
        direct = student(inputs_embeds=student.get_input_embeddings()(inputs["input_ids"]) + delta, **rest).logits
        with perturbed(student, "word_embeddings", delta):
            hooked = student(**inputs).logits
    assert torch.equal(direct, hooked)


@pytest.mark.parametrize("reading", READINGS)
def test_the_record_says_what_the_perturbation_did(tokenizer_dir, reading):
    teacher, student = models()
    inputs = batch(tokenizer_dir, pair=True)
    objective = kd()
    method = ad2(teacher, reading=reading)
    with torch.no_grad():
        logits = teacher(**inputs).logits
    for _ in range(3):
        method.loss(student, Batch(inputs, None, logits), objective)
    report = method.report()
    assert report["batches"] == 3 and report["relative_size_max"] >= report["relative_size_median"] > 0
    word_norm = 0.02 * 32 ** 0.5  # the tiny model's word embeddings: 32 coordinates of std 0.02
    if reading == "ours":  # eps 1e-5 on word embeddings of norm ~0.1: too small to matter, and said so
        assert report["relative_size_median"] == pytest.approx(1e-5 / word_norm, rel=0.2)
        assert ("changes almost nothing; see `reading` in `kdbench methods` (e.g. --param reading=smart)"
                in report["warning"])
    elif reading == "ports":  # one step of eta = 1e-3
        assert report["relative_size_median"] == pytest.approx(1e-3 / word_norm, rel=0.2) and "warning" not in report
    else:  # unit size at the embedding output (norm ~sqrt(32) after LayerNorm); smart's direction is the noise's
        assert report["relative_size_median"] == pytest.approx(1 / 32 ** 0.5, rel=0.2)
        assert ("warning" in report) == (reading == "smart")
        assert report["adversarial_gain_mean"] > 0


def test_the_ascent_measures_equal_a_hand_computation():
    """Two tokens and a padding one: cosines with the gradient and the start, and the gradient's share."""
    from methods.ad2 import Ascent

    start = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]]])
    grad = torch.tensor([[[0.0, 3.0], [0.0, 1.0], [5.0, 5.0]]])
    increment = 0.5 * grad
    delta = torch.tensor([[[1.0, 1.0], [0.0, -1.0], [0.0, 0.0]]])
    tokens = torch.tensor([[True, True, False]])
    measured = Ascent(start=start, grad=grad, before=start, increment=increment).measure(delta, tokens)
    # token 0: cos((1,1),(0,3)) = 0.7071, cos((1,1),(1,0)) = 0.7071, share 1.5 / (1.5 + 1) = 0.6
    # token 1: cos((0,-1),(0,1)) = -1, cos((0,-1),(0,2)) = -1, share 0.5 / (0.5 + 2) = 0.2
    assert measured["cos_gradient"] == pytest.approx(-1.0)  # torch's median of two is the lower one
    assert measured["cos_start"] == pytest.approx(-1.0)
    assert measured["gradient_share"] == pytest.approx(0.2)
    first = Ascent(start=start, grad=grad, before=start, increment=increment).measure(delta, torch.tensor([[1, 0, 0]]).bool())
    assert (first["cos_gradient"], first["cos_start"], first["gradient_share"]) == pytest.approx((0.7071, 0.7071, 0.6), abs=1e-4)
    assert all(v != v for v in Ascent(start=torch.zeros_like(start)).measure(delta, tokens).values())  # NaN: no step
    # a start of 0 on two of three real tokens: undefined there, not 0, so the median is the third token's cosine
    three = torch.tensor([[True, True, True]])
    partly = Ascent(start=torch.tensor([[[0.0, 0.0], [0.0, 0.0], [2.0, 0.0]]])).measure(
        torch.tensor([[[1.0, 1.0], [0.0, -1.0], [3.0, 0.0]]]), three)
    assert partly["cos_start"] == pytest.approx(1.0)
    # parallel vectors have cosine 1 however small (here norms near 1e-9, below torch's default floor of 1e-8)
    tiny = Ascent(start=torch.full((1, 1, 2), 1e-9)).measure(torch.full((1, 1, 2), 2e-9), torch.tensor([[True]]))
    assert tiny["cos_start"] == pytest.approx(1.0)


def _ascent_report(tokenizer_dir, batches: int = 3, **params) -> dict:
    teacher, student = models()
    inputs = batch(tokenizer_dir, pair=True)
    with torch.no_grad():
        logits = teacher(**inputs).logits
    method = ad2(teacher, **params)
    torch.manual_seed(0)
    for _ in range(batches):
        method.loss(student, Batch(inputs, None, logits), kd())
    return method.report()


def test_at_the_papers_values_smart_is_the_starting_noise_and_says_so(tokenizer_dir):
    report = _ascent_report(tokenizer_dir)  # smart: noise of std 1e-5 + 1e-3 * raw gradient, rescaled
    assert report["gradient_share_median"] < 1e-3
    assert report["cos_start_median"] > 0.999 and abs(report["cos_gradient_median"]) < 0.3
    assert "random noise, not adversarial; see --param reading=smart-normalised" in report["warning"]
    assert (f"cosine of delta with the gradient {report['cos_gradient_median']:.3f}, with the starting noise "
            f"{report['cos_start_median']:.3f}") in report["warning"]


def test_the_report_names_the_settings_it_measured(tokenizer_dir):
    report = _ascent_report(tokenizer_dir, batches=2, reading="ours", gradient="raw", direction="random")
    assert {key: report[key] for key in ("site", "projection", "gradient", "direction", "batches")} == {
        "site": "word_embeddings", "projection": "ball", "gradient": "raw", "direction": "random", "batches": 2}
    assert math.isfinite(report["adversarial_gain_median"]) and math.isfinite(report["adversarial_gain_mean"])


def test_a_cosine_that_could_not_be_measured_reads_undefined():
    assert _rounded(None) == "undefined" and _rounded(0.12345) == "0.123"


def test_smart_normalised_steps_along_the_gradient(tokenizer_dir):
    report = _ascent_report(tokenizer_dir, reading="smart-normalised")
    assert report["gradient_share_median"] > 0.9  # eta 1e-3 against noise of norm 1e-5 * sqrt(32)
    assert report["cos_gradient_median"] > 0.95  # uphill: the divergence's gradient, not against it
    assert "warning" not in report
    assert report["relative_size_median"] == pytest.approx(1 / 32 ** 0.5, rel=0.2)  # unit size, as smart


def test_the_random_control_has_the_ascents_size_and_not_its_direction(tokenizer_dir):
    ascent = _ascent_report(tokenizer_dir, reading="smart-normalised", batches=8)
    control = _ascent_report(tokenizer_dir, reading="smart-normalised", direction="random", batches=8)
    assert control["gradient_share_median"] == pytest.approx(ascent["gradient_share_median"], rel=1e-3)
    assert control["relative_size_median"] == pytest.approx(ascent["relative_size_median"], rel=0.05)
    assert abs(control["cos_gradient_median"]) < 0.3 < ascent["cos_gradient_median"]
    assert "warning" not in control  # a random direction is what the control asks for


@pytest.mark.parametrize("gradient", ["raw", "normalised"])
def test_one_unbounded_step_adds_eta_times_the_gradient(tokenizer_dir, gradient):
    """projection none, from zero: delta is exactly eta times the (raw or normalised) gradient of the divergence."""
    teacher, student = models()
    inputs = batch(tokenizer_dir)
    with torch.no_grad():
        logits = teacher(**inputs).logits
    method = ad2(teacher, reading="ports", init="zero", eta=0.5, gradient=gradient, target="teacher_clean")
    delta = method.perturbation(student, inputs, logits)
    zero = torch.zeros_like(delta, requires_grad=True)
    with perturbed(student, "word_embeddings", zero):
        divergence = method._divergence(student(**inputs).logits, logits, 1.0)
    (grad,) = torch.autograd.grad(divergence, zero)
    grad = grad * inputs["attention_mask"].unsqueeze(-1)
    expected = 0.5 * (grad if gradient == "raw" else grad / (grad.norm(dim=-1, keepdim=True) + 1e-12))
    assert torch.allclose(delta, expected, atol=1e-7) and delta.abs().max() > 0


@pytest.mark.parametrize("divergence", ["kl", "sym_kl", "mse"])
def test_the_regression_ascent_climbs_the_squared_error(tokenizer_dir, divergence):
    """STS-B has one output, whose softmax is always 1: a KL ascent there has a zero gradient and would
    perturb nothing, so regression climbs the mean squared error of the logits whatever `divergence`
    says. One raw step of eta = 0.5 from zero is then exactly 0.5 times the gradient of that error,
    computed here by hand (temperature 2: the squared error takes none)."""
    teacher, student = models(labels=1)
    inputs = batch(tokenizer_dir, pair=True)
    with torch.no_grad():
        logits = teacher(**inputs).logits
    method = ad2(teacher, task="stsb", temperature=2.0, reading="ports", init="zero", eta=0.5, gradient="raw",
                 target="teacher_clean", divergence=divergence)
    delta = method.perturbation(student, inputs, logits)
    zero = torch.zeros_like(delta, requires_grad=True)
    with perturbed(student, "word_embeddings", zero):
        squared_error = ((student(**inputs).logits - logits) ** 2).mean()
    (grad,) = torch.autograd.grad(squared_error, zero)
    expected = 0.5 * grad * inputs["attention_mask"].unsqueeze(-1)
    assert expected.abs().max() > 1e-6 and torch.allclose(delta, expected, rtol=1e-4, atol=1e-9)


def test_a_run_without_ascent_steps_reports_without_a_noise_warning(tokenizer_dir):
    """steps=0 (a random start only, as asked) has no gradient share to warn about, and says so by None."""
    report = _ascent_report(tokenizer_dir, reading="ports", steps=0, eps=0.01)
    assert report["gradient_share_median"] is None and report["cos_gradient_median"] is None
    assert "warning" not in report


@pytest.mark.parametrize("norm", ["l2", "linf", "sign"])
def test_the_step_pieces_by_hand(norm):
    """The random control has the gradient's size per token and a random direction; `sign` is the
    gradient's sign and the others divide by its size; projection leaves a delta inside the ball as it
    is and brings one outside onto its surface (per token in l2, coordinate-wise otherwise)."""
    teacher, _ = models()
    method = ad2(teacher, norm=norm, eps=0.5)
    torch.manual_seed(0)
    grad = torch.randn(2, 3, 8) * torch.tensor([0.1, 1.0, 10.0])[None, :, None]
    size = grad.norm(dim=-1, keepdim=True) if norm == "l2" else grad.abs().amax(dim=-1, keepdim=True)
    random_step = method._random_like(grad)
    random_size = random_step.norm(dim=-1, keepdim=True) if norm == "l2" else random_step.abs().amax(-1, keepdim=True)
    assert torch.allclose(random_size, size, rtol=1e-5)
    assert torch.nn.functional.cosine_similarity(random_step, grad, dim=-1).abs().max() < 0.9
    expected = grad.sign() if norm == "sign" else grad / size
    assert torch.allclose(method._normalise(grad), expected, rtol=1e-5)
    inside = grad / size * 0.25  # a quarter of the radius in the norm's own measure
    assert torch.allclose(method._project(inside), inside)
    outside = grad / size * 2.0
    projected = method._project(outside)
    if norm == "l2":
        assert torch.allclose(projected, outside / 4.0, rtol=1e-5)  # twice the radius 0.5, scaled back onto it
    else:
        assert torch.equal(projected, outside.clamp(-0.5, 0.5)) and (projected < 0).any()


class Recording:
    """The `kd` objective, keeping what each view loss was given and gave."""

    def __init__(self, temperature: float):
        self.inner, self.views = kd(temperature=temperature), []

    def loss(self, logits, batch):
        return self.inner.loss(logits, batch)

    def view_loss(self, logits, target, batch):
        value = self.inner.view_loss(logits, target, batch)
        self.views.append((target.detach().clone(), batch, value.detach().clone()))
        return value


@pytest.mark.parametrize("target", ["teacher_perturbed", "teacher_clean"])
def test_the_view_is_matched_to_the_target_it_names_with_the_runs_temperature_and_measured(tokenizer_dir, target):
    teacher, student = models()
    inputs = batch(tokenizer_dir, pair=True)  # two pairs of different lengths: one is padded
    with torch.no_grad():
        logits = teacher(**inputs).logits + 0.5  # a cached target unlike the teacher's online output
    params = {"target": target, "reading": "ports", "eta": 0.5}  # at the word embeddings, led by the gradient
    method, objective = ad2(teacher, temperature=2.0, **params), Recording(temperature=2.0)
    training_batch = Batch(inputs, None, logits)
    torch.manual_seed(0)
    method.loss(student, training_batch, objective)
    torch.manual_seed(0)  # the same starting noise, the same ascent: at the run's temperature, on the batch's logits
    reference = ad2(teacher, temperature=2.0, **params)
    delta = reference.perturbation(student, inputs, logits, 2.0)
    assert torch.allclose(method.last_ascent.grad, reference.last_ascent.grad)
    with torch.no_grad(), perturbed(teacher, "word_embeddings", delta):
        perturbed_teacher = teacher(**inputs).logits
    expected = perturbed_teacher if target == "teacher_perturbed" else logits
    (view_target, view_batch, view), (clean_target, clean_batch, clean) = objective.views
    assert torch.allclose(view_target, expected) and view_batch is training_batch
    assert torch.equal(clean_target, logits) and clean_batch is training_batch
    measured = method._batches[0]
    assert measured["adversarial_gain"] == pytest.approx((view.mean() - clean.mean()).item())
    with torch.no_grad():  # the size relative to the clean word embeddings, over the real tokens only
        site = student.get_input_embeddings()(inputs["input_ids"])
    relative = (delta.norm(dim=-1) / site.norm(dim=-1))[inputs["attention_mask"].bool()]
    assert measured["relative_size_median"] == pytest.approx(relative.median().item(), rel=1e-4)


@pytest.mark.parametrize("divergence", ["kl", "sym_kl", "mse"])
def test_the_ascent_divergence_by_hand(divergence):
    """KL(teacher || student) at temperature t, times t^2, averaged over examples; its symmetric sum; or the
    squared error of the logits, which regression always uses."""
    teacher, _ = models()
    student_logits, target = torch.tensor([[1.0, -1.0], [0.5, 0.0]]), torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    p_s, p_t = (torch.softmax(x / 2.0, dim=-1) for x in (student_logits, target))
    kl = lambda p, q: (p * (p / q).log()).sum(-1).mean() * 4.0  # noqa: E731  KL(p || q) x t^2
    expected = {"kl": kl(p_t, p_s), "sym_kl": kl(p_t, p_s) + kl(p_s, p_t),
                "mse": ((student_logits - target) ** 2).mean()}[divergence]
    assert ad2(teacher, divergence=divergence)._divergence(student_logits, target, 2.0) == pytest.approx(expected.item())
    regression = ad2(models(labels=1)[0], task="stsb", divergence=divergence)
    assert regression._divergence(student_logits[:, :1], target[:, :1], 2.0) == pytest.approx(
        ((student_logits[:, 0] - target[:, 0]) ** 2).mean().item())


def test_a_perturbed_target_needs_the_teacher_model_and_a_clean_one_does_not():
    with pytest.raises(KdbenchError) as error:
        ad2(None, target="teacher_perturbed")
    assert str(error.value) == "ad2: target teacher_perturbed needs the teacher model in the context"
    assert ad2(None, target="teacher_clean").teacher is None


def test_a_teacher_of_another_vocabulary_is_not_perturbed_alike(tokenizer_dir):
    """The same width but another vocabulary: the embeddings are not shared, so `auto` takes the clean
    teacher and `teacher_perturbed` is refused, with what to do instead."""
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(tiny_config(vocab_size=30600)).eval()
    _, student = models()
    inputs = batch(tokenizer_dir)
    clean = teacher(**inputs).logits.detach()
    auto = ad2(teacher)
    auto.perturbation(student, inputs, clean)
    assert auto._perturbed_target is False
    with pytest.raises(KdbenchError) as error:
        ad2(teacher, target="teacher_perturbed").perturbation(student, inputs, clean)
    assert str(error.value) == ("ad2: target=teacher_perturbed needs teacher and student to share vocabulary and "
                                "embedding width; use --param target=teacher_clean")


@pytest.mark.parametrize("target", ["teacher_clean", "teacher_perturbed"])
def test_the_ascent_climbs_the_divergence_from_the_target_it_names(tokenizer_dir, monkeypatch, target):
    teacher, student = models()
    inputs = batch(tokenizer_dir)
    clean = teacher(**inputs).logits.detach()
    method = ad2(teacher, target=target, steps=1, init="gaussian", eps=1e-2)
    targets, divergence = [], method._divergence
    monkeypatch.setattr(method, "_divergence", lambda s, t, temperature: targets.append(t) or divergence(s, t, temperature))
    method.perturbation(student, inputs, clean)
    perturbed_teacher = method._teacher_logits(inputs, method.last_ascent.start)
    assert not torch.allclose(perturbed_teacher, clean)
    assert torch.equal(targets[0], perturbed_teacher if target == "teacher_perturbed" else clean)


@pytest.mark.parametrize("perturbed_fp32", [True, False])
def test_the_perturbed_forwards_leave_autocast_when_asked(tokenizer_dir, monkeypatch, perturbed_fp32):
    teacher, student = models()
    inputs = batch(tokenizer_dir)
    method = ad2(teacher, steps=1, perturbed_fp32=perturbed_fp32)
    dtypes, divergence = [], method._divergence
    monkeypatch.setattr(method, "_divergence", lambda s, t, temperature: dtypes.append(s.dtype) or divergence(s, t, temperature))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        method.perturbation(student, inputs, teacher(**inputs).logits.float())
    assert dtypes == [torch.float32 if perturbed_fp32 else torch.bfloat16]


@pytest.mark.parametrize("projection", ["ball", "none"])
def test_the_starting_noise_is_projected_into_the_ball_only_under_the_ball_projection(tokenizer_dir, projection):
    teacher, student = models()
    inputs = batch(tokenizer_dir)
    eps = 1e-2
    method = ad2(teacher, reading="ours", projection=projection, init="gaussian", norm="l2", eps=eps, steps=1)
    method.perturbation(student, inputs, teacher(**inputs).logits)
    size = method.last_ascent.start.norm(dim=-1)[inputs["attention_mask"].bool()]
    if projection == "ball":
        assert size.max() <= eps * (1 + 1e-5)
    else:  # Gaussian noise of std eps in 32 dimensions is about eps * sqrt(32) long
        assert size.min() > eps


def test_each_starting_noise_has_its_distribution(tokenizer_dir):
    teacher, student = models()
    inputs = batch(tokenizer_dir)
    tokens = inputs["attention_mask"].bool()
    eps = 0.5
    start = {init: ad2(teacher, reading="ours", projection="none", init=init, eps=eps, steps=0).perturbation(
        student, inputs, teacher(**inputs).logits)[tokens] for init in ("zero", "uniform", "gaussian")}
    assert start["zero"].abs().max() == 0
    assert start["uniform"].abs().max() <= eps and start["uniform"].abs().max() > 0.95 * eps
    assert start["uniform"].std().item() == pytest.approx(eps / math.sqrt(3), rel=0.1)  # uniform on [-eps, eps]
    assert start["gaussian"].std().item() == pytest.approx(eps, rel=0.1) and start["gaussian"].abs().max() > eps


def test_a_model_without_an_embeddings_module_is_refused_at_the_embedding_output():
    class Bare(torch.nn.Module):
        base_model = property(lambda self: self)

    with pytest.raises(KdbenchError) as error:
        site_module(Bare(), "embedding_output")
    assert str(error.value) == ("ad2: Bare has no embeddings module for site=embedding_output; "
                                "use --param site=word_embeddings")


@pytest.mark.parametrize("site", SITES)
def test_an_albert_student_is_perturbed_at_its_embedding_width(tokenizer_dir, site):
    """ALBERT's embeddings module outputs its embedding size (16 here), not its hidden size (32)."""
    torch.manual_seed(0)
    albert = AlbertForSequenceClassification(AlbertConfig(
        vocab_size=30522, embedding_size=16, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64)).eval()
    teacher, _ = models()
    inputs = batch(tokenizer_dir)
    delta = ad2(teacher, site=site, target="teacher_clean", steps=1).perturbation(albert, inputs,
                                                                                   teacher(**inputs).logits)
    assert delta.shape == (*inputs["input_ids"].shape, 16) and delta.abs().sum() > 0


def test_an_embeddings_module_without_a_layer_norm_is_taken_at_the_hidden_size():
    albert = AlbertForSequenceClassification(AlbertConfig(
        vocab_size=30522, embedding_size=16, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64))
    ids = torch.zeros(2, 5, dtype=torch.long)
    assert site_shape(albert, "embedding_output", ids) == (2, 5, 16)  # its LayerNorm's width
    del site_module(albert, "embedding_output").LayerNorm
    assert site_shape(albert, "embedding_output", ids) == (2, 5, 32)  # none: the hidden size
    assert site_shape(albert, "word_embeddings", ids) == (2, 5, 16)
