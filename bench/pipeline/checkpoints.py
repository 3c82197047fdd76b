"""Resuming from Trainer checkpoints safely, with the time spent before the interruption.

`transformers.Trainer` writes a checkpoint folder in place, file after file (weights, optimiser,
scheduler, RNG states) and its `trainer_state.json` last, and it deletes old checkpoints with
`shutil.rmtree`. A run killed at the wrong moment leaves a folder with some of those files; resuming
from it crashes, every time. So a checkpoint counts only when all its files are there and its
state and weights read back (`complete`); the newest complete one is resumed from, and the others
that are not complete are removed (`resume_point`).

The time a run spent before an interruption lives in each checkpoint too: `RunClock` is a
stateful Trainer callback whose seconds are saved in `trainer_state.json`, so a resumed run's
record counts the whole run's training and evaluation time, not only the part after resuming.
So does the state of the run's parts (method, objective, scheme: `PartsState`), in `PARTS_FILE`.
"""

from __future__ import annotations

import json
import pickle
import shutil
import sys
import time
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from bench.parts.base import TrainingPart
from bench.parts.context import TrainingContext
from bench.parts.errors import KdbenchError
from bench.pipeline.records import PhaseTimer

STATE_FILE = "trainer_state.json"
# what a checkpoint of a full (not weights-only) save holds besides its state and weights
CHECKPOINT_FILES = ("config.json", "optimizer.pt", "scheduler.pt", STATE_FILE)
WEIGHTS_FILE = "model.safetensors"
PARTS_FILE = "kdbench_parts.pt"  # the state of the run's method, objective and scheme (PartsState)
PHASES = ("training", "evaluation")


def complete(checkpoint: Path) -> bool:
    """Whether `checkpoint` holds every file of a save and its state and weights read back whole."""
    if not all((checkpoint / name).is_file() for name in (*CHECKPOINT_FILES, WEIGHTS_FILE)):
        return False
    try:
        state = json.loads((checkpoint / STATE_FILE).read_text())
        with safe_open(checkpoint / WEIGHTS_FILE, "pt") as weights:  # checks the header against the file size
            weights.keys()
        if PartsState.__name__ in state.get("stateful_callbacks", {}):  # written after the state: must be there
            torch.load(checkpoint / PARTS_FILE, weights_only=False)
    except (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError, SafetensorError):  # cut short, garbled
        return False
    return True


def checkpoint_step(checkpoint: Path) -> int:
    """The global step of `checkpoint-N` (-1 for a folder not named so)."""
    number = checkpoint.name.rsplit("-", 1)[-1]
    return int(number) if number.isdigit() else -1


def resume_point(folder: Path) -> Path | None:
    """The newest complete checkpoint in `folder` (None: start from the beginning). Checkpoints that are
    not complete (a save or a deletion was cut short) are removed, each with one line on stderr."""
    found = sorted((p for p in folder.glob("checkpoint-*") if p.is_dir() and checkpoint_step(p) >= 0),
                   key=checkpoint_step, reverse=True)
    chosen = None
    for checkpoint in found:
        if complete(checkpoint):
            chosen = chosen or checkpoint
        else:
            print(f"kdbench: removed checkpoint {checkpoint}: not whole (the run was stopped while it was being "
                  "written or deleted)", file=sys.stderr, flush=True)
            shutil.rmtree(checkpoint, ignore_errors=True)
    return chosen


def seconds_before(checkpoint: Path | None) -> dict[str, float]:
    """Training and evaluation seconds the run had spent when `checkpoint` was saved (zero without one,
    or for a checkpoint written before kdbench kept them)."""
    if checkpoint is None:
        return dict.fromkeys(PHASES, 0.0)
    callbacks = json.loads((checkpoint / STATE_FILE).read_text()).get("stateful_callbacks", {})
    saved = callbacks.get(RunClock.__name__, {}).get("attributes", {}).get("seconds", {})
    return {phase: float(saved.get(phase, 0.0)) for phase in PHASES}


class RunClock(TrainerCallback, ExportableState):
    """The run's training and evaluation seconds so far, counted from `before` (the time spent before
    a resume) and saved in every checkpoint's trainer state. Evaluation is timed by `timer`."""

    def __init__(self, timer: PhaseTimer, before: dict[str, float]):
        self.timer, self.before = timer, before
        self.started: float | None = None
        self.evaluation_at_start = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.started, self.evaluation_at_start = time.perf_counter(), self.timer.seconds["evaluation"]

    def seconds(self) -> dict[str, float]:
        if self.started is None:
            return dict(self.before)
        evaluation = self.timer.seconds["evaluation"] - self.evaluation_at_start
        return {"training": self.before["training"] + time.perf_counter() - self.started - evaluation,
                "evaluation": self.before["evaluation"] + evaluation}

    def state(self) -> dict:
        return {"args": {}, "attributes": {"seconds": self.seconds()}}


