"""The three runs of the harness, each writing one run record:

  finetune-teacher  pre-trained encoder -> task teacher (cached, reused by later runs)
  finetune          student trained on labels only: the no-KD baseline
  distill           student trained on the teacher's cached soft labels with the KD loss

and `rerun_config`, which takes a record's stored config to run it again (`kdbench rerun`).

Data flows one way: data -> teacher -> method, objective and scheme -> student training -> run record.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import datasets
import torch
from filelock import FileLock
from transformers import PreTrainedModel, TrainerCallback, set_seed

from bench.parts.context import EXAMPLE_ID, TrainingContext
from bench.parts.errors import KdbenchError
from bench.parts.features import MODEL_INPUTS, TEACHER_LOGITS, Collator, tokenize
from bench.parts.models import TRAJECTORY, frozen, load_classifier, load_tokenizer, trajectory
from bench.parts.origins import ORIGINAL, rows_by_source, with_origins
from bench.parts.outputs import ATTENTIONS
from bench.pipeline.attack import attack_recipe_names, attack_run, check_attack
from bench.pipeline.cache import (cache_root, cached_teacher_logits, dataset_fingerprint, digest, model_fingerprint,
                                  predict_logits)
from bench.pipeline.config import DataConfig, RunConfig, stored, train_identity
from bench.pipeline.data import TaskData, load_data
from bench.pipeline.integrity import folder_damage, holds_entry, seal, usable
from bench.pipeline.ood import OODData, check_eval_tasks, load_ood_sets, score_ood
from bench.pipeline.pools import POOL_ORIGINS, cached_pool
from bench.pipeline.records import (RECORD_FILE, TIMING_SUFFIXES, PhaseTimer, read_record, read_run, with_environment,
                                    write_record)
from bench.pipeline.storage import publish_directory
from bench.pipeline.checkpoints import TrajectorySaver
from bench.pipeline.choice import ChosenParts, choose_parts
from bench.pipeline.students import build_student, layer_map, parse_student
from bench.pipeline.teacher_states import TeacherStates, cached_teacher_states
from bench.pipeline.training import RunParts, check_tracker, distributed_state, train
from bench.roles import ROLES
from methods.base import CHANGES_STEP, MAKES_POOL
from selection.base import Selector
from students.registry import student_text


@dataclass
class PreparedData:
    data: TaskData
    train: datasets.Dataset
    evals: dict[str, datasets.Dataset]
    ood: list[tuple[OODData, datasets.Dataset]]  # each out-of-domain set and its tokenised rows


def prepare_data(config: DataConfig, tokenizer, cache_dir: str | Path | None = None) -> PreparedData:
    """Load the task (GLUE or own files) and its out-of-domain sets, and tokenise them."""
    data = load_data(config)
    ood = load_ood_sets(config, data.task, cache_dir)
    tokenised = {name: tokenize(ds, tokenizer, config.max_length) for name, ds in data.splits.items()}
    return PreparedData(data, tokenised["train"], {s: tokenised[s] for s in data.task.eval_splits},
                        [(each, tokenize(each.rows, tokenizer, config.max_length)) for each in ood])


def default_output_dir(kind: str, task: str) -> Path:
    return Path("kdbench-results") / kind / task / datetime.now().strftime("%Y%m%d-%H%M%S-%f")


def _record(kind: str, config: RunConfig, prepared: PreparedData, model: PreTrainedModel, result, timer: PhaseTimer,
            started: float, **extra) -> dict:
    primary = next(iter(prepared.evals))
    best = next((e for e in result.evaluations if e["step"] == result.best_step), None)
    training_s = timer.seconds["training"]
    before = (result.resumed_from or {}).get("seconds_before", {})
    return {
        "kind": kind,
        "task": prepared.data.task.name,
        "method": config.method,
        "seed": config.train.seed,
        "config": stored(config),
        "data": {"source": prepared.data.source, "train_examples": len(prepared.train),
                 "eval_examples": {name: len(ds) for name, ds in prepared.evals.items()},
                 "label_noise": prepared.data.label_noise},
        "model": {"parameters": model.num_parameters(), "layers": model.config.num_hidden_layers,
                  "hidden_size": model.config.hidden_size},
        **extra,
        "evaluations": result.evaluations,
        "training_loss": result.training_loss,
        "best": {"metric": f"{primary}_score", "value": result.best_metric, "step": result.best_step,
                 "epoch": result.best_epoch,
                 "metrics": {k.removeprefix("eval_"): v for k, v in (best or {}).items()
                             if k.startswith("eval_") and not k.endswith(TIMING_SUFFIXES)}},
        "timings_s": {**{k: round(v, 3) for k, v in timer.seconds.items()},
                      "total": round(time.perf_counter() - started + sum(before.values()), 3)},
        "resumed_from": result.resumed_from,  # a resumed run's timings count the time before it too
        **({"restart": result.restart} if result.restart else {}),  # a second phase started afresh (annealing)
        "predictions": result.predictions,  # each dev example's prediction at the kept weights
        "throughput": {"train_examples": result.train_examples_seen, "global_steps": result.global_step,
                       "train_examples_per_s": result.train_examples_seen / training_s if training_s else None,
                       "world_size": result.world_size},
    }


def _finish(kind: str, config: RunConfig, prepared: PreparedData, model: PreTrainedModel, tokenizer, result,
            timer: PhaseTimer, started: float, output_dir: Path, model_dir: Path | None = None, **extra) -> dict:
    """Score the out-of-domain sets and attack the kept weights (as the config asks), save the best model and
    write the record, on the main process only; the record goes last."""
    if prepared.ood:
        with timer.phase("ood_evaluation"):
            extra["ood"] = {data.name: score_ood(data, predict_logits(model, rows, Collator(tokenizer),
                                                                      config.train.per_device_eval_batch_size,
                                                                      desc=f"{data.name} predictions"),
                                                 prepared.data.task) for data, rows in prepared.ood}
    if attack_recipe_names(config.data):
        with timer.phase("attack"):
            extra["attack"] = attack_run(model, tokenizer, prepared.data, config.data)
    record = with_environment(_record(kind, config, prepared, model, result, timer, started, **extra))
    if distributed_state().is_main_process:
        model.save_pretrained(model_dir or output_dir / "model")
        tokenizer.save_pretrained(model_dir or output_dir / "model")
        write_record(output_dir, record)
    return record


def teacher_cache_dir(config: RunConfig, prepared: PreparedData, base: PreTrainedModel) -> Path:
    """Where the teacher fine-tuned from `base` on this data with these settings is cached; keyed by
    the weights, not the name, so `minilm` and its hub id share one entry."""
    trajectory_key = (config.teacher_trajectory,) if config.teacher_trajectory else ()  # earlier teachers keep theirs
    key = digest(model_fingerprint(base), dataset_fingerprint(prepared.train),
                 {name: dataset_fingerprint(ds) for name, ds in prepared.evals.items()}, train_identity(config.teacher_train),
                 *trajectory_key)
    return cache_root(config.cache_dir) / "teachers" / f"{prepared.data.task.name}-{key}"


def finetune_teacher(config: RunConfig) -> tuple[Path, dict, bool]:
    """Fine-tune the pre-trained encoder `config.student` names on the task as a teacher, or reuse the cached one; returns its folder
    (a model folder with the run record inside), its record and whether it came from the cache.
    The folder appears only once complete, sealed with its checksums; an interrupted fine-tuning
    resumes from its checkpoint. A cached folder is verified before reuse (`bench.pipeline.integrity`): a
    damaged one is reported, discarded and the teacher fine-tuned again.
    Independent processes asking for the same teacher (workers of one ablation) take turns on a
    file lock: one trains, the others then read its folder. Ranks of one data-parallel launch
    train together instead, so they skip the lock."""
    check_tracker(config.teacher_train)
    # out-of-domain sets and attacks test students; a teacher's folder is cached across them
    config = replace(config, data=replace(config.data, eval_task="", attack_recipe=""))
    started, timer = time.perf_counter(), PhaseTimer()
    tokenizer = load_tokenizer(_layer_source(config)[0])
    with timer.phase("data"):
        prepared = prepare_data(config.data, tokenizer)
    set_seed(config.teacher_train.seed)  # the new task head's initialisation is part of the key
    model = build_student(config.student, None, prepared.data.task, config.student_params)
    folder = Path(config.output_dir) if config.output_dir else teacher_cache_dir(config, prepared, model)
    state = distributed_state()
    partial = folder.parent / f".{folder.name}.partial"
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder.parent / f".{folder.name}.lock")  # the lock file stays; it holds nothing
    with lock if state.num_processes == 1 else contextlib.nullcontext():
        with state.main_process_first():  # ranks of one launch: one verifies (and discards a damaged folder) first
            cached = holds_entry(folder, RECORD_FILE) and usable(folder, folder_damage(folder))
        if cached:
            return folder, read_record(folder), True
        saver = [TrajectorySaver(config.teacher_trajectory, partial / TRAJECTORY, tokenizer)] if config.teacher_trajectory else []
        model, result = train(model, tokenizer, prepared.train, prepared.evals, prepared.data.task,
                              config.teacher_train, partial, timer, resume=True, callbacks=saver)
        teacher_config = replace(config, train=config.teacher_train)
        record = _finish("finetune-teacher", teacher_config, prepared, model, tokenizer, result, timer, started,
                         partial, model_dir=partial, **({"trajectory": [str(path.relative_to(partial))
                                                                         for path in trajectory(partial)]}
                                                         if saver else {}))
        if state.is_main_process:
            seal(partial)
            publish_directory(partial, folder)
        state.wait_for_everyone()
    return folder, record, False


def _student(config: RunConfig, task, teacher: PreTrainedModel | None) -> PreTrainedModel:
    set_seed(config.train.seed)
    student = build_student(config.student, teacher, task, config.student_params)
    if teacher is not None and distributed_state().is_main_process:
        print(f"student {student_text(config.student, config.student_params)}: {student.num_parameters():,} "
              f"parameters, {teacher.num_parameters() / student.num_parameters():.1f}x fewer than the teacher's "
              f"{teacher.num_parameters():,}", flush=True)
    return student


def _layer_source(config: RunConfig) -> tuple[str, bool]:
    """The model whose tokenizer (and, for built students, layers or config) the student shares, and
    whether the student is built from it."""
    builder, params = parse_student(config.student, config.student_params)
    if not builder.implementation.needs_teacher:
        return config.teacher or params.model, False
    if config.teacher is None:
        raise KdbenchError(f"student {student_text(config.student, config.student_params)!r} is built from a "
                           "teacher: pass --teacher")
    return config.teacher, True


def _parts(chosen: ChosenParts, context: TrainingContext, *, distill: bool) -> RunParts:
    """The run's objective and selector (distill only), in-loop method (if it composes one) and scheme, built on
    `context`."""
    build = lambda each: each.part.implementation(each.params, context)  # noqa: E731
    step = chosen.method(CHANGES_STEP) if distill else None
    return RunParts(context, build(chosen["scheme"]), objective=build(chosen["objective"]) if distill else None,
                    in_loop=build(step) if step is not None else None,
                    selector=build(chosen["selector"]) if distill else None)


def _parts_info(chosen: ChosenParts, parts: RunParts) -> dict:
    """What the record keeps of each part but the method present: name, label, parameters, what each measured."""
    info = {}
    for role in (role.name for role in ROLES[1:]):
        built = parts.named().get(role)
        if built is not None:
            info[f"{role}_info"] = {**chosen[role].part.describe(chosen[role].params), "measured": built.report() or None}
    return info


def _warn(measured: dict | None) -> None:
    if measured and "warning" in measured and distributed_state().is_main_process:
        print(f"kdbench: warning: {measured['warning']}", file=sys.stderr, flush=True)


def run_finetune(config: RunConfig, *, callbacks: Sequence[TrainerCallback] = ()) -> dict:
    """The no-KD baseline: the student trained on hard labels only, under the run's scheme. A
    `teacher-layers:`/`fresh:` student is built from `--teacher`, exactly as `distill` builds it, so the
    two start alike. `callbacks` join the Trainer's."""
    check_tracker(config.train)
    check_eval_tasks(config.data)
    check_attack(config.data)
    chosen = choose_parts(config, distill=False)
    started, timer = time.perf_counter(), PhaseTimer()
    source, built_from_source = _layer_source(config)
    tokenizer = load_tokenizer(source)
    with timer.phase("data"):
        prepared = prepare_data(config.data, tokenizer, config.cache_dir)
    task = prepared.data.task
    teacher = load_classifier(source, task) if built_from_source else None
    student = _student(config, task, teacher)
    output_dir = Path(config.output_dir or default_output_dir("finetune", task.name))
    context = TrainingContext(task=task, train_size=len(prepared.train), teacher=source, tokenizer=tokenizer,
                              cache_dir=config.cache_dir, device=distributed_state().device, kd=config.kd)
    parts = _parts(chosen, context, distill=False)
    student, result = train(student, tokenizer, prepared.train, prepared.evals, task, config.train, output_dir,
                            timer, parts=parts, resume=config.resume, callbacks=callbacks)
    info = _parts_info(chosen, parts)
    _warn(info["scheme_info"]["measured"])
    return _finish("finetune", config, prepared, student, tokenizer, result, timer, started, output_dir, **info)


