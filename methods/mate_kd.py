"""MATE-KD: masked adversarial text from a learned generator (Rashid et al., ACL 2021), an in-loop method.

A masked-LM generator rewrites a fraction of each batch's tokens to make teacher and student
disagree, and the student learns from the original and the rewritten text. After the official
code (huawei-noah/Efficient-NLP, MATE-KD/train_adversarial_student_bert.py), per batch:

1. Mask each non-special, non-padding token with probability `mask_rate` (code: 0.3), all to
   [MASK] (no 80/10/10 split), on both sides of a sentence pair (or one side: `sides`).
2. The generator predicts the masked tokens; a straight-through Gumbel-softmax (tau 1) turns its
   logits into one-hot rows `onehot`, and each model gets `onehot @ E` at the masked positions and
   `E[ids]` elsewhere, E being its own word-embedding table (so the three share one vocabulary).
3. Every cycle of `generator_steps + student_steps` training steps (code: 10 + 100) starts with
   `generator_steps` that update only the generator, to maximise the teacher-student divergence on
   the rewritten text (AdamW, code lr 5e-7, gradient norm clipped at 5), and goes on with
   `student_steps` that update only the student with the run's objective on the original text plus
   `adv_weight` times its teacher term on the rewritten one. With the `kd` objective and
   `--alpha-kd 1/3 --alpha-ce 1/3`, that is the code's `1/3 CE(y) + 1/3 KD(x) + 1/3 KD(x~)`.
   The divergence is the code's cross-entropy of the student against the teacher at T (`ce`: for the
   generator it is KL plus the teacher's entropy), KL, or MSE of logits (Combined-KD's; always for
   regression).

A generator step is a training step of the harness whose loss (minus the divergence, as logged)
reaches only the generator: the student's forward runs with its weights frozen, so the student's
optimiser finds no gradient and skips it. The student's learning-rate schedule still counts these
steps (the code's counts only student steps), and the generator's learning rate is constant (the
code decays it linearly, by 1/11 over a run). The schedule follows the global step, so a resumed
run continues mid-cycle; the generator's weights travel in the checkpoints (`state_dict`), its
optimiser with the parts' optimisers, and its gradients are averaged across data-parallel workers
by the harness.
Written here because no library trains a text generator against a distillation pair.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.parts.context import Batch
from bench.parts.errors import KdbenchError
from bench.parts.fields import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, PROBABILITY
from bench.parts.generators import generator_name, load_generator, masked_lm_logits
from bench.parts.losses import kd_divergence
from bench.parts.models import load_tokenizer
from methods.base import InLoopMethod, MethodContext
from methods.registry import param, register_method
from objectives.base import Objective

HUB_GENERATOR = "google/bert_uncased_L-4_H-256_A-4"  # BERT-mini, the official code's generator
DIVERGENCES = ("ce", "kl", "mse")
SIDES = ("both", "first", "second")


@dataclass(frozen=True)
class MateKDParams:
    generator: str | None = param(None, f"masked LM sharing the teacher's and student's vocabulary (hub id or "
                                        f"folder); default {HUB_GENERATOR} (BERT-mini, the code's) when the hub is "
                                        "reachable, else build one with `kdbench make-generator`")
    mask_rate: float = param(0.3, "probability of masking each non-special, non-padding token (all to [MASK])",
                             range=PROBABILITY)
    gumbel_tau: float = param(1.0, "temperature of the straight-through Gumbel-softmax", range=POSITIVE)
    generator_steps: int = param(10, "training steps per cycle that update only the generator (0: never trained)",
                                 range=NON_NEGATIVE)
    student_steps: int = param(100, "training steps per cycle that update only the student", range=AT_LEAST_ONE)
    generator_lr: float = param(5e-7, "learning rate of the generator's AdamW", range=POSITIVE)
    generator_clip: float = param(5.0, "gradient-norm clip of the generator's steps", range=POSITIVE)
    divergence: str = param("ce", "what the generator maximises: ce (the code's: cross-entropy of the student "
                                  "against the teacher), kl (teacher || student) or mse of logits; regression: mse",
                            choices=DIVERGENCES)
    temperature: float | None = param(None, "temperature of ce and kl (default: the KD --temperature; code 1)",
                                      range=POSITIVE)
    adv_weight: float = param(1.0, "weight of the objective's teacher term on the rewritten text, relative to the "
                                   "clean text's (code: equal)", range=NON_NEGATIVE)
    sides: str = param("both", "which side of a sentence pair is rewritten: both (the code), first or second",
                       choices=SIDES)
    mean_of_views: bool = param(False, "while the objective has a teacher term, the student's loss is the weighted "
                                       "mean (L(x) + adv_weight L_view(x~)) / (1 + adv_weight) instead of the sum "
                                       "(Combined-KD's 0.5 [MSE(x) + MSE(x~)])")


@register_method("mate-kd", label="MATE-KD", kind="in-loop", params=MateKDParams,
                 description="MATE-KD: a masked-LM generator, trained to maximise the teacher-student "
                             "divergence, rewrites masked tokens (Gumbel-softmax); the student learns from both")
class MateKD(InLoopMethod):
    """The MATE-KD training loss and generator; see the module's docstring."""

    name = "mate-kd"  # in messages

    def __init__(self, params: MateKDParams, context: MethodContext):
        if context.teacher_model is None:
            raise KdbenchError(f"{self.name}: the teacher model must be in the context (it scores rewritten text)")
        if context.tokenizer is None or context.tokenizer.mask_token_id is None:
            raise KdbenchError(f"{self.name}: the run's tokenizer has no [MASK] token to mask with")
        self.params, self.context = params, context
        name = generator_name(params.generator, HUB_GENERATOR)
        if load_tokenizer(name).get_vocab() != context.tokenizer.get_vocab():
            raise KdbenchError(f"{self.name}: generator {name} has another vocabulary than the teacher "
                               f"{context.teacher}: its tokens must mean the same rows of the teacher's and "
                               "student's embeddings; build one from the teacher with `kdbench make-generator "
                               "--model TEACHER`")
        self.generator = load_generator(name).to(context.device).train()  # the code trains it with dropout on
        self.teacher = context.teacher_model
        self._check_vocabulary("teacher", self.teacher)
        context.add_parameters(self.generator.parameters(), lr=params.generator_lr,
                               max_grad_norm=params.generator_clip)
        self.special_ids = torch.tensor(sorted(context.tokenizer.all_special_ids))
        self._student_checked = False
        self._divergences: list[float] = []  # the generator's objective at each of its steps
        self._changed: list[float] = []  # fraction of masked tokens the generator changed, per student step

    def generator_turn(self, step: int | None = None) -> bool:
        """Whether training step `step` (default: the current one) updates the generator."""
        p = self.params
        step = self.context.step if step is None else step
        return step % (p.generator_steps + p.student_steps) < p.generator_steps

    def loss(self, model: torch.nn.Module, batch: Batch, objective: Objective) -> torch.Tensor:
        student = self.context.unwrap(model)
        if not self._student_checked:
            self._check_vocabulary("student", student)
            self._student_checked = True
        if self.generator_turn():
            return -self._generator_objective(student, batch.inputs)
        inputs = batch.inputs
        selected = self.masked_positions(inputs)
        with torch.no_grad():
            onehot = self.replacements(inputs, selected)
            target = self.teacher(**rewritten(self.teacher, inputs, selected, onehot)).logits.float()
            self._changed.append(_changed_fraction(inputs["input_ids"], selected, onehot))
        rewritten_logits = model(**rewritten(student, inputs, selected, onehot)).logits
        clean = model(**inputs).logits
        batch.losses = objective.loss(clean, batch)
        view = objective.view_loss(rewritten_logits, target, batch)
        loss = batch.losses.mean() + self.params.adv_weight * view.mean()
        if self.params.mean_of_views and objective.has_teacher_term():
            return loss / (1 + self.params.adv_weight)
        return loss

    def masked_positions(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """A [batch, length] bool mask: each eligible token drawn with probability `mask_rate`. Eligible:
        not padding, not a special token, and on the chosen side of a pair (by token type)."""
        ids = inputs["input_ids"]
        eligible = inputs["attention_mask"].bool() & ~torch.isin(ids, self.special_ids.to(ids.device))
        if self.params.sides != "both" and self.context.task.is_pair:
            if "token_type_ids" not in inputs:
                raise KdbenchError(f"{self.name}: sides={self.params.sides} needs token type ids to tell the sides "
                                   "apart, and this tokenizer gives none; use --param sides=both")
            eligible &= inputs["token_type_ids"] == (0 if self.params.sides == "first" else 1)
        return eligible & (torch.rand(ids.shape, device=ids.device) < self.params.mask_rate)

    def replacements(self, inputs: dict[str, torch.Tensor], selected: torch.Tensor) -> torch.Tensor:
        """One-hot rows [number selected, vocabulary] of the generator's sampled tokens at the selected
        positions, straight-through: the gradient of the soft sample reaches the generator."""
        masked = dict(inputs, input_ids=inputs["input_ids"].masked_fill(selected, self.context.tokenizer.mask_token_id))
        logits = masked_lm_logits(self.generator, masked, selected)
        return F.gumbel_softmax(logits.float(), tau=self.params.gumbel_tau, hard=True)

    def _generator_objective(self, student: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The divergence on rewritten text, with only the generator trainable (the teacher is frozen)."""
        selected = self.masked_positions(inputs)
        onehot = self.replacements(inputs, selected)
        with frozen(student):
            student_logits = student(**rewritten(student, inputs, selected, onehot)).logits
        teacher_logits = self.teacher(**rewritten(self.teacher, inputs, selected, onehot)).logits
        divergence = self._divergence(student_logits, teacher_logits)
        self._divergences.append(divergence.item())
        return divergence

    def _divergence(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        if self.context.task.is_regression or self.params.divergence == "mse":
            return F.mse_loss(student_logits.float(), teacher_logits.float())
        temperature = self.params.temperature or self.context.kd.temperature
        if self.params.divergence == "kl":
            return kd_divergence(student_logits, teacher_logits, temperature=temperature, regression=False).mean()
        teacher = F.softmax(teacher_logits.float() / temperature, dim=-1)
        return -(teacher * F.log_softmax(student_logits.float() / temperature, dim=-1)).sum(-1).mean()

    def _check_vocabulary(self, role: str, model: torch.nn.Module) -> None:
        rows = self.generator.get_output_embeddings().weight.shape[0]
        if model.get_input_embeddings().weight.shape[0] != rows:
            raise KdbenchError(f"{self.name}: the generator has {rows} output tokens but the {role} has "
                               f"{model.get_input_embeddings().weight.shape[0]} word embeddings: they must share "
                               "one vocabulary")

    def state_dict(self) -> dict:
        return {"generator": self.generator.state_dict(),
                "divergences": list(self._divergences), "changed": list(self._changed)}

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.generator.load_state_dict(state["generator"])
            self._divergences, self._changed = list(state["divergences"]), list(state["changed"])

    def report(self) -> dict:
        """Steps that went to the generator and to the student; the generator's divergence (mean over its
        steps of the first cycle, and of the last when there were several); the median fraction of masked
        tokens it changed."""
        done = self.context.step  # the run's steps, a resumed run's earlier ones included
        generator_steps = sum(self.generator_turn(step) for step in range(done))
        summary: dict = {"generator_steps": generator_steps, "student_steps": done - generator_steps}
        per_cycle = self.params.generator_steps
        if self._divergences:
            summary["divergence_first_cycle"] = statistics.fmean(self._divergences[:per_cycle])
            if len(self._divergences) > per_cycle:
                summary["divergence_last_cycle"] = statistics.fmean(self._divergences[-per_cycle:])
        if self._changed:
            summary["changed_fraction_median"] = statistics.median(self._changed)
        return summary


def rewritten(model: torch.nn.Module, inputs: dict[str, torch.Tensor], selected: torch.Tensor,
              onehot: torch.Tensor) -> dict[str, torch.Tensor]:
    """`inputs` for `model` with the selected tokens' embeddings replaced by `onehot @ E` (E: the model's
    word embeddings); the model adds position and token-type embeddings itself."""
    embeddings = model.get_input_embeddings()
    vectors = embeddings(inputs["input_ids"])
    vectors = vectors.index_put((selected,), onehot.to(vectors.dtype) @ embeddings.weight)
    return {**{k: v for k, v in inputs.items() if k != "input_ids"}, "inputs_embeds": vectors}


@contextmanager
def frozen(model: torch.nn.Module) -> Iterator[None]:
    """The model's parameters take no gradient inside the block (their flags are restored after)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _changed_fraction(input_ids: torch.Tensor, selected: torch.Tensor, onehot: torch.Tensor) -> float:
    if not selected.any():
        return 0.0
    return (onehot.argmax(-1) != input_ids[selected]).float().mean().item()
