"""Student training on `transformers.Trainer`: the run's parts (KD objective, in-loop method, scheme),
plus timing and the best-dev checkpoint.

Trainer provides the rest: AdamW, linear warm-up then decay, gradient clipping, gradient
accumulation, bf16 autocast on CUDA, data parallelism under `torchrun`/`accelerate launch`,
evaluation every epoch or N steps, best-checkpoint selection, checkpoint resume and experiment
trackers (`report_to`: TensorBoard, W&B, MLflow).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import datasets
import numpy as np
import torch
from accelerate import PartialState
from safetensors.torch import load_file
from transformers import PreTrainedModel, Trainer, TrainerCallback, TrainingArguments
from transformers.integrations import (TensorBoardCallback, is_mlflow_available, is_tensorboard_available,
                                       is_wandb_available)
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

from bench.pipeline.cache import predict_logits
from bench.pipeline.checkpoints import (PARTS_FILE, WEIGHTS_FILE, PartsState, RunClock, checkpoint_step, resume_point,
                               seconds_before)
from bench.parts.base import TrainingPart
from bench.parts.context import EXAMPLE_ID, Batch, TrainingContext
from bench.parts.errors import KdbenchError
from bench.parts.features import TEACHER_LOGITS, Collator, example_lengths, longest_first
from bench.parts.losses import label_loss
from bench.parts.origins import ORIGIN_ID, Origins, with_origins
from bench.parts.outputs import Outputs, as_outputs, request
from bench.parts.registry import NoParams
from bench.parts.schedules import first_step, restarted_factor
from bench.parts.tasks import TaskSpec
from bench.pipeline.config import LENGTH_STRATEGIES, TrainConfig
from bench.pipeline.metrics import predictions_from_logits, trainer_metrics
from bench.pipeline.progress import close_progress, use_loss_progress
from bench.pipeline.records import PhaseTimer
from bench.pipeline.teacher_states import TeacherStates
from methods.base import InLoopMethod
from objectives.base import Objective
from schemes import get_scheme
from schemes.base import Scheme
from selection.base import Selector

LOGS_DIR = "logs"  # TensorBoard's event files, in the run's folder: the checkpoints folder is removed after training
# transformers' own check of each tracker's package (`TrainingArguments.report_to`), by tracker; the package and
# its pip name are the tracker's name
TRACKER_AVAILABLE: dict[str, Callable[[], bool]] = {"tensorboard": is_tensorboard_available,
                                                    "wandb": is_wandb_available, "mlflow": is_mlflow_available}


@dataclass
class RunParts:
    """The parts one training run composes, sharing one context: the KD objective (None: train on
    labels alone, as a teacher or the no-KD student), an in-loop method (if any), the scheme and the row
    selector (distill only; it chose the rows before training)."""

    context: TrainingContext
    scheme: Scheme
    objective: Objective | None = None
    in_loop: InLoopMethod | None = None
    selector: Selector | None = None
    teacher_states: TeacherStates | None = None  # `--teacher-outputs cached-all`: the extras the parts read, on disk

    @property
    def restart_at(self) -> float | None:
        """The fraction of training where the objective starts its second phase afresh (`Objective.restart_at`)."""
        return self.objective.restart_at(self.objective.params) if self.objective is not None else None

    def restart_step(self, total_steps: int) -> int | None:
        """The step of `restart_at` in a run of `total_steps` (None: no restart)."""
        fraction = self.restart_at
        return None if fraction is None else first_step(fraction, total_steps)

    @property
    def reads(self) -> frozenset[str]:
        """What any part reads of the forwards besides logits (`TrainingPart.reads`)."""
        return frozenset().union(*(part.reads for part in self.named().values()))

    def named(self) -> dict[str, TrainingPart]:
        """The parts present, by role: what checkpoints save and records report."""
        parts = {"method": self.in_loop, "objective": self.objective, "scheme": self.scheme, "selector": self.selector}
        return {role: part for role, part in parts.items() if part is not None}


def plain_parts(task: TaskSpec, train_size: int) -> RunParts:
    """Fine-tuning on labels with the plain scheme: a teacher's training."""
    context = TrainingContext(task=task, train_size=train_size, teacher="")
    return RunParts(context, get_scheme("plain").implementation(NoParams(), context))


