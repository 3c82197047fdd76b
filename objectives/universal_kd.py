"""`universal-kd`: Universal-KD (Wu et al., EMNLP 2021), **the suite's reconstruction**: the paper's abstract and
third-party summaries give its idea, no code exists, and each guess below is a parameter where it can be.

Intermediate layers are matched in the output space: a pseudo classifier (a linear map of the [CLS] state to
the task's outputs) on every teacher layer and every student layer. The teacher's are trained first, on the
frozen teacher over the training set (`teacher_head_epochs`); then, as the student trains, each student layer's
pseudo-logits are matched (t^2 KL, or squared error for regression) to an attention-weighted combination of
the teacher layers' pseudo-logits, the weights a softmax over the teacher layers of the scaled dot product of
the [CLS] states (ALP-KD's attention, on which Universal-KD builds; a narrower student's states through a
learned projection), plus the `[kd]` logit loss. Guessed: the attention's form and input ([CLS] states), the
combination of logits rather than losses (the summaries report logits working better), linear heads, the heads'
training (epochs, learning rate, labels as their target), and one weight `beta` for every layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import datasets
import numpy as np
import torch

from bench.parts.context import Batch
from bench.parts.features import MODEL_INPUTS, Collator
from bench.parts.fields import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, SEED
from bench.parts.losses import kd_divergence, label_loss
from bench.parts.outputs import HIDDEN_STATES, forward
from bench.parts.registry import param
from objectives.layerwise import LayerwiseObjective
from objectives.registry import register_objective


@dataclass(frozen=True)
class UniversalKDParams:
    beta: float = param(1.0, "weight of the pseudo-logits' term beside the [kd] logit loss", range=NON_NEGATIVE)
    temperature: float = param(1.0, "temperature of the pseudo-logits' divergence", range=POSITIVE)
    teacher_head_epochs: int = param(3, "epochs that train the teacher's pseudo classifiers on the frozen teacher "
                                     "before the student trains", range=AT_LEAST_ONE)
    head_lr: float = param(1e-3, "learning rate of the pseudo classifiers (the teacher's, then the student's)",
                           range=POSITIVE)
    head_batch_size: int = param(32, "batch size of the teacher heads' training", range=AT_LEAST_ONE)
    projection_lr: float = param(1e-4, "learning rate of the projection of a narrower student's states",
                                 range=POSITIVE)
    seed: int = param(0, "seed of the heads' initialisation and of the teacher heads' batch order", range=SEED)


def heads(count: int, width: int, outputs: int, seed: int, device: torch.device) -> torch.nn.ModuleList:
    """`count` linear pseudo classifiers, initialised from `seed` without touching the global generator."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.nn.ModuleList(torch.nn.Linear(width, outputs) for _ in range(count)).to(device)