def run_distill(config: RunConfig, *, callbacks: Sequence[TrainerCallback] = ()) -> dict:
    """Task-specific KD, in stages: the teacher (fine-tuned first if asked, its logits on the training set
    cached or computed online); the training data (the originals, then the pool of each composed pool method,
    labelled by the teacher, each row with its origin); the row selector's choice of those rows;
    training with the objective, the in-loop method (if any) and the scheme; the record, which counts the
    rows of each source trained on. `callbacks` join the student's Trainer's."""
    if config.teacher is None:
        raise KdbenchError("distill needs --teacher: a fine-tuned teacher folder or hub id "
                           "(or a pre-trained encoder with --finetune-teacher)")
    check_tracker(config.train)
    check_eval_tasks(config.data)
    check_attack(config.data)
    chosen = choose_parts(config)
    pool_methods = chosen.methods_with(MAKES_POOL)
    started, timer = time.perf_counter(), PhaseTimer()
    teacher_name = config.teacher
    if config.finetune_teacher:
        with timer.phase("teacher_finetune"):
            teacher_data = replace(config.data, label_noise=0.0) if config.teacher_clean_labels else config.data
            folder, _, _ = finetune_teacher(replace(config, student=config.teacher, student_params={},
                                                    data=teacher_data, output_dir=None))
        teacher_name = str(folder)
    tokenizer = load_tokenizer(teacher_name)
    with timer.phase("data"):
        prepared = prepare_data(config.data, tokenizer, config.cache_dir)
    task = prepared.data.task
    state = distributed_state()
    with timer.phase("teacher_inference"):
        teacher = frozen(load_classifier(teacher_name, task, require_trained_head=True).to(state.device))
        fingerprint = model_fingerprint(teacher)
        outputs = chosen["teacher_outputs"].part.implementation  # the teacher source: what it caches
        train_ds, outputs_cache_hit = _with_teacher_logits(prepared.train, teacher, tokenizer, config, fingerprint,
                                                           cached=outputs.logits_cached)
    context = TrainingContext(task=task, train_size=len(prepared.train), teacher=teacher_name, teacher_model=teacher,
                              tokenizer=tokenizer, cache_dir=config.cache_dir, device=state.device, kd=config.kd,
                              online_teacher=not outputs.logits_cached)
    rows, pools, operations = [with_origins(train_ds, source=0)], [], [()]
    for source, each in enumerate(pool_methods, start=1):  # each pool a source of rows, in the composition's order
        method, params = each.part, each.params
        with timer.phase("augmentation"):
            with state.main_process_first():  # one process generates and caches, the others read
                pool = cached_pool(method, params, lambda: method.implementation(params, context),
                                   prepared.data.splits["train"], seed=config.pool_seed, cache_dir=config.cache_dir)
        with timer.phase("teacher_labelling"):
            pool_ds = tokenize(pool.examples.remove_columns(list(POOL_ORIGINS)), tokenizer, config.data.max_length)
            pool_ds, _ = _with_teacher_logits(pool_ds, teacher, tokenizer, config, fingerprint,
                                              cached=outputs.logits_cached)
        rows.append(with_origins(pool_ds, source=source, origins=pool.examples.select_columns(list(POOL_ORIGINS))[:]))
        pools.append({"method": method.name, "pool_size": len(pool_ds), "copies": pool.copies,
                      "cache_hit": pool.cache_hit, "generation_s": round(pool.generation_s, 3),
                      "pool_folder": str(pool.folder)})
        operations.append(pool.operations)
    context.sources, context.operations = (ORIGINAL, *(pool["method"] for pool in pools)), tuple(operations)
    train_ds = datasets.concatenate_datasets([rows[0], *(ds.cast(rows[0].features) for ds in rows[1:])])
    parts = _parts(chosen, context, distill=True)
    train_ds = _selected(chosen["selector"].part.name, parts.selector, parts.objective.held_out(train_ds))
    context.teacher_logits_of = functools.partial(_logits_on_rows, rows=train_ds, task=task, tokenizer=tokenizer,
                                                  config=config)
    student = _student(config, task, teacher)
    context.layer_map = layer_map(config.student, student, teacher, config.student_params, config.layer_map)
    if ATTENTIONS in parts.reads:  # PyTorch's fused attention does not return its probabilities
        for model in (student, teacher):
            model.set_attn_implementation("eager")
    states_cache_hit = None
    if outputs.states_cached and parts.reads:
        with timer.phase("teacher_inference"):
            parts.teacher_states, states_cache_hit = _states_on_rows(teacher, train_ds, tokenizer, parts.reads,
                                                                     config, fingerprint)
    output_dir = Path(config.output_dir or default_output_dir("distill", task.name))
    student, result = train(student, tokenizer, train_ds, prepared.evals, task, config.train, output_dir, timer,
                            parts=parts, resume=config.resume, callbacks=callbacks)
    teacher_info = {"name": config.teacher, "folder": teacher_name, "fingerprint": fingerprint,
                    "outputs": config.teacher_outputs, "outputs_cache_hit": outputs_cache_hit,
                    "states_cache_hit": states_cache_hit,
                    "best": read_record(teacher_name)["best"] if (Path(teacher_name) / RECORD_FILE).is_file() else None}
    measured = parts.in_loop.report() if parts.in_loop else None  # e.g. AD2: how large its perturbation was
    info = _parts_info(chosen, parts)
    for report in (measured, info["objective_info"]["measured"], info["scheme_info"]["measured"]):
        _warn(report)
    return _finish("distill", config, prepared, student, tokenizer, result, timer, started, output_dir,
                   teacher=teacher_info, method_info=chosen.method_info(), augmentation=_augmentation(pools, config),
                   training_rows=rows_by_source(train_ds, context.sources), in_loop=measured, **info)