class DistillationTrainer(Trainer):
    """A Trainer whose training loss is the run's KD objective when the batch carries teacher logits, and
    the label loss otherwise; an in-loop method (AD2), if given, computes the loss of KD batches with
    that objective. The scheme chooses the learning-rate schedule and the weights evaluated.

    Without teacher logits (fine-tuning a teacher, the no-KD baseline, evaluation) it is plain
    fine-tuning. Evaluation time is accumulated in `timer` so training time can be told apart.
    """

    loss_is_scaled_for_ga = False  # our loss is a per-batch mean

    def __init__(self, *args, task: TaskSpec, parts: RunParts, timer: PhaseTimer, **kwargs):
        super().__init__(*args, **kwargs)
        self.task, self.parts, self.timer = task, parts, timer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels", None)
        batch = Batch(inputs, labels, inputs.pop(TEACHER_LOGITS, None), inputs.pop(EXAMPLE_ID, None),
                      origins=Origins.pop(inputs))
        objective, in_loop, context = self.parts.objective, self.parts.in_loop, self.parts.context
        distilling = objective is not None and model.training
        if distilling and self.parts.selector is not None:  # e.g. Glitter: each slot row becomes a chosen candidate
            batch = self.parts.selector.choose(model, batch)
            inputs, labels = batch.inputs, batch.labels
        reads = self.parts.reads if distilling else frozenset()
        stored = self.parts.teacher_states if reads else None
        if distilling and (context.online_teacher or (reads and stored is None)):  # one forward: logits and extras
            teacher = context.teacher_forward(inputs, reads)
            batch.teacher_logits = batch.teacher_logits if batch.teacher_logits is not None else teacher.logits
            batch.teacher = replace(teacher, logits=batch.teacher_logits)
        elif stored is not None:
            batch.teacher = stored.outputs(batch.teacher_logits, batch.example_ids, inputs["attention_mask"])
        elif batch.teacher_logits is not None:
            batch.teacher = Outputs(batch.teacher_logits)
        if batch.teacher_logits is not None and distilling and in_loop is not None:
            return in_loop.loss(model, batch, objective)
        outputs = model(**inputs, **request(reads))
        batch.student = as_outputs(outputs, reads)
        if batch.teacher_logits is None or objective is None:
            batch.losses = label_loss(outputs.logits, labels, regression=self.task.is_regression)
        else:
            batch.losses = objective.loss(outputs.logits, batch)
        loss = batch.losses.mean() if batch.weights is None else (batch.losses * batch.weights).sum()
        return (loss, outputs) if return_outputs else loss

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_scheduler is None:
            optimizer, warmup = optimizer or self.optimizer, self.args.get_warmup_steps(num_training_steps)
            self.lr_scheduler = self.parts.scheme.scheduler(optimizer, num_training_steps, warmup)
            restart = self.parts.restart_step(num_training_steps)
            if restart is not None:  # schemes with a schedule of their own are refused with it (choice.choose_parts)
                self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                    optimizer, lambda step: restarted_factor(step, num_training_steps, warmup, restart))
        return super().create_scheduler(num_training_steps, optimizer)  # the Trainer's, where no part has one

    def evaluate(self, *args, **kwargs):
        with self.timer.phase("evaluation"), self.parts.scheme.evaluation_weights(self.model):
            return super().evaluate(*args, **kwargs)

    def _get_train_sampler(self, train_dataset=None):
        # Trainer's LengthGroupedSampler draws its order from the global RNG when the epoch starts, so a
        # resumed run, whose RNG state is restored only after that, would skip batches of another
        # order; this one draws each epoch's order from the seed and the epoch number.
        strategy = self.args.train_sampling_strategy
        if strategy not in LENGTH_STRATEGIES:
            return super()._get_train_sampler(train_dataset)
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return SeededLengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                          example_lengths(dataset), seed,
                                          shuffle_batches=strategy == "bucket_by_length")

    def _get_eval_sampler(self, eval_dataset):
        # evaluation in one process: batches longest first, each padded to about its own length
        if self.args.train_sampling_strategy not in LENGTH_STRATEGIES or self.args.world_size > 1:
            return super()._get_eval_sampler(eval_dataset)
        return longest_first(example_lengths(eval_dataset))


