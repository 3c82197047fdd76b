"""General distillation on plain text: the first stage of KroneckerBERT (Tahaei et al., NAACL 2022), as
of TinyBERT. A student made from the pre-trained (not fine-tuned) teacher, by default a KroneckerBERT one,
learns the teacher's hidden states (the embedding output included) and attention maps layer to layer on the
lines of a text file, with no labels and no logits: the loss is `tinybert`'s intermediate terms
(objectives/tinybert.py, with its departures). The folder it writes is the student of the second stage,
task distillation: `kdbench distill --student FOLDER --objective tinybert` (loaded with its factorisation).

The paper runs it on 10% of English Wikipedia for 3 epochs at length 512; docs/objectives.md gives what one
epoch costs here. The result is cached like a generator: keyed by the teacher's weights, the text, the
student and the settings, sealed with checksums, verified before reuse.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import datasets
import torch
from transformers import DataCollatorWithPadding, PreTrainedModel, Trainer, TrainingArguments, set_seed

from bench.parts.context import Batch, TrainingContext
from bench.parts.errors import KdbenchError
from bench.parts.models import frozen, load_classifier, load_tokenizer
from bench.parts.outputs import ATTENTIONS, forward
from bench.parts.tasks import FileLayout, TaskSpec
from bench.pipeline.cache import cache_root, digest, model_fingerprint
from bench.pipeline.config import GeneralKDSettings
from bench.pipeline.integrity import folder_damage, holds_entry, sealed_folder, usable
from bench.pipeline.progress import use_loss_progress
from bench.pipeline.storage import write_json
from bench.pipeline.students import build_student, layer_map
from objectives.registry import get_objective
from students.registry import split_student, student_text

INFO_FILE = "general-kd.json"  # written last before the checksums; marks a general-KD folder
# A stand-in task: the models are built as classifiers, as every student is; the head is neither trained nor saved
TEXT_ONLY = TaskSpec(name="text", glue_dir="", hub_config="", hub_text_fields=("text",), label_names=("0", "1"),
                     label_values=("0", "1"), metrics=(), splits={"train": FileLayout("", False, (0,), None)})


def read_lines(path: str | Path, max_lines: int = 0) -> list[str]:
    """The non-empty lines of a UTF-8 text file, stripped (the first `max_lines`; 0: all)."""
    path = Path(path)
    if not path.is_file():
        raise KdbenchError(f"text file {path} not found: pass a UTF-8 file of one text per line")
    lines = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError as error:
                raise KdbenchError(f"{path}, line {number}: not UTF-8 ({error.reason}); convert the file, e.g. "
                                   f"`iconv -t utf-8`") from None
            if text:
                lines.append(text)
            if max_lines and len(lines) == max_lines:
                break
    if len(lines) < 2:
        raise KdbenchError(f"{path} has {len(lines)} non-empty line(s): general KD needs at least 2 (one held out)")
    return lines


def general_kd(text_file: str | Path, teacher_name: str, student: str, student_params: dict | None = None,
               settings: GeneralKDSettings | None = None, *, cache_dir: str | Path | None = None,
               output_dir: str | Path | None = None) -> tuple[Path, bool]:
    """Distil `student` (built from the pre-trained `teacher_name`) on the lines of `text_file`, or reuse the
    cached result. Returns the student's folder (model without a task head, tokenizer, and `general-kd.json`
    with the settings, the held-out loss before and after, and the time) and whether it came from the cache."""
    settings = settings or GeneralKDSettings()
    student, student_params = split_student(student, student_params)
    lines = read_lines(text_file, settings.max_lines)
    held_out = max(1, min(settings.eval_lines, len(lines) // 10))
    tokenizer = load_tokenizer(teacher_name)
    set_seed(settings.seed)  # the stand-in head, new, is part of the cache key
    teacher = frozen(load_classifier(teacher_name, TEXT_ONLY))
    model = build_student(student, teacher, TEXT_ONLY, student_params)
    name = student_text(student, student_params)
    if model.config.hidden_size != teacher.config.hidden_size:
        raise KdbenchError(f"general KD here matches states without a projection: student {name} is "
                           f"{model.config.hidden_size} wide and the teacher {teacher.config.hidden_size}; use a "
                           "student of the teacher's width (kronecker:, teacher-layers:)")
    text_hash = hashlib.blake2b("\n".join(lines).encode(), digest_size=12).hexdigest()
    key = digest(model_fingerprint(teacher), text_hash, name, asdict(settings))
    folder = Path(output_dir) if output_dir else cache_root(cache_dir) / "students" / f"general-kd-{key}"
    if holds_entry(folder, INFO_FILE) and usable(folder, folder_damage(folder)):
        return folder, True
    if folder.exists() and any(folder.iterdir()):
        raise KdbenchError(f"{folder} exists and is not a general-KD folder: choose a new or empty --output-dir")
    with sealed_folder(folder) as partial:
        pairs = layer_map(student, model, teacher, student_params)
        info = _train(model, teacher, tokenizer, lines[:-held_out], lines[-held_out:], name, pairs, settings, partial)
        write_json(partial / INFO_FILE, {"teacher": teacher_name, "student": name, "text_file": str(text_file),
                                         "text_blake2b": text_hash, **info})
    return folder, False


class _GeneralKDTrainer(Trainer):
    """Trainer whose loss is the objective's layer-wise terms between the student and the frozen teacher."""

    loss_is_scaled_for_ga = False  # a per-batch mean

    def __init__(self, *args, objective, **kwargs):
        super().__init__(*args, **kwargs)
        self.objective = objective

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        context = self.objective.context
        batch = Batch(inputs, None, teacher=context.teacher_forward(inputs, self.objective.reads),
                      student=forward(model, inputs, self.objective.reads))
        loss = self.objective.intermediate(batch).mean()
        return (loss, {"logits": batch.student.logits}) if return_outputs else loss

    @torch.no_grad()
    def held_out_loss(self) -> float:
        """The loss on the held-out lines, per line, in eval mode (Trainer's `evaluate` computes a loss only
        where the batches have labels)."""
        self.model.eval()
        total, lines = 0.0, 0
        for inputs in self.get_eval_dataloader():
            inputs = self._prepare_inputs(inputs)
            size = len(inputs["input_ids"])
            total, lines = total + self.compute_loss(self.model, inputs).item() * size, lines + size
        return total / lines