def _augmentation(pools: list[dict], config: RunConfig) -> dict | None:
    """What the record keeps of the pools: their rows and generation seconds together, whether all came from the
    cache, and each pool (a run with one pool also keeps its copies and folder at the top, as before)."""
    if not pools:
        return None
    together = {"pool_size": sum(p["pool_size"] for p in pools), "pool_seed": config.pool_seed,
                "cache_hit": all(p["cache_hit"] for p in pools),
                "generation_s": round(sum(p["generation_s"] for p in pools), 3), "pools": pools}
    return {**together, "copies": pools[0]["copies"], "pool_folder": pools[0]["pool_folder"]} if len(pools) == 1 else together


def _selected(name: str, selector: Selector, rows: datasets.Dataset) -> datasets.Dataset:
    """The rows the run's selector (registered as `name`) keeps, in its order."""
    chosen = selector.select(rows)
    if chosen is None:
        return rows
    if not chosen:
        raise KdbenchError(f"selector {name} kept none of the {len(rows)} training rows")
    return rows.select(chosen)


def _with_teacher_logits(ds: datasets.Dataset, teacher: PreTrainedModel, tokenizer, config: RunConfig,
                         fingerprint: str, *, cached: bool) -> tuple[datasets.Dataset, bool | None]:
    """`ds` with the teacher's logits as a column, computed once per (teacher, data) and cached, and
    whether they came from the cache; `ds` as it is (and None) when the teacher source caches no logits."""
    if not cached:
        return ds, None
    with distributed_state().main_process_first():  # one process computes and caches, the others read
        logits, hit = cached_teacher_logits(teacher, ds, Collator(tokenizer),
                                            batch_size=config.train.per_device_eval_batch_size,
                                            cache_dir=config.cache_dir, teacher_fingerprint=fingerprint)
    if distributed_state().is_main_process:
        print(f"teacher outputs: {len(ds)} x {logits.shape[1]} logits, {logits.nbytes / 1024:.0f} KB, "
              f"{'read from' if hit else 'written to'} {cache_root(config.cache_dir) / 'teacher-outputs'}")
    return ds.add_column(TEACHER_LOGITS, logits.tolist()), hit