def layer_attention(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Per example, each student layer's weights over the teacher layers: a softmax of the scaled dot products of
    their [CLS] states (`student` [batch, S, width], `teacher` [batch, T, width]) -> [batch, S, T]."""
    return torch.softmax(student @ teacher.transpose(1, 2) / math.sqrt(teacher.shape[-1]), dim=-1)


def cls_states(hidden_states: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Every layer's [CLS] state, the embeddings left out: [batch, layers, width]."""
    return torch.stack([states[:, 0] for states in hidden_states[1:]], 1).float()


@register_objective("universal-kd", label="Universal-KD", params=UniversalKDParams,
                    description="Universal-KD (our reconstruction): pseudo classifiers on every layer's [CLS] state, "
                    "each student layer's matched to an attention-weighted mix of the teacher layers', + the [kd] loss")
class UniversalKD(LayerwiseObjective):
    reads = frozenset({HIDDEN_STATES})

    def __init__(self, params: UniversalKDParams, context):
        super().__init__(params, context)
        self.outputs = 1 if self.regression else context.task.num_labels
        self.teacher_heads: torch.nn.ModuleList | None = None
        self.student_heads: torch.nn.ModuleList | None = None
        self.head_losses: list[float] = []  # the teacher heads' mean loss in each epoch
        self.attention_sum: torch.Tensor | None = None  # summed over training batches, for the report
        self.attention_batches = 0

    def held_out(self, train_ds: datasets.Dataset) -> datasets.Dataset:
        """Trains the teacher's pseudo classifiers on the frozen teacher before the student trains; keeps all rows."""
        if self.teacher_heads is None:
            self.train_teacher_heads(train_ds)
        return train_ds

    def train_teacher_heads(self, rows: datasets.Dataset) -> None:
        teacher, context = self.context.teacher_model, self.context
        self.teacher_heads = heads(teacher.config.num_hidden_layers, teacher.config.hidden_size, self.outputs,
                                   self.params.seed, context.device)
        optimizer = torch.optim.AdamW(self.teacher_heads.parameters(), lr=self.params.head_lr)
        columns = rows.select_columns([c for c in (*MODEL_INPUTS, "labels") if c in rows.column_names])
        collate, size = Collator(context.tokenizer), self.params.head_batch_size
        order_rng = np.random.default_rng(self.params.seed)
        for _ in range(self.params.teacher_head_epochs):
            order, losses = order_rng.permutation(len(columns)), []
            for start in range(0, len(order), size):
                batch = columns.select(order[start:start + size]).to_list()
                labels = torch.tensor([row.pop("labels") for row in batch], device=context.device)
                inputs = {k: v.to(context.device) for k, v in collate(batch).items()}
                with torch.no_grad():
                    states = cls_states(forward(teacher, inputs, [HIDDEN_STATES]).hidden_states)
                loss = torch.stack([label_loss(head(states[:, j]), labels, regression=self.regression).mean()
                                    for j, head in enumerate(self.teacher_heads)]).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
            self.head_losses.append(float(np.mean(losses)))
        self.teacher_heads.requires_grad_(False)

    def intermediate(self, batch: Batch) -> torch.Tensor:
        student, teacher = cls_states(batch.student.hidden_states), cls_states(batch.teacher.hidden_states)
        if self.student_heads is None:
            self.student_heads = heads(student.shape[1], student.shape[-1], self.outputs, self.params.seed + 1,
                                       student.device)
            self.context.add_parameters(self.student_heads.parameters(), lr=self.params.head_lr)
        with torch.no_grad():
            teacher_logits = torch.stack([head(teacher[:, j]) for j, head in enumerate(self.teacher_heads)], 1)
        student_logits = torch.stack([head(student[:, k]) for k, head in enumerate(self.student_heads)], 1)
        weights = layer_attention(self.projected(student, teacher.shape[-1]), teacher)  # [batch, S, T]
        targets = weights @ teacher_logits  # [batch, S, outputs]
        self._note(weights)
        flat = lambda t: t.reshape(-1, self.outputs)  # noqa: E731
        per_layer = kd_divergence(flat(student_logits), flat(targets), temperature=self.params.temperature,
                                  regression=self.regression).view(student.shape[0], -1)
        return self.params.beta * per_layer.mean(1)

    def _note(self, weights: torch.Tensor) -> None:
        mean = weights.detach().mean(0).cpu()
        self.attention_sum = mean if self.attention_sum is None else self.attention_sum + mean
        self.attention_batches += 1

    def state_dict(self) -> dict:
        state = super().state_dict()
        for name in ("teacher_heads", "student_heads"):
            if getattr(self, name) is not None:
                state[name] = getattr(self, name).state_dict()
        return {**state, "head_losses": list(self.head_losses)}

    def load_state_dict(self, state: dict) -> None:
        """The heads, then the projection: their optimisers in the order the first training made them."""
        self.head_losses = list(state.get("head_losses", []))
        for name, seed in (("teacher_heads", self.params.seed), ("student_heads", self.params.seed + 1)):
            if name in state:
                weights = state[name]
                count, (outputs, width) = len(weights) // 2, weights["0.weight"].shape
                module = heads(count, width, outputs, seed, weights["0.weight"].device)
                module.load_state_dict(weights)
                setattr(self, name, module)
        if self.student_heads is not None:
            self.context.add_parameters(self.student_heads.parameters(), lr=self.params.head_lr)
        if self.teacher_heads is not None:
            self.teacher_heads.requires_grad_(False)
        super().load_state_dict(state)

    def report(self) -> dict:
        attention = (self.attention_sum / self.attention_batches).tolist() if self.attention_batches else None
        return {"teacher_head_losses": [round(loss, 4) for loss in self.head_losses],
                "attention_by_student_layer": [[round(w, 3) for w in row] for row in attention] if attention else None}
