"""`rw-kd`: RW-KD (Lu et al., Findings EMNLP 2021), a meta-learner re-weighting, per example, the
label loss against the teacher loss.

Our provisional reconstruction: only the paper's abstract is public and there is no official code,
so, as the unofficial reimplementations do, the meta-learner is learning-to-reweight (Ren et al.,
ICML 2018). Per training batch:

1. per-example weights `eps` (batch x 2: label term, teacher term) start at 0;
2. a virtual SGD step on `sum_i eps_i0 * CE_i + eps_i1 * KD_i`:
   `theta' = theta - virtual_lr * d/d theta` (kept differentiable in `eps`);
3. the meta loss: the label loss (cross-entropy; squared error for regression) of the student with
   `theta'` on a meta batch of the held-out meta split;
4. `w = clamp(-d meta / d eps, min=0) + delta`, normalised per example so `w_i0 + w_i1 = 1`
   (0.5 / 0.5 where both are 0): a term is weighted by how much a step on it helps the meta loss;
5. the training loss is `w_i0 * CE_i + w_i1 * KD_i` with `w` fixed.

CE_i is the label term (squared error to the gold score for regression), KD_i the run's KD term
(t^2-scaled KL at `--temperature`; squared error to the teacher for regression). The meta split is
carved, seeded, from the training set's original examples (never the dev set).

Cost: three forwards a step (the harness's, the virtual step's, the meta batch's) and, with
`meta_params=all`, a second-order backward through the whole student; a rough timing on a tiny BERT
(not a benchmark) gave about 4.5x a plain KD step (`head`: about 2x).

The meta step needs the student itself, not only its logits: it reads `context.model`, which the
harness binds when training begins (bench/pipeline/checkpoints.py, `PartsState.on_train_begin`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import datasets
import torch
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from bench.parts.context import EXAMPLE_ID, Batch, TrainingContext
from bench.parts.errors import KdbenchError
from bench.parts.features import TEACHER_LOGITS, Collator
from bench.parts.fields import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, POSITIVE_FRACTION, SEED
from bench.parts.losses import kd_divergence, label_loss
from bench.parts.origins import ORIGIN_COLUMNS
from bench.parts.registry import param
from objectives.base import Objective
from objectives.registry import register_objective


@dataclass(frozen=True)
class RWKDParams:
    meta_fraction: float = param(0.1, "share of the training set's original examples carved out as the meta "
                                      "split (they are not trained on)", range=POSITIVE_FRACTION)
    meta_batch_size: int = param(32, "examples of the meta split per meta step", range=AT_LEAST_ONE)
    virtual_lr: float = param(1e-3, "learning rate of the virtual SGD step", range=POSITIVE)
    delta: float = param(0.0, "floor added to each weight before normalising", range=NON_NEGATIVE)
    meta_params: str = param("all", "parameters of the virtual step: all the student's, or only its "
                                    "classifier head (cheaper: no second-order pass through the encoder)",
                             choices=("all", "head"))
    seed: int = param(0, "seed of the meta split and of the meta batches drawn from it", range=SEED)


@register_objective("rw-kd", label="RW-KD", params=RWKDParams,
                    description="per-example weights of CE vs KD from a learning-to-reweight meta step on a "
                                "meta split carved from the training set (provisional reconstruction: the "
                                "paper's abstract only); reads --temperature")
class RWKD(Objective):
    kd_settings = ("temperature",)

    def __init__(self, params: RWKDParams, context: TrainingContext):
        super().__init__(params, context)
        self.meta: datasets.Dataset | None = None
        self.generator = torch.Generator().manual_seed(params.seed)
        self.weight_sums = torch.zeros(2, dtype=torch.float64)  # (CE, KD) batch-mean weights, summed over batches
        self.batches = 0
        self.last_kd_weight = 0.5

    def held_out(self, train_ds: datasets.Dataset) -> datasets.Dataset:
        """Keeps a seeded `meta_fraction` of the original examples (the first `context.train_size` rows;
        pool examples follow them) as the meta split; returns the other rows in their order, and
        lowers `context.train_size` to the originals left. A pool's augmentations of meta examples
        stay in training."""
        originals = self.context.train_size
        n_meta = max(1, round(self.params.meta_fraction * originals))
        if n_meta >= originals:
            raise KdbenchError(f"meta_fraction {self.params.meta_fraction} of objective rw-kd leaves no "
                               f"training example out of {originals}")
        order = torch.randperm(originals, generator=torch.Generator().manual_seed(self.params.seed))
        meta_rows = set(order[:n_meta].tolist())
        unused = [c for c in (TEACHER_LOGITS, EXAMPLE_ID, *ORIGIN_COLUMNS) if c in train_ds.column_names]
        self.meta = train_ds.select(sorted(meta_rows)).remove_columns(unused)
        self.context.train_size = originals - n_meta
        return train_ds.select([i for i in range(len(train_ds)) if i not in meta_rows])

    def terms(self, student_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Per example, the label term and the KD term (batch x 2)."""
        ce = label_loss(student_logits, batch.labels, regression=self.regression)
        kd = kd_divergence(student_logits, batch.teacher_logits, temperature=self.context.kd.temperature,
                           regression=self.regression)
        return torch.stack([ce, kd], dim=-1)

    def weights(self, batch: Batch) -> torch.Tensor:
        """The per-example weights (batch x 2, non-negative, each row summing to 1, no gradient) of the
        batch's terms, from one meta step of `context.model`. The virtual step differentiates the
        student's gradient, so it runs its own forward of the batch with the math attention kernel
        (flash and memory-efficient attention have no double backward), not the harness's."""
        if self.context.model is None:
            raise RuntimeError("rw-kd needs the student: context.model, bound when training begins")
        model = self.context.unwrap(self.context.model)
        theta = self._meta_parameters(model)
        with sdpa_kernel(SDPBackend.MATH):
            terms = self.terms(model(**batch.inputs).logits, batch)
        eps = torch.zeros_like(terms, requires_grad=True)
        grads = torch.autograd.grad((eps * terms).sum(), list(theta.values()), create_graph=True, allow_unused=True)
        virtual = {name: p - self.params.virtual_lr * g for (name, p), g in zip(theta.items(), grads) if g is not None}
        inputs, labels = self._meta_batch(terms.device)
        meta_logits = functional_call(model, virtual, args=(), kwargs=inputs).logits
        meta_loss = label_loss(meta_logits, labels, regression=self.regression).mean()
        w = torch.clamp(-torch.autograd.grad(meta_loss, eps)[0], min=0) + self.params.delta
        total = w.sum(-1, keepdim=True)
        return torch.where(total > 0, w / total.clamp(min=torch.finfo(w.dtype).tiny), 0.5).detach()

    def loss(self, student_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        terms = self.terms(student_logits, batch)
        w = self.weights(batch)
        batch_mean = w.mean(0).double().cpu()
        self.weight_sums += batch_mean
        self.batches += 1
        self.last_kd_weight = float(batch_mean[1])
        return (w * terms).sum(-1)

    def view_loss(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The KD term times the last training batch's mean KD weight (0.5 before the first): a view
        has no meta step of its own."""
        return self.last_kd_weight * kd_divergence(student_logits, teacher_logits,
                                                   temperature=self.context.kd.temperature,
                                                   regression=self.regression)

    def _meta_parameters(self, model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
        """The trainable parameters the virtual step moves: all, or those outside the encoder
        (`model.base_model_prefix`; all of a model that has none)."""
        prefix = getattr(model, "base_model_prefix", "")
        head = self.params.meta_params == "head" and bool(prefix) and hasattr(model, prefix)
        return {name: p for name, p in model.named_parameters()
                if p.requires_grad and not (head and name.startswith(f"{prefix}."))}

    def _meta_batch(self, device: torch.device) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Model inputs and labels of `meta_batch_size` meta examples drawn without replacement (the
        seeded generator's next draw)."""
        if self.meta is None:
            raise RuntimeError("rw-kd has no meta split: held_out was not called")
        rows = torch.randperm(len(self.meta), generator=self.generator)[:self.params.meta_batch_size]
        batch = Collator(self.context.tokenizer)([self.meta[i] for i in rows.tolist()])
        labels = batch.pop("labels")
        return {k: v.to(device) for k, v in batch.items()}, labels.to(device)

    def state_dict(self) -> dict[str, Any]:
        """The meta batches' generator and the last KD weight: what the rest of training depends on."""
        return {"generator": self.generator.get_state(), "last_kd_weight": self.last_kd_weight}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.generator.set_state(state["generator"])
            self.last_kd_weight = state["last_kd_weight"]

    def report(self) -> dict:
        """Meta split size and the weights of the label and KD terms, averaged over the training
        batches this process scored (after a resume: since the resume; not saved with checkpoints,
        so restoring the best one at the end does not cut the average short)."""
        means = (self.weight_sums / self.batches).tolist() if self.batches else [None, None]
        return {"meta_examples": len(self.meta) if self.meta is not None else 0,
                "mean_weight_ce": means[0], "mean_weight_kd": means[1]}