def _inputs_by_id(rows: datasets.Dataset) -> tuple[datasets.Dataset, list[int]]:
    """The training rows' model inputs, and each row's example id (as `train` gives them: a row's position
    unless the rows carry ids)."""
    ids = rows[EXAMPLE_ID] if EXAMPLE_ID in rows.column_names else list(range(len(rows)))
    return rows.select_columns([c for c in MODEL_INPUTS if c in rows.column_names]), ids


def _states_on_rows(teacher: PreTrainedModel, rows: datasets.Dataset, tokenizer, reads: frozenset[str],
                    config: RunConfig, fingerprint: str) -> tuple[TeacherStates, bool]:
    """The teacher's hidden states and attentions that the parts read, on the training rows, from the cache
    (a teacher source that caches them: `--teacher-outputs cached-all`), and whether they came from it."""
    inputs, ids = _inputs_by_id(rows)
    with distributed_state().main_process_first():
        return cached_teacher_states(teacher, inputs, ids, reads, collator=Collator(tokenizer),
                                     batch_size=config.train.per_device_eval_batch_size, cache_dir=config.cache_dir,
                                     teacher_fingerprint=fingerprint)


def _logits_on_rows(folder: str, *, rows: datasets.Dataset, task, tokenizer, config: RunConfig) -> torch.Tensor:
    """The logits of the fine-tuned model in `folder` on the training rows, by example id (a row's position),
    from the cache of teacher outputs: `TrainingContext.teacher_logits_of`."""
    model = frozen(load_classifier(folder, task, require_trained_head=True).to(distributed_state().device))
    inputs, ids = _inputs_by_id(rows)
    with distributed_state().main_process_first():
        logits, hit = cached_teacher_logits(model, inputs, Collator(tokenizer),
                                            batch_size=config.train.per_device_eval_batch_size,
                                            cache_dir=config.cache_dir)
    if distributed_state().is_main_process:
        print(f"teacher outputs of {folder}: {len(rows)} x {logits.shape[1]} logits, "
              f"{'read from' if hit else 'written to'} {cache_root(config.cache_dir) / 'teacher-outputs'}")
    by_id = torch.zeros(max(ids) + 1, logits.shape[1])
    by_id[torch.tensor(ids)] = torch.from_numpy(logits)
    return by_id