def _train(model: PreTrainedModel, teacher: PreTrainedModel, tokenizer, train_lines: list[str], eval_lines: list[str],
           name: str, pairs: dict[int, int], settings: GeneralKDSettings, folder: Path) -> dict:
    """The training, with `transformers.Trainer`; saves the student (its task head left out) and the tokenizer
    to `folder` and returns what `general-kd.json` records."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    teacher, model = teacher.to(device), model.to(device)
    for each in (teacher, model):
        each.set_attn_implementation("eager")  # PyTorch's fused attention does not return its probabilities
    context = TrainingContext(task=TEXT_ONLY, train_size=len(train_lines), teacher="", teacher_model=teacher,
                              tokenizer=tokenizer, device=device, layer_map=pairs)
    part = get_objective("tinybert")
    objective = part.implementation(part.parse_params({"hidden_weight": settings.hidden_weight,
                                                       "attention_weight": settings.attention_weight}), context)
    if ATTENTIONS in objective.reads and settings.attention_weight and (
            model.config.num_attention_heads != teacher.config.num_attention_heads):
        raise KdbenchError(f"attention matching needs as many heads in student {name} as in the teacher: "
                           "pass --attention-weight 0")

    def encode(text: list[str]) -> datasets.Dataset:
        return datasets.Dataset.from_dict(dict(tokenizer(text, truncation=True, max_length=settings.max_length)))

    train, dev = encode(train_lines), encode(eval_lines)
    trainer = _GeneralKDTrainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(folder / "checkpoints"),
            learning_rate=settings.learning_rate,
            max_steps=settings.max_steps,
            num_train_epochs=settings.num_train_epochs,
            per_device_train_batch_size=settings.per_device_train_batch_size,
            per_device_eval_batch_size=64,
            warmup_steps=0.1,
            max_grad_norm=1.0,
            seed=settings.seed,
            eval_strategy="no",
            save_strategy="no",
            logging_steps=10,
            use_cpu=device.type == "cpu",
            bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
            report_to="none",
            disable_tqdm=False,  # our progress bar (use_loss_progress), not a printed dict per log
            dataloader_num_workers=0,
            remove_unused_columns=False,
            label_names=[],
        ),
        train_dataset=train,
        eval_dataset=dev,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        objective=objective,
    )
    use_loss_progress(trainer)
    loss_before = trainer.held_out_loss()
    started = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - started
    loss_after = trainer.held_out_loss()
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    encoder = {key: value for key, value in model.state_dict().items() if not key.startswith("classifier.")}
    model.save_pretrained(folder, state_dict=encoder)
    tokenizer.save_pretrained(folder)
    tokens = sum(map(len, train["input_ids"]))
    return {"train_lines": len(train_lines), "eval_lines": len(eval_lines), "train_tokens": tokens,
            "settings": asdict(settings), "layer_map": pairs, "steps": trainer.state.global_step,
            "parameters": sum(p.numel() for n, p in model.named_parameters() if not n.startswith("classifier.")),
             "eval_loss_before": loss_before,
            "eval_loss_after": loss_after, "train_seconds": round(train_seconds, 1),
            "train_tokens_per_second": round(tokens * (trainer.state.epoch or 0) / train_seconds, 1)}
