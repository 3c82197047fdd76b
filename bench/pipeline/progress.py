"""Trainer's progress display, made readable: one bar with the running loss, one line per evaluation;
and the libraries' own chatter (loading bars, Optuna's tracebacks of expected failures) kept quiet."""

from __future__ import annotations

import logging

from transformers.trainer_callback import ProgressCallback

from bench.parts.errors import KdbenchError


class LossProgressCallback(ProgressCallback):
    """Trainer's progress bar, with the latest loss and learning rate shown on the bar, and one line
    per evaluation instead of a bar per evaluation."""

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        pass

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.training_bar is not None and logs and "loss" in logs:
            self.training_bar.set_postfix(loss=f"{logs['loss']:.4f}", lr=f"{logs.get('learning_rate', 0):.2e}")
        elif state.is_world_process_zero and logs and any(k.startswith("eval_") for k in logs):
            shown = {k: round(v, 4) for k, v in logs.items() if k.endswith(("_score", "accuracy", "eval_loss"))}
            (self.training_bar.write if self.training_bar else print)(f"step {state.global_step}: {shown}")


def use_loss_progress(trainer) -> None:
    """Replace a Trainer's default progress callback (a bar per evaluation, a dict per log) by ours."""
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(LossProgressCallback)


def close_progress(trainer) -> None:
    """Close the bar of a run that was interrupted now, so it is not redrawn after the error message."""
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, ProgressCallback) and callback.training_bar is not None:
            callback.training_bar.close()


def quiet_libraries() -> None:
    """Keep the training progress bar; drop per-file loading bars and load reports."""
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    # a trial that fails on a user error or Ctrl-C is reported in one line by `main`, not by Optuna's traceback
    logging.getLogger("optuna.study._optimize").addFilter(_expected_failure_filter)


def _expected_failure_filter(record: logging.LogRecord) -> bool:
    """False (drop) for Optuna's "trial failed" lines about a KdbenchError or a KeyboardInterrupt."""
    error = record.exc_info[1] if record.exc_info else None
    return not (isinstance(error, (KdbenchError, KeyboardInterrupt))
                or record.getMessage().endswith("failed with value None."))