# Each kind of run record, by the function that runs its config again and returns the new record.
RUNS_BY_KIND: dict[str, Callable[[RunConfig], dict]] = {
    "distill": run_distill, "finetune": run_finetune, "finetune-teacher": lambda config: finetune_teacher(config)[1]}


def rerun_config(record_path: str | Path, output_dir: str | Path | None = None) -> tuple[dict, RunConfig]:
    """The run record at `record_path` (a record.json file or the run folder holding one) and the config
    that runs it again: its stored config, into `output_dir` (default: a new folder, as its command
    makes one). The original's folder, or another holding a record, is refused: a rerun overwrites no
    run. Run it with `RUNS_BY_KIND[record["kind"]]`; an interrupted rerun continues from its last
    checkpoint when given the same `output_dir` again."""
    file, record, config = read_run(record_path, list(RUNS_BY_KIND))
    folder = Path(output_dir or default_output_dir(record["kind"], record["task"]))
    if folder.resolve() == file.parent.resolve():
        raise KdbenchError(f"{folder} is the original run's folder: a rerun goes to another "
                           "(leave --output-dir out for a new one)")
    if (folder / RECORD_FILE).exists():
        raise KdbenchError(f"{folder} holds another run's record: pass another --output-dir")
    return record, replace(config, output_dir=str(folder), resume=True)