class PhaseRestart(TrainerCallback):
    """A second phase started afresh at the objective's restart step (`Objective.restart_at`): the best
    weights so far (the best-dev checkpoint's) go back into the student, and every optimiser, the
    student's and the parts' (MATE-KD's generator), loses its state, as a new one would start. The
    learning rate's restart is the schedule's (`restarted_factor`). A run resumed from a checkpoint
    before that step restarts at it; one resumed after it has the restarted optimisers in the checkpoint."""

    def __init__(self, parts: RunParts):
        self.parts, self.step = parts, None

    def on_train_begin(self, args, state, control, **kwargs):
        self.step = self.parts.restart_step(state.max_steps)

    def on_step_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        if state.global_step != self.step:
            return
        if state.best_model_checkpoint:
            weights = load_file(Path(state.best_model_checkpoint) / WEIGHTS_FILE)
            TrainingContext.unwrap(model).load_state_dict(weights)
        for each in (optimizer, *self.parts.context.optimizers):
            getattr(each, "optimizer", each).state.clear()  # accelerate wraps the Trainer's


def restart_record(step: int, evaluations: list[dict], metric: str) -> dict:
    """Where the second phase started and from which step's weights: the best evaluation before it, by
    the Trainer's rule (a later one only when strictly better), or the weights as they were if none."""
    best = None
    for entry in evaluations:
        if entry["step"] <= step and (best is None or entry[metric] > best[metric]):
            best = entry
    return {"step": step, "weights_from_step": best["step"] if best else step}


class SeededLengthGroupedSampler(LengthGroupedSampler):
    """Trainer's length-grouped order (random mega-batches of about 50 batches, each sorted by length),
    drawn, like accelerate's SeedableRandomSampler, from `seed + epoch`: the same seed gives the same
    batches, and a resumed run or each process of a data-parallel one draws the same order for an
    epoch. Trainer and accelerate call `set_epoch` before each epoch.

    With `shuffle_batches` (strategy `bucket_by_length`) the same batches come in random order, the
    longest still first and a short last batch still last (a short batch inside the epoch would shift
    every later batch's boundary): Trainer's order runs each mega-batch from its longest batch to its
    shortest, a curriculum repeated about four times an epoch that ends each epoch on the shortest
    examples; this keeps the padding saved and drops the curriculum."""

    def __init__(self, batch_size: int, lengths: list[int], seed: int, *, shuffle_batches: bool = False):
        super().__init__(batch_size, lengths=lengths)
        self.seed, self.epoch, self.shuffle_batches = seed, 0, shuffle_batches

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = get_length_grouped_indices(self.lengths, self.batch_size, generator=generator)
        self.epoch += 1  # the next epoch's order, should nobody call set_epoch
        if self.shuffle_batches:
            first, *rest = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
            short_last = rest[-1:] if rest and len(rest[-1]) < self.batch_size else []
            middle = rest[:len(rest) - len(short_last)]
            shuffled = [middle[i] for i in torch.randperm(len(middle), generator=generator).tolist()]
            order = [i for batch in [first, *shuffled, *short_last] for i in batch]
        return iter(order)


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
    restart: dict | None = None  # where a second phase started afresh, and from which step's weights
    predictions: dict[str, dict] | None = None  # per eval split, each example's prediction (`dev_predictions`)


def check_tracker(config: TrainConfig) -> None:
    """A tracker (`report_to`) whose package is not installed is one error, raised before any data or
    model is loaded rather than by Trainer after them."""
    available = TRACKER_AVAILABLE.get(config.report_to)
    if available is not None and not available():
        raise KdbenchError(f"report_to {config.report_to}: its package is not installed: "
                           f"pip install {config.report_to}")


