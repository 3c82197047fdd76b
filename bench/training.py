"""Student training on `transformers.Trainer`: the KD loss, plus timing and the best-dev checkpoint.

Trainer provides the rest: AdamW, linear warm-up then decay, gradient clipping, gradient
accumulation, bf16 autocast on CUDA, data parallelism under `torchrun`/`accelerate launch`,
evaluation every epoch or N steps, best-checkpoint selection and checkpoint resume.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import torch
from accelerate import PartialState
from transformers import PreTrainedModel, Trainer, TrainingArguments

from bench.checkpoints import RunClock, checkpoint_step, resume_point, seconds_before
from bench.errors import KdbenchError
from bench.features import TEACHER_LOGITS, Collator
from bench.fields import AT_LEAST_ONE, MAX_STEPS, NON_NEGATIVE, POSITIVE, SEED, check_ranges
from bench.losses import KDObjective, label_loss
from bench.metrics import trainer_metrics
from bench.progress import close_progress, use_loss_progress
from bench.records import PhaseTimer
from bench.tasks import TaskSpec
from methods.base import InLoopMethod


@dataclass
class TrainConfig:
    """Training settings, named and defaulted as in `transformers.TrainingArguments` where it has them."""

    learning_rate: float = field(default=5e-5, metadata={"help": "peak learning rate of AdamW", "range": POSITIVE})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "training batch size per device",
                                                                   "range": AT_LEAST_ONE})
    per_device_eval_batch_size: int = field(default=128, metadata={"help": "evaluation batch size per device",
                                                                   "range": AT_LEAST_ONE})
    num_train_epochs: float = field(default=3.0, metadata={"help": "training epochs", "range": POSITIVE})
    max_steps: int = field(default=-1, metadata={"help": "stop after this many steps (-1: run all epochs)",
                                                 "range": MAX_STEPS})
    warmup_steps: float = field(default=0.1, metadata={"help": "warm-up steps; below 1, a ratio of all steps",
                                                       "range": NON_NEGATIVE})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay", "range": NON_NEGATIVE})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient-norm clipping", "range": NON_NEGATIVE})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "batches per optimiser step",
                                                                  "range": AT_LEAST_ONE})
    eval_strategy: str = field(default="epoch", metadata={"help": "evaluate each 'epoch' or every eval_steps 'steps'",
                                                          "choices": ("epoch", "steps")})
    eval_steps: int | None = field(default=None, metadata={"help": "steps between evaluations (eval_strategy=steps)",
                                                           "range": AT_LEAST_ONE})
    logging_steps: int = field(default=10, metadata={"help": "steps between loss logs", "range": AT_LEAST_ONE})
    seed: int = field(default=42, metadata={"help": "seed of initialisation, dropout and data order", "range": SEED})

    def __post_init__(self):
        check_ranges(self)  # a bad value stops the run here, before any data or model is loaded


@dataclass
class KDConfig:
    """The distillation loss of METHODS.md: alpha_kd * t^2 * KL + alpha_ce * CE (MSE for regression)."""

    temperature: float = field(default=1.0, metadata={"help": "softmax temperature t of the KD term",
                                                      "range": POSITIVE})
    alpha_kd: float = field(default=1.0, metadata={"help": "weight of the KD term", "range": NON_NEGATIVE})
    alpha_ce: float = field(default=0.0, metadata={"help": "weight of the hard-label term", "range": NON_NEGATIVE})

    def __post_init__(self):
        check_ranges(self)

    def check_learns(self, where: str) -> None:
        """A KD run with both weights 0 would train nothing: one error naming `where` it was set."""
        if self.alpha_kd == 0 and self.alpha_ce == 0:
            raise KdbenchError(f"{where}: alpha_kd and alpha_ce are both 0: the student would learn nothing")


class DistillationTrainer(Trainer):
    """A Trainer whose loss is the KD loss when the batch carries teacher logits, the label loss otherwise;
    an in-loop method (AD2), if given, computes the training loss of KD batches instead.

    Without teacher logits (fine-tuning a teacher, the no-KD baseline, evaluation) it is plain
    fine-tuning. Evaluation time is accumulated in `timer` so training time can be told apart.
    """

    loss_is_scaled_for_ga = False  # our loss is a per-batch mean

    def __init__(self, *args, task: TaskSpec, kd: KDConfig, timer: PhaseTimer, in_loop: InLoopMethod | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.task, self.kd, self.timer, self.in_loop = task, kd, timer, in_loop

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        teacher_logits = inputs.pop(TEACHER_LOGITS, None)
        labels = inputs.pop("labels", None)
        objective = KDObjective(labels=labels, regression=self.task.is_regression, **asdict(self.kd))
        if teacher_logits is not None and self.in_loop is not None and model.training:
            return self.in_loop.loss(model, inputs, teacher_logits, objective)
        outputs = model(**inputs)
        if teacher_logits is None:
            loss = label_loss(outputs.logits, labels, regression=self.task.is_regression)
        else:
            loss = objective(outputs.logits, teacher_logits)
        return (loss, outputs) if return_outputs else loss

    def evaluate(self, *args, **kwargs):
        with self.timer.phase("evaluation"):
            return super().evaluate(*args, **kwargs)


def distributed_state() -> PartialState:
    """This process's place in a data-parallel run (one process when not launched by torchrun)."""
    return PartialState(cpu=not torch.cuda.is_available())


