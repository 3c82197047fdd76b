"""AD2: adversarial data augmentation in embedding space (AAAI 2022), an in-loop method.

Each training batch is also seen perturbed: starting inside a radius-`eps` ball around the word
embeddings, K steps of projected gradient ascent push the perturbation towards the largest
teacher-student divergence, and the student learns from both views:

    L = L_KD(x) + alpha * L_KD(x + delta)

Every choice the paper leaves open (METHODS.md: init, norm, steps, target, divergence) is a
parameter; the defaults are the paper's and, where it is silent, SMART/MT-DNN's adversarial
defaults. The gradient ascent is written here because no library does PGA on HF input embeddings.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from accelerate.utils import extract_model_from_parallel

from bench.errors import KdbenchError
from bench.fields import NON_NEGATIVE, POSITIVE
from bench.losses import KDObjective, kd_divergence
from methods.base import InLoopMethod, MethodContext
from methods.registry import param, register_method

TINY = 1e-12  # keeps normalisation finite where a gradient or perturbation is exactly zero


@dataclass(frozen=True)
class AD2Params:
    eps: float = param(1e-5, "radius of the perturbation ball (per token for the l2 norm)", range=NON_NEGATIVE)
    eta: float = param(1e-3, "ascent step size", range=NON_NEGATIVE)
    steps: int = param(1, "K, projected gradient ascent steps per batch", range=NON_NEGATIVE)
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


@register_method("ad2", label="AD2", kind="in-loop", params=AD2Params,
                 description="AD2: adversarial perturbation of the word embeddings by projected gradient ascent")
class AD2(InLoopMethod):
    """The AD2 training loss; `perturbation` is public so its invariants can be checked."""

    def __init__(self, params: AD2Params, context: MethodContext):
        if params.target != "teacher_clean" and context.teacher_model is None:
            raise KdbenchError("ad2: target teacher_perturbed needs the teacher model in the context")
        self.params = params
        self.teacher = context.teacher_model
        self.regression = context.task.is_regression
        self._perturbed_target: bool | None = None  # resolved against the student at the first batch

    def loss(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor], teacher_logits: torch.Tensor,
             objective: KDObjective) -> torch.Tensor:
        student = extract_model_from_parallel(model)
        delta = self.perturbation(student, inputs, teacher_logits, objective.temperature)
        clean = model(**inputs).logits
        with self._precision(inputs["input_ids"].device):
            embeds = student.get_input_embeddings()(inputs["input_ids"])
            perturbed = model(inputs_embeds=embeds + delta, **_without_ids(inputs)).logits
            target = self._teacher_logits(inputs, delta) if self._perturbed_target else teacher_logits
        return objective(clean, teacher_logits) + self.params.alpha * objective.kd_term(perturbed, target)

    def perturbation(self, student: torch.nn.Module, inputs: dict[str, torch.Tensor], teacher_logits: torch.Tensor,
                     kd_temperature: float = 1.0) -> torch.Tensor:
        """The adversarial perturbation `delta` of the batch's word embeddings (zero on padding)."""
        p = self.params
        self._resolve_target(student)
        device = inputs["input_ids"].device
        mask = inputs["attention_mask"].unsqueeze(-1).float()
        with torch.no_grad():
            embeds = student.get_input_embeddings()(inputs["input_ids"]).float()
        delta = self._project(self._initial(embeds) * mask)
        temperature = p.temperature or kd_temperature
        for _ in range(p.steps):
            delta.requires_grad_(True)
            with self._precision(device):
                adversarial = student(inputs_embeds=embeds + delta, **_without_ids(inputs)).logits
                with torch.no_grad():
                    target = self._teacher_logits(inputs, delta) if self._perturbed_target else teacher_logits
                divergence = self._divergence(adversarial, target, temperature)
            (grad,) = torch.autograd.grad(divergence, delta)
            delta = self._project(delta.detach() + p.eta * self._normalise(grad)) * mask
        return delta.detach()

    def _resolve_target(self, student: torch.nn.Module) -> None:
        if self._perturbed_target is not None:
            return
        shared = (self.teacher is not None and self.teacher.get_input_embeddings().weight.shape
                  == student.get_input_embeddings().weight.shape)
        if self.params.target == "teacher_perturbed" and not shared:
            raise KdbenchError("ad2: target=teacher_perturbed needs teacher and student to share vocabulary and "
                               "embedding width; use --param target=teacher_clean")
        self._perturbed_target = self.params.target == "teacher_perturbed" or (self.params.target == "auto" and shared)
        if self._perturbed_target:
            self.teacher.to(student.device).eval().requires_grad_(False)

    def _teacher_logits(self, inputs: dict[str, torch.Tensor], delta: torch.Tensor) -> torch.Tensor:
        """The teacher's output on its own embeddings plus the same perturbation (no gradient)."""
        with torch.no_grad():
            embeds = self.teacher.get_input_embeddings()(inputs["input_ids"])
            return self.teacher(inputs_embeds=embeds + delta, **_without_ids(inputs)).logits.float()

    def _precision(self, device: torch.device):
        return torch.autocast(device.type, enabled=False) if self.params.perturbed_fp32 else nullcontext()

    def _initial(self, embeds: torch.Tensor) -> torch.Tensor:
        eps = self.params.eps
        if self.params.init == "gaussian":
            return torch.randn_like(embeds) * eps
        if self.params.init == "uniform":
            return torch.empty_like(embeds).uniform_(-eps, eps)
        return torch.zeros_like(embeds)

    def _normalise(self, grad: torch.Tensor) -> torch.Tensor:
        if self.params.norm == "l2":
            return grad / (grad.norm(dim=-1, keepdim=True) + TINY)
        if self.params.norm == "linf":
            return grad / (grad.abs().amax(dim=-1, keepdim=True) + TINY)
        return grad.sign()

    def _project(self, delta: torch.Tensor) -> torch.Tensor:
        """Back onto the eps-ball: per token in l2, coordinate-wise for linf and sign."""
        eps = self.params.eps
        if self.params.norm == "l2":
            norms = delta.norm(dim=-1, keepdim=True)
            return delta * torch.clamp(eps / (norms + TINY), max=1.0)
        return delta.clamp(-eps, eps)

    def _divergence(self, student_logits: torch.Tensor, target: torch.Tensor, temperature: float) -> torch.Tensor:
        if self.regression or self.params.divergence == "mse":
            return F.mse_loss(student_logits.float(), target.float())
        forward = kd_divergence(student_logits, target, temperature=temperature, regression=False)
        if self.params.divergence == "sym_kl":
            return forward + kd_divergence(target, student_logits, temperature=temperature, regression=False)
        return forward


def _without_ids(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch's other model inputs (attention mask, token types), for a forward from embeddings."""
    return {k: v for k, v in inputs.items() if k != "input_ids"}