def training_arguments(config: TrainConfig, output_dir: Path, metric: str, *, disable_tqdm: bool = False) -> TrainingArguments:
    """TrainingArguments for one run: evaluation and checkpointing in step, best checkpoint kept; the
    tracker (`report_to`, `run_name`) as configured."""
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
        remove_unused_columns=False,
        disable_tqdm=disable_tqdm,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def train(model: PreTrainedModel, tokenizer, train_ds: datasets.Dataset, eval_dss: dict[str, datasets.Dataset],
          task: TaskSpec, config: TrainConfig, output_dir: Path, timer: PhaseTimer, *, parts: RunParts | None = None,
          resume: bool = False, disable_tqdm: bool = False,
          callbacks: Sequence[TrainerCallback] = ()) -> tuple[PreTrainedModel, TrainResult]:
    """Train `model` on `train_ds` (with a `teacher_logits` column for KD) with the run's `parts` (default:
    labels only, plain scheme; rows with their origins, else all taken as originals), evaluating on `eval_dss`; returns the best-dev model (the weights the
    scheme keeps) and the run's history. Checkpoints live in `output_dir/checkpoints` while training
    (for `resume`: from the newest whole one, see bench/pipeline/checkpoints.py), with the parts' state, and are
    removed once the best model is back in memory; TensorBoard's event files (`report_to`) go to
    `output_dir/logs`, which stays. `callbacks` join the Trainer's (e.g. to report each evaluation to a
    search). `timer` gets the whole run's training and evaluation time."""
    parts = parts or plain_parts(task, len(train_ds))
    primary = next(iter(eval_dss))
    checkpoints = output_dir / "checkpoints"
    if EXAMPLE_ID not in train_ds.column_names:  # each example's row, which the parts see as batch.example_ids
        train_ds = train_ds.add_column(EXAMPLE_ID, list(range(len(train_ds))))
    if ORIGIN_ID not in train_ds.column_names:  # a run without pools: every row is an original
        train_ds = with_origins(train_ds, source=0)
    trainer = DistillationTrainer(
        model=model,
        args=training_arguments(config, checkpoints, f"eval_{primary}_score", disable_tqdm=disable_tqdm),
        train_dataset=train_ds,
        eval_dataset=eval_dss,
        data_collator=Collator(tokenizer),
        processing_class=tokenizer,
        compute_metrics=trainer_metrics(task),
        callbacks=list(callbacks),
        task=task, parts=parts, timer=timer,
    )
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback):  # else it writes under the checkpoints, removed below
            callback.logging_dir = callback.logging_dir or str(output_dir / LOGS_DIR)  # $TENSORBOARD_LOGGING_DIR first
    if not disable_tqdm:
        use_loss_progress(trainer)
    checkpoint = resume_point(checkpoints) if resume else None
    before = seconds_before(checkpoint)
    trainer.add_callback(RunClock(timer, before))
    parts_state = PartsState(parts.named(), parts.context)
    trainer.add_callback(parts_state)
    if parts.restart_at is not None:
        trainer.add_callback(PhaseRestart(parts))
    parts.scheme.begin(model)
    if checkpoint is not None and (checkpoint / PARTS_FILE).is_file():
        parts_state.restore(checkpoint)
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
    restart = parts.restart_step(state.max_steps)
    if state.best_model_checkpoint and (Path(state.best_model_checkpoint) / PARTS_FILE).is_file():
        # the scheme as it was at the kept weights (its `finish` acts on them); the other parts' reports
        # describe the whole run
        parts_state.restore(Path(state.best_model_checkpoint), roles=("scheme",))
    parts.scheme.finish(trainer.model)
    with timer.phase("evaluation"):
        predictions = {name: dev_predictions(trainer.model, ds, tokenizer, task, config.per_device_eval_batch_size)
                       for name, ds in eval_dss.items()}
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
        restart=restart_record(restart, evaluations, f"eval_{primary}_score") if restart is not None else None,
        predictions=predictions,
    )


def dev_predictions(model: PreTrainedModel, ds: datasets.Dataset, tokenizer, task: TaskSpec,
                    batch_size: int) -> dict[str, list]:
    """Each example's prediction with the kept weights (class index; a regression output rounded to
    1e-4), its label and its id (its row in the split): what reports pair runs on, example by example."""
    logits = predict_logits(model, ds, Collator(tokenizer), batch_size, desc="dev predictions")
    predictions = predictions_from_logits(task, logits)
    labels = np.asarray(ds["labels"])
    if task.is_regression:
        predictions, labels = np.round(predictions, 4), np.round(labels, 4)
    return {"ids": list(range(len(ds))), "labels": labels.tolist(), "predictions": predictions.tolist()}