@dataclass
class TrainResult:
    """What one training run produced, for the run record."""

    evaluations: list[dict]
    training_loss: list[dict]  # mean training loss over each `logging_steps` steps: step, epoch, loss
    best_metric: float | None
    best_step: int | None
    best_epoch: float | None
    global_step: int
    train_examples_seen: int
    world_size: int
    resumed_from: dict | None = None  # the checkpoint's step and the seconds spent before it, when resumed


def training_arguments(config: TrainConfig, output_dir: Path, metric: str, *, disable_tqdm: bool = False) -> TrainingArguments:
    """TrainingArguments for one run: evaluation and checkpointing in step, best checkpoint kept."""
    return TrainingArguments(
        output_dir=str(output_dir),
        **{k: v for k, v in asdict(config).items() if k != "eval_steps"},
        eval_steps=config.eval_steps,
        save_strategy=config.eval_strategy,
        save_steps=config.eval_steps,
        save_total_limit=1,  # with load_best_model_at_end: the best and the latest checkpoint
        load_best_model_at_end=True,
        metric_for_best_model=metric,
        greater_is_better=True,
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        use_cpu=not torch.cuda.is_available(),  # also what lets several CPU processes train data-parallel
        report_to="none",
        remove_unused_columns=False,
        disable_tqdm=disable_tqdm,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def train(model: PreTrainedModel, tokenizer, train_ds: datasets.Dataset, eval_dss: dict[str, datasets.Dataset],
          task: TaskSpec, config: TrainConfig, kd: KDConfig, output_dir: Path, timer: PhaseTimer, *,
          in_loop: InLoopMethod | None = None, resume: bool = False,
          disable_tqdm: bool = False) -> tuple[PreTrainedModel, TrainResult]:
    """Train `model` on `train_ds` (with a `teacher_logits` column for KD), evaluating on `eval_dss`;
    returns the best-dev model and the run's history. Checkpoints live in `output_dir/checkpoints`
    while training (for `resume`: from the newest whole one, see bench/checkpoints.py) and are removed
    once the best model is back in memory. `timer` gets the whole run's training and evaluation time."""
    primary = next(iter(eval_dss))
    checkpoints = output_dir / "checkpoints"
    trainer = DistillationTrainer(
        model=model,
        args=training_arguments(config, checkpoints, f"eval_{primary}_score", disable_tqdm=disable_tqdm),
        train_dataset=train_ds,
        eval_dataset=eval_dss,
        data_collator=Collator(tokenizer),
        processing_class=tokenizer,
        compute_metrics=trainer_metrics(task),
        task=task, kd=kd, timer=timer, in_loop=in_loop,
    )
    if not disable_tqdm:
        use_loss_progress(trainer)
    checkpoint = resume_point(checkpoints) if resume else None
    before = seconds_before(checkpoint)
    trainer.add_callback(RunClock(timer, before))
    evaluation_before = timer.seconds["evaluation"]
    with timer.phase("training"):
        try:
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        finally:
            close_progress(trainer)
    timer.seconds["training"] -= timer.seconds["evaluation"] - evaluation_before  # training alone
    for phase, seconds in before.items():  # the whole run's time, the part before a resume included
        timer.seconds[phase] += seconds
    state = trainer.state
    evaluations = [entry for entry in state.log_history if any(k.startswith("eval_") for k in entry)]
    training_loss = [{k: entry[k] for k in ("step", "epoch", "loss")} for entry in state.log_history if "loss" in entry]
    best_step = int(state.best_model_checkpoint.rsplit("-", 1)[1]) if state.best_model_checkpoint else None
    best_epoch = next((e["epoch"] for e in evaluations if e["step"] == best_step), None)
    if trainer.is_world_process_zero():
        shutil.rmtree(checkpoints, ignore_errors=True)
    return trainer.model, TrainResult(
        evaluations=evaluations,
        training_loss=training_loss,
        best_metric=state.best_metric,
        best_step=best_step,
        best_epoch=best_epoch,
        global_step=state.global_step,
        train_examples_seen=round((state.epoch or 0) * len(train_ds)),
        world_size=trainer.args.world_size,
        resumed_from=checkpoint and {"step": checkpoint_step(checkpoint), "seconds_before": before},
    )
