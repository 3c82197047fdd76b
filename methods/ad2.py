"""AD2: adversarial data augmentation in embedding space (AAAI 2022), an in-loop method.

Each training batch is also seen perturbed: a perturbation `delta` of the embeddings is pushed by K
steps of gradient ascent towards the largest teacher-student divergence, and the student learns
from both views:

    L = L(x) + alpha * L_view(x + delta)

where L is the run's KD objective (`kd` by default: METHODS.md's loss) and L_view its teacher term
alone, so AD2 composes with any objective (Annealing-KD's scaled MSE, Continuation-KD's hinge, ...).

Every choice the paper leaves open (METHODS.md: init, norm, steps, target, divergence) is a
parameter; the defaults are the paper's and, where it is silent, those of SMART's perturbation class
in MT-DNN (`SmartPerturbation`: noise 1e-5, step 1e-3; MT-DNN's command line sets the step to 1e-5).
The paper's values act very differently by where `delta` is added and what bounds it, which the paper
does not say; the public code around those values reads them in several ways, each a `reading` here
(see READINGS): ours projects onto a radius-`eps` ball around the raw word embeddings, where
eps = 1e-5 changes almost nothing; SMART's adds `delta` at the embedding module's output and
rescales each stepped token perturbation to unit norm (MT-DNN then feeds that sum back in as
`inputs_embeds`, which adds positions and token types a second time: docs/departures.md); other
ports add `eta` times the normalised gradient to the raw word embeddings and stop there.
Under SMART's rescaling at the paper's values, `eta * grad` is a sliver of the starting noise
(0.2% of the step on the demo's student), so the perturbation's direction is the noise's: `smart-normalised` steps along the normalised gradient
instead, and `direction=random` is the control of the same size in a random direction.
The gradient ascent is written here because no library does it on HF models; `delta` enters the
model through a forward hook on the site's module, so any BERT-like encoder works, teacher and
student alike. What the perturbation did (its size relative to the embeddings, the divergence it
added, its cosine with the gradient and with the starting noise) is measured on every training
batch and goes into the run record (`report`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.parts.context import Batch
from bench.parts.errors import KdbenchError
from bench.parts.fields import NON_NEGATIVE, POSITIVE
from bench.parts.losses import kd_divergence
from methods.base import InLoopMethod, MethodContext
from objectives.base import Objective
from methods.registry import param, register_method

TINY = 1e-12  # keeps normalisation finite where a gradient or perturbation is exactly zero
SITES = ("word_embeddings", "embedding_output")
PROJECTIONS = ("ball", "unit", "none")
GRADIENT_STEPS = ("raw", "normalised")
DIRECTIONS = ("ascent", "random")
# Each public reading of the paper's values: where delta is added, what bounds it after each step and, where it
# departs from the projection's own rule (raw under unit, as SMART; else normalised), what eta multiplies.
READINGS = {
    "ours": {"site": "word_embeddings", "projection": "ball"},  # METHODS.md's PGA as written
    "smart": {"site": "embedding_output", "projection": "unit"},  # MT-DNN's SMART and smart-pytorch
    "ports": {"site": "word_embeddings", "projection": "none"},  # other SMART ports: one normalised step, unbounded
    # SMART's site and unit size, with eta times the normalised gradient, so the gradient leads the direction
    # (under `smart` at the paper's values, eta * grad is a sliver of the starting noise: docs/methods.md, AD2's ascent)
    "smart-normalised": {"site": "embedding_output", "projection": "unit", "gradient": "normalised"},
}
DEFAULT_READING = "smart"  # chosen by ablations/ad2-reading.toml (docs/methods.md: AD2's readings)
TOO_SMALL = 1e-4  # a median relative size below this is a perturbation that changes (almost) nothing
NOISE_LED = 0.01  # a median gradient share below this is a perturbation whose direction is the starting noise's


@dataclass(frozen=True)
class AD2Params:
    eps: float = param(1e-5, "std of the gaussian start (half-width of the uniform one); projection=ball: radius of "
                       "the ball (per token for the l2 norm)", range=NON_NEGATIVE)
    eta: float = param(1e-3, "ascent step size: eta times the normalised or the raw gradient (`gradient`)",
                       range=NON_NEGATIVE)
    steps: int = param(1, "K, gradient ascent steps per batch", range=NON_NEGATIVE)
    init: str = param("gaussian", "start of the perturbation: zero, gaussian (std eps) or uniform (in the ball)",
                      choices=("zero", "gaussian", "uniform"))
    norm: str = param("l2", "gradient normalisation and projection: l2 per token, linf per token, or sign",
                      choices=("l2", "linf", "sign"))
    target: str = param("auto", "teacher output the perturbed input is matched to: teacher_perturbed, "
                        "teacher_clean, or auto (perturbed when teacher and student embeddings have one shape)",
                        choices=("auto", "teacher_perturbed", "teacher_clean"))
    divergence: str = param("kl", "objective of the ascent: kl (teacher || student), sym_kl, or mse of logits "
                            "(regression always uses mse)", choices=("kl", "sym_kl", "mse"))
    alpha: float = param(1.0, "weight of the KD loss on the perturbed input", range=NON_NEGATIVE)
    temperature: float | None = param(None, "temperature of the ascent divergence (default: the KD --temperature)",
                                      range=POSITIVE)
    perturbed_fp32: bool = param(True, "run perturbed forwards without bf16 autocast: a 1e-5 perturbation is "
                                 "below bf16's rounding")
    reading: str = param(DEFAULT_READING, "preset of site, projection and gradient: ours (word_embeddings, ball, "
                         "normalised), smart (embedding_output, unit, raw: MT-DNN's SMART code), ports "
                         "(word_embeddings, none, normalised: other SMART ports) or smart-normalised "
                         "(embedding_output, unit, normalised: the gradient leads)", choices=tuple(READINGS))
    site: str = param("auto", "where delta is added: word_embeddings (raw, before position embeddings and "
                      "LayerNorm), embedding_output (the embedding module's output), or auto (the reading's)",
                      choices=("auto", *SITES))
    projection: str = param("auto", "bound after each step: ball (onto radius eps), unit (stepped delta rescaled to "
                            "norm 1 per token, SMART), none (eta along the normalised gradient, unbounded), or auto "
                            "(the reading's)", choices=("auto", *PROJECTIONS))
    gradient: str = param("auto", "each step adds eta times the raw gradient or the normalised one (per token, in "
                          "`norm`); auto: the reading's, else raw under projection unit (SMART) and normalised "
                          "otherwise", choices=("auto", *GRADIENT_STEPS))
    direction: str = param("ascent", "ascent (the divergence's gradient) or random: a control whose steps are "
                           "random directions of the gradient's size per token, so only the direction differs",
                           choices=DIRECTIONS)

    def __post_init__(self) -> None:
        for name, value in READINGS[self.reading].items():  # "auto" takes the reading's value
            if getattr(self, name) == "auto":
                object.__setattr__(self, name, value)
        if self.gradient == "auto":
            object.__setattr__(self, "gradient", "raw" if self.projection == "unit" else "normalised")


@register_method("ad2", label="AD2", kind="in-loop", params=AD2Params,
                 description="AD2: adversarial perturbation of the embeddings by gradient ascent (reading: see "
                 "`reading`, `site`, `projection`)")
class AD2(InLoopMethod):
    """The AD2 training loss; `perturbation` is public so its invariants can be checked."""

    def __init__(self, params: AD2Params, context: MethodContext):
        if params.target != "teacher_clean" and context.teacher_model is None:
            raise KdbenchError("ad2: target teacher_perturbed needs the teacher model in the context")
        self.params, self.context = params, context
        self.teacher = context.teacher_model
        self.regression = context.task.is_regression
        self._perturbed_target: bool | None = None  # resolved against the student at the first batch
        self._batches: list[dict[str, float]] = []  # what the perturbation did, per training batch
        self.last_ascent: Ascent | None = None  # what the last perturbation was made of

    def loss(self, model: torch.nn.Module, batch: Batch, objective: Objective) -> torch.Tensor:
        inputs, teacher_logits = batch.inputs, batch.teacher_logits
        student = self.context.unwrap(model)
        delta = self.perturbation(student, inputs, teacher_logits, self.context.kd.temperature)
        clean = model(**inputs).logits
        with self._precision(inputs["input_ids"].device), perturbed(student, self.params.site, delta) as site:
            perturbed_logits = model(**inputs).logits
            target = self._teacher_logits(inputs, delta) if self._perturbed_target else teacher_logits
        batch.losses = objective.loss(clean, batch)
        view = objective.view_loss(perturbed_logits, target, batch)
        with torch.no_grad():
            gain = view.mean() - objective.view_loss(clean, teacher_logits, batch).mean()
        self._measure(delta, site.clean, inputs["attention_mask"], gain)
        return batch.losses.mean() + self.params.alpha * view.mean()

    def perturbation(self, student: torch.nn.Module, inputs: dict[str, torch.Tensor], teacher_logits: torch.Tensor,
                     kd_temperature: float = 1.0) -> torch.Tensor:
        """The adversarial perturbation `delta` at the site's output (zero on padding). What its last
        step was made of (the starting noise, the divergence's gradient, the gradient's increment) is
        kept in `last_ascent` for measuring."""
        p = self.params
        self._resolve_target(student)
        mask = inputs["attention_mask"].unsqueeze(-1).float()
        delta = self._initial(site_shape(student, p.site, inputs["input_ids"]), inputs["input_ids"].device) * mask
        if p.projection == "ball":
            delta = self._project(delta)
        self.last_ascent = Ascent(start=delta)
        temperature = p.temperature or kd_temperature
        for _ in range(p.steps):
            delta.requires_grad_(True)
            with self._precision(delta.device), perturbed(student, p.site, delta):
                adversarial = student(**inputs).logits
                with torch.no_grad():
                    target = self._teacher_logits(inputs, delta) if self._perturbed_target else teacher_logits
                divergence = self._divergence(adversarial, target, temperature)
            (grad,) = torch.autograd.grad(divergence, delta)
            delta = self._step(delta.detach(), grad * mask) * mask
        return delta.detach()

    def _step(self, delta: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """One ascent step: `delta + eta * g` (g the raw or the normalised gradient, or for the random
        control a random direction of the same size per token), then the projection: back onto the
        eps-ball, SMART's rescaling to unit norm, or none."""
        direction = grad if self.params.direction == "ascent" else self._random_like(grad)
        increment = self.params.eta * (direction if self.params.gradient == "raw" else self._normalise(direction))
        self.last_ascent = Ascent(start=self.last_ascent.start, grad=grad, before=delta, increment=increment)
        stepped = delta + increment
        if self.params.projection == "unit":  # SMART: divided by its own norm
            return stepped / (self._size(stepped) + TINY)
        return self._project(stepped) if self.params.projection == "ball" else stepped

    def _random_like(self, grad: torch.Tensor) -> torch.Tensor:
        """A Gaussian direction per token, scaled to the gradient's size there (in the chosen norm)."""
        noise = torch.randn_like(grad)
        return noise / (self._size(noise) + TINY) * self._size(grad)

    def report(self) -> dict:
        """Over the training batches: median and max of |delta| / |e| per token (at the site, e being
        the clean embedding there); the adversarial gain, the KD divergence on the perturbed input
        minus that on the clean input (median and mean); and what the direction is made of, medians of
        per-token medians: the cosine of delta with the divergence's gradient (at the last step) and
        with the starting noise, and the gradient's share of the last step, |eta g| / (|eta g| +
        |delta before it|). With a warning when the perturbation is too small to change anything, or
        when its direction is the starting noise's rather than the gradient's."""
        if not self._batches:
            return {}
        column = lambda key: [batch[key] for batch in self._batches]  # noqa: E731
        summary = {"site": self.params.site, "projection": self.params.projection, "gradient": self.params.gradient,
                   "direction": self.params.direction, "batches": len(self._batches),
                   "relative_size_median": statistics.median(column("relative_size_median")),
                   "relative_size_max": max(column("relative_size_max")),
                   "adversarial_gain_median": statistics.median(column("adversarial_gain")),
                   "adversarial_gain_mean": statistics.fmean(column("adversarial_gain"))}
        for key in ("cos_gradient", "cos_start", "gradient_share"):
            values = [value for value in column(key) if not math.isnan(value)]
            summary[f"{key}_median"] = statistics.median(values) if values else None
        if summary["relative_size_median"] < TOO_SMALL:
            summary["warning"] = (f"ad2: the perturbation is {summary['relative_size_median']:.1e} of the embeddings' "
                                  f"size (median over batches, at {self.params.site}): it changes almost nothing; "
                                  "see `reading` in `kdbench methods` (e.g. --param reading=smart)")
        elif self.params.direction == "ascent" and (share := summary["gradient_share_median"]) is not None \
                and share < NOISE_LED:  # (no share: steps=0 asked for no ascent; no cosine: a zero gradient)
            summary["warning"] = (
                f"ad2: the gradient is {share:.1e} of each ascent step (median; cosine "
                f"of delta with the gradient {_rounded(summary['cos_gradient_median'])}, with the starting noise "
                f"{_rounded(summary['cos_start_median'])}): the perturbation is random noise, not adversarial; "
                "see --param reading=smart-normalised")
        return summary

    def _measure(self, delta: torch.Tensor, clean_site: torch.Tensor, attention_mask: torch.Tensor,
                 gain: torch.Tensor) -> None:
        """Record this batch's relative perturbation size, adversarial gain (the objective's teacher term
        on the perturbed view minus that on the clean one) and the make-up of its direction."""
        with torch.no_grad():
            tokens = attention_mask.bool()
            relative = (delta.float().norm(dim=-1) / (clean_site.float().norm(dim=-1) + TINY))[tokens]
            self._batches.append({"relative_size_median": relative.median().item(),
                                  "relative_size_max": relative.max().item(), "adversarial_gain": gain.item(),
                                  **self.last_ascent.measure(delta, tokens)})

    def _resolve_target(self, student: torch.nn.Module) -> None:
        if self._perturbed_target is not None:
            return
        shared = (self.teacher is not None and self.teacher.get_input_embeddings().weight.shape
                  == student.get_input_embeddings().weight.shape
                  and self.teacher.config.hidden_size == student.config.hidden_size)
        if self.params.target == "teacher_perturbed" and not shared:
            raise KdbenchError("ad2: target=teacher_perturbed needs teacher and student to share vocabulary and "
                               "embedding width; use --param target=teacher_clean")
        self._perturbed_target = self.params.target == "teacher_perturbed" or (self.params.target == "auto" and shared)

    def _teacher_logits(self, inputs: dict[str, torch.Tensor], delta: torch.Tensor) -> torch.Tensor:
        """The teacher's output with the same perturbation at the same site (no gradient)."""
        with torch.no_grad(), perturbed(self.teacher, self.params.site, delta):
            return self.teacher(**inputs).logits.float()

    def _precision(self, device: torch.device):
        return self.context.full_precision(device) if self.params.perturbed_fp32 else nullcontext()

    def _initial(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        eps = self.params.eps
        if self.params.init == "gaussian":
            return torch.randn(shape, device=device) * eps
        if self.params.init == "uniform":
            return torch.empty(shape, device=device).uniform_(-eps, eps)
        return torch.zeros(shape, device=device)

    def _size(self, delta: torch.Tensor) -> torch.Tensor:
        """Each token's size in the chosen norm (l2, or linf for linf and sign), keeping the last axis."""
        return delta.norm(dim=-1, keepdim=True) if self.params.norm == "l2" else delta.abs().amax(dim=-1, keepdim=True)

    def _normalise(self, grad: torch.Tensor) -> torch.Tensor:
        return grad.sign() if self.params.norm == "sign" else grad / (self._size(grad) + TINY)

    def _project(self, delta: torch.Tensor) -> torch.Tensor:
        """Back onto the eps-ball: per token in l2, coordinate-wise for linf and sign."""
        eps = self.params.eps
        if self.params.norm == "l2":
            return delta * torch.clamp(eps / (self._size(delta) + TINY), max=1.0)
        return delta.clamp(-eps, eps)

    def _divergence(self, student_logits: torch.Tensor, target: torch.Tensor, temperature: float) -> torch.Tensor:
        if self.regression or self.params.divergence == "mse":
            return F.mse_loss(student_logits.float(), target.float())
        forward = kd_divergence(student_logits, target, temperature=temperature, regression=False).mean()
        if self.params.divergence == "sym_kl":
            return forward + kd_divergence(target, student_logits, temperature=temperature, regression=False).mean()
        return forward


def _rounded(cosine: float | None) -> str:
    return "undefined" if cosine is None else f"{cosine:.3f}"


def site_module(model: torch.nn.Module, site: str) -> torch.nn.Module:
    """The module whose output `delta` is added to: the word-embedding table, or the embedding module
    (word + position + token-type embeddings after their LayerNorm) of a BERT-like encoder."""
    if site == "word_embeddings":
        return model.get_input_embeddings()
    embeddings = getattr(model.base_model, "embeddings", None)
    if embeddings is None:
        raise KdbenchError(f"ad2: {type(model).__name__} has no embeddings module for site=embedding_output; "
                           "use --param site=word_embeddings")
    return embeddings


def site_shape(model: torch.nn.Module, site: str, input_ids: torch.Tensor) -> tuple[int, ...]:
    """A perturbation's shape at the site: the word embeddings' width, or the embeddings module's output
    width, that of its final LayerNorm (ALBERT and ELECTRA keep their embedding size there, BERT and MobileBERT
    project to the hidden size first), else the hidden size."""
    if site == "word_embeddings":
        return (*input_ids.shape, model.get_input_embeddings().embedding_dim)
    norm = getattr(site_module(model, site), "LayerNorm", None)
    return (*input_ids.shape, norm.weight.shape[-1] if norm is not None else model.config.hidden_size)


@dataclass(frozen=True)
class Ascent:
    """What the last ascent step of a batch's perturbation was made of (all at the site, per token)."""

    start: torch.Tensor  # the starting noise
    grad: torch.Tensor | None = None  # the divergence's gradient at the last step (None: no step taken)
    before: torch.Tensor | None = None  # delta before the last step
    increment: torch.Tensor | None = None  # what the last step added, eta * (raw or normalised) gradient

    def measure(self, delta: torch.Tensor, tokens: torch.Tensor) -> dict[str, float]:
        """Medians over the non-padding tokens: the cosine of the final `delta` with the gradient and with
        the starting noise, and the gradient's share of the last step (NaN where undefined: no step, or
        a zero start)."""
        nan = float("nan")

        def median(values: torch.Tensor | None) -> float:
            return nan if values is None else values.float()[tokens].nanmedian().item()

        def cosine(other: torch.Tensor | None) -> torch.Tensor | None:
            if other is None:
                return None
            cos = F.cosine_similarity(delta.float(), other.float(), dim=-1, eps=TINY)
            return cos.masked_fill(other.float().norm(dim=-1) == 0, nan)

        share = None
        if self.increment is not None:
            stepped, kept = self.increment.float().norm(dim=-1), self.before.float().norm(dim=-1)
            share = stepped / (stepped + kept + TINY)
        return {"cos_gradient": median(cosine(self.grad)), "cos_start": median(cosine(self.start)),
                "gradient_share": median(share)}


class _Site:
    """What a perturbed forward saw at the site: the clean output there, before `delta` was added."""

    clean: torch.Tensor | None = None


@contextmanager
def perturbed(model: torch.nn.Module, site: str, delta: torch.Tensor) -> Iterator[_Site]:
    """Forwards of `model` inside the block get `delta` added to the site's output (a forward hook, so
    gradients flow to `delta`); the clean output there is kept for measuring."""
    seen = _Site()

    def add(module, args, output):
        seen.clean = output.detach()
        return output + delta.to(output.dtype)

    handle = site_module(model, site).register_forward_hook(add)
    try:
        yield seen
    finally:
        handle.remove()