class PartsState(TrainerCallback, ExportableState):
    """Runs the parts' per-step work and keeps their state in every checkpoint.

    After each optimiser step: the optimisers parts added (`context.add_parameters`) step, with their
    gradients averaged over data-parallel workers (their parameters are not in the student's DDP
    wrapper) and clipped where asked, and are zeroed; the scheme's `after_step` and the parts' step
    callbacks run. At each save, every part's `state_dict()` and those optimisers' states go to
    `PARTS_FILE` in the checkpoint (written aside, then renamed); the trainer state names the file, so
    a checkpoint without it is not whole."""

    def __init__(self, parts: dict[str, TrainingPart], context: TrainingContext):
        self.parts, self.context = parts, context  # parts by role: "method", "objective", "scheme"

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.context.state, self.context.model = state, model  # this training's state (a resumed one included)

    def on_optimizer_step(self, args, state, control, **kwargs):
        for optimizer in self.context.optimizers:
            for group in optimizer.param_groups:
                _average_across_workers(group["params"])
                if group.get("max_grad_norm"):
                    torch.nn.utils.clip_grad_norm_(group["params"], group["max_grad_norm"])
            optimizer.step()
            optimizer.zero_grad()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.parts["scheme"].after_step(TrainingContext.unwrap(model))
        for callback in self.context.step_callbacks:
            callback(self.context)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            target = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}" / PARTS_FILE
            partial = target.with_name(f".{PARTS_FILE}.partial")
            torch.save({"parts": {name: part.state_dict() for name, part in self.parts.items()},
                        "classes": self._classes(),
                        "optimizers": [optimizer.state_dict() for optimizer in self.context.optimizers]}, partial)
            partial.replace(target)

    def restore(self, checkpoint: Path, roles: tuple[str, ...] | None = None) -> None:
        """The parts' state (and their optimisers') as saved in `checkpoint`; with `roles`, only those
        parts' states."""
        saved = torch.load(checkpoint / PARTS_FILE, weights_only=False)
        if saved.get("classes", self._classes()) != self._classes():
            raise KdbenchError(f"{checkpoint} was trained with {saved['classes']}, not {self._classes()}: resume with "
                               "the same --method, --objective and --scheme, or start in another --output-dir")
        for name, part in self.parts.items():
            if roles is None or name in roles:
                part.load_state_dict(saved["parts"].get(name, {}))
        if roles is None:
            for optimizer, optimizer_state in zip(self.context.optimizers, saved["optimizers"]):
                optimizer.load_state_dict(optimizer_state)

    def state(self) -> dict:
        return {"args": {}, "attributes": {"file": PARTS_FILE}}

    def _classes(self) -> dict[str, str]:
        return {role: f"{type(part).__module__}.{type(part).__qualname__}" for role, part in self.parts.items()}


def _average_across_workers(params: list[torch.nn.Parameter]) -> None:
    """Average the gradients of `params` over the data-parallel workers (the parts of every worker take
    the same steps, so the same parameters have gradients on each)."""
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    workers = torch.distributed.get_world_size() if distributed else 1
    if workers == 1:
        return
    for p in params:
        if p.grad is not None:
            torch.distributed.all_reduce(p.grad)
            p.grad /= workers



class TrajectorySaver(TrainerCallback):
    """Saves the model at `count` evenly spaced steps of the training, the last at its final step, into
    `folder/step-N` (Pro-KD's teacher trajectory, `RunConfig.teacher_trajectory`; `bench.parts.models.trajectory`
    lists them). A step saved before an
    interruption stays; a resumed training saves the others."""

    def __init__(self, count: int, folder: Path, tokenizer):
        self.count, self.folder, self.tokenizer = count, folder, tokenizer
        self.steps: list[int] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.steps = sorted({max(1, round(k * state.max_steps / self.count)) for k in range(1, self.count + 1)})

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step in self.steps and state.is_world_process_zero:
            target = self.folder / f"step-{state.global_step}"
            TrainingContext.unwrap(model).save_pretrained(target)
            self.tokenizer.save_pretrained(target)

