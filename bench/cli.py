"""The `kdbench` command: tasks, methods, finetune-teacher, finetune, distill, rerun, search, worker, results,
make-generator, ablate, speed, report, demo.

Options mirror the config dataclasses field by field (`--learning-rate` or `--learning_rate` for
TrainConfig.learning_rate, ...), so the help text and the run record always agree. Errors the
user can fix print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from collections.abc import Sequence
from pathlib import Path

from bench.catalogue import REGISTRIES
from bench.errors import KdbenchError
from bench.fields import base_type

PROG = "kdbench"
# where ablate, speed and demo write by default: what `kdbench report` reads unless given folders
RESULTS_DIRS = {"ablate": "kdbench-results/ablations", "speed": "kdbench-results/speed", "demo": "kdbench-results/demo"}
# commands that train, generate or search nothing: they import no training library (start in a second)
LIGHT_COMMANDS = ("tasks", "methods", "list", "report", "results")


def add_dataclass_options(parser: argparse.ArgumentParser, cls: type, group: str, *, skip: Sequence[str] = (),
                          defaults: dict | None = None) -> None:
    """One option per field of `cls`, stored as `group.field`."""
    hints = typing.get_type_hints(cls)
    section = parser.add_argument_group(cls.__name__)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind = base_type(hints[f.name])
        default = (defaults or {}).get(f.name, f.default)
        flags = [f"--{f.name.replace('_', '-')}"] + ([f"--{f.name}"] if "_" in f.name else [])
        help_text = f"{f.metadata.get('help', '')} (default: {default})".replace("%", "%%")  # argparse formats help
        if kind is bool:
            section.add_argument(*flags, dest=f"{group}.{f.name}", action=argparse.BooleanOptionalAction,
                                 default=default, help=help_text)
        else:
            section.add_argument(*flags, dest=f"{group}.{f.name}", type=kind, default=default, help=help_text)


def dataclass_from_args(args: argparse.Namespace, cls: type, group: str):
    values = {k.split(".", 1)[1]: v for k, v in vars(args).items() if k.startswith(f"{group}.")}
    return cls(**values)


def add_plugin_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import a module (or .py file) that registers more methods; repeatable")


def add_scheme_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scheme", default="plain", help="training scheme (see `kdbench list schemes`)")
    parser.add_argument("--scheme-param", action="append", default=[], metavar="KEY=VALUE",
                        help="a parameter of the scheme, e.g. --scheme-param start=0.5; repeatable")


def add_method_options(parser: argparse.ArgumentParser) -> None:
    """--method, --param, --objective, --objective-param, --scheme, --scheme-param and --plugin: which
    augmentation method, KD objective and training scheme a run composes, with what settings."""
    parser.add_argument("--method", default="none", help="augmentation method (see `kdbench list methods`)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a parameter of the method, e.g. --param eps=1e-4; repeatable")
    parser.add_argument("--objective", default="kd", help="KD objective (see `kdbench list objectives`)")
    parser.add_argument("--objective-param", action="append", default=[], metavar="KEY=VALUE",
                        help="a parameter of the objective, e.g. --objective-param tau_max=7; repeatable")
    add_scheme_options(parser)
    add_plugin_option(parser)


def build_parser() -> argparse.ArgumentParser:
    from bench.config import (DEFAULT_DEMO_PROFILE, DEMO_METHODS, DEMO_PROFILES, DEMO_TRAIN_EXAMPLES, DataConfig,
                              GeneratorSettings, KDConfig, TrainConfig)

    parser = argparse.ArgumentParser(prog=PROG, description="Data augmentation for task-specific knowledge "
                                     "distillation of pre-trained transformers: one harness, every method.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("tasks", help="list the GLUE tasks and their metrics")
    add_plugin_option(commands.add_parser("methods", help="list the augmentation methods and their parameters "
                                          "(as `kdbench list methods`)"))
    listing = commands.add_parser("list", help="list the registered parts of a kind, with their parameters",
                                  description="List methods, objectives, schemes or students: name, description and "
                                  "parameters (type, default, allowed values).")
    listing.add_argument("kind", choices=tuple(REGISTRIES), help="which kind of part")
    listing.add_argument("pattern", nargs="?", default="*", help="shell-style name pattern, e.g. 'ann*' (default: all)")
    add_plugin_option(listing)

    def run_command(name: str, help_text: str, model_help: str, model_default: str | None) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--output-dir", help="folder for the run record and model (default: kdbench-results/...)")
        sub.add_argument("--cache-dir", help="cache of teachers and teacher outputs "
                         "(default: $KDBENCH_CACHE or ~/.cache/kdbench)")
        flag = "--model" if name == "finetune-teacher" else "--student"
        sub.add_argument(flag, dest="model", default=model_default, required=model_default is None, help=model_help)
        add_dataclass_options(sub, DataConfig, "data")
        add_dataclass_options(sub, TrainConfig, "train")
        return sub

    run_command("finetune-teacher", "fine-tune a pre-trained encoder on the task and save it as a teacher",
                "pre-trained encoder: hub id, folder, or 'minilm' (offline MiniLM)", "minilm")
    student_help = ("student: 'teacher-layers:0,2,4' (layers of --teacher), 'fresh:num_hidden_layers=4,"
                    "hidden_size=256' (teacher architecture, new weights), or a hub id / folder")
    finetune = run_command("finetune", "train a student on labels only (the no-KD baseline)", student_help,
                           "teacher-layers:0,2,4")
    finetune.add_argument("--teacher", help="model the student is built from (for teacher-layers:/fresh:)")
    add_scheme_options(finetune)
    add_plugin_option(finetune)
    finetune.add_argument("--resume", action="store_true", help="resume from the output folder's last checkpoint")
    distill = run_command("distill", "distil a fine-tuned teacher into a student", student_help,
                          "teacher-layers:0,2,4")
    distill.add_argument("--teacher", required=True, help="fine-tuned teacher: folder (from finetune-teacher) or "
                         "hub id; with --finetune-teacher a pre-trained encoder to fine-tune first")
    distill.add_argument("--finetune-teacher", action="store_true",
                         help="fine-tune --teacher on the task first (cached) with default settings")
    distill.add_argument("--teacher-clean-labels", action="store_true",
                         help="with --finetune-teacher and --label-noise: fine-tune the teacher on the clean labels "
                         "(default: on the noisy labels the student sees)")
    add_method_options(distill)
    distill.add_argument("--pool-seed", type=int, default=42,
                         help="seed of a pool method's generation, fixed across training seeds (default: 42)")
    distill.add_argument("--resume", action="store_true", help="resume from the output folder's last checkpoint")
    add_dataclass_options(distill, KDConfig, "kd")
    rerun = commands.add_parser(
        "rerun", help="run a recorded run again into a new folder and compare its best score with the original's",
        description="Rebuild a run's settings from its record, run it again as it ran (distill, finetune or "
        "finetune-teacher) into a new folder, and print the original's and the new best score side by side, and "
        "whether every number is the same (the same seed on the same device gives the same numbers).")
    rerun.add_argument("record", metavar="RECORD", help="a run's record.json, or the run folder holding one")
    rerun.add_argument("--output-dir", help="folder for the new run (default: a new one under "
                       "kdbench-results/KIND/TASK/; never the original's)")
    add_plugin_option(rerun)

    search = run_command("search", "the paper's protocol: learning-rate x batch-size grid, then the best over seeds",
                         student_help, "teacher-layers:0,2,4")
    search.add_argument("--teacher", help="fine-tuned teacher (distill) or the student's layer source")
    search.add_argument("--baseline", choices=("distill", "finetune"), default="distill",
                        help="distill (KD with --method) or finetune (the no-KD baseline)")
    add_method_options(search)
    search.add_argument("--profile", choices=("quick", "paper"), default="quick",
                        help="quick (CPU: subset, length 64, 2 epochs, 2x2 grid) or paper (METHODS.md as is)")
    search.add_argument("--storage", help="Optuna storage: SQLAlchemy URL or journal:PATH "
                        "(default: sqlite:///OUTPUT_DIR/studies.db)")
    add_dataclass_options(search, KDConfig, "kd")
    worker = commands.add_parser("worker", help="join a search started elsewhere (same storage) until it is complete")
    worker.add_argument("--storage", required=True, help="the search's Optuna storage URL")
    worker.add_argument("--study", required=True, help="the search's name (printed by `kdbench search`)")
    worker.add_argument("--output-dir", default="kdbench-results/search", help="folder for this worker's runs")
    worker.add_argument("--data-dir", help="this machine's GLUE folder (default: the one the search was started with)")
    worker.add_argument("--teacher", help="this machine's copy of the search's teacher (default: its stored path)")
    worker.add_argument("--cache-dir", help="this machine's cache (default: the search's)")
    worker.add_argument("--heartbeat-interval", type=int, default=60, metavar="S",
                        help="seconds between a running trial's heartbeats, SQL storages (default: %(default)s)")
    worker.add_argument("--grace-period", type=int, default=180, metavar="S",
                        help="seconds without a heartbeat after which a worker's trial is failed and its point runs "
                        "again (default: %(default)s)")
    add_plugin_option(worker)
    results = commands.add_parser("results", help="export every run of a storage as CSV or Parquet")
    results.add_argument("--storage", default="sqlite:///kdbench-results/search/studies.db", help="Optuna storage")
    results.add_argument("--output", default="kdbench-results/search/results.csv", help="a .csv or .parquet file")

    generator = commands.add_parser(
        "make-generator", help="build a masked-LM generator for the mlm method (offline: no MLM weights exist)",
        description="Continue masked-LM training of an encoder (default: the offline MiniLM; a fine-tuned teacher "
        "folder works too) with a new MLM head tied to its embeddings, on the task's training text; cached. "
        "Pass the printed folder to `kdbench distill --method mlm --param generator=FOLDER`.")
    generator.add_argument("--model", default="minilm", help="encoder: hub id, folder, or 'minilm' (default)")
    generator.add_argument("--output-dir", help="save here instead of the cache")
    generator.add_argument("--cache-dir", help="cache folder (default: $KDBENCH_CACHE or ~/.cache/kdbench)")
    add_dataclass_options(generator, DataConfig, "data")
    add_dataclass_options(generator, GeneratorSettings, "generator")

    ablate = commands.add_parser(
        "ablate", help="run ablation specs (ablations/*.toml) through the search and write their tables",
        description="Each task x variant of the spec is one search (grid, then seeds) in one Optuna storage: "
        "rerun to resume; run the same command on other machines with the same --storage to share the work.")
    ablate.add_argument("specs", nargs="+", metavar="SPEC", help="TOML spec file(s), e.g. ablations/ad2-eps.toml")
    ablate.add_argument("--dry-run", action="store_true", help="check the specs and print what would run")
    speed = commands.add_parser(
        "speed", help="wall-clock and memory of each method of a spec, side by side, with ratios to KD and AD2",
        description="Train each variant of the spec (default: ablations/speed.toml) at the profile's first grid "
        "point, each in a new process with an empty cache, and tabulate generation, teacher, training, "
        "time-to-best, examples/s and peak memory, also divided by plain KD's and AD2's.")
    speed.add_argument("spec", nargs="?", metavar="SPEC", help="TOML spec (default: ablations/speed.toml)")
    speed.add_argument("--repeats", type=int, default=1, help="measurements per variant, interleaved; the "
                       "median is reported (default: 1)")
    for sub, command in ((ablate, "ablate"), (speed, "speed")):
        sub.add_argument("--data-dir", help="GLUE folder (default: $KDBENCH_GLUE_DIR, else the hub)")
        sub.add_argument("--output-dir", default=RESULTS_DIRS[command], help="results folder (default: %(default)s)")
        sub.add_argument("--cache-dir", help="cache of teachers, generators and teacher outputs")
        add_plugin_option(sub)
    ablate.add_argument("--storage", help="Optuna storage shared by workers (default: sqlite:///OUTPUT_DIR/studies.db)")

    report = commands.add_parser(
        "report", help="tables (Markdown, LaTeX) and figures (PDF, PNG) of studies, all shown in index.html",
        description="Read the studies that `kdbench ablate`, `speed` and `demo` wrote (finished or not) and write "
        "their tables (main table, ablation tables, speed table) and figures (ablation curves, dev score against "
        "wall-clock, training curves), with an index.html showing them all.")
    report.add_argument("folders", nargs="*", metavar="RESULTS",
                        help="results folders of ablate, speed or demo (default: those under kdbench-results/)")
    report.add_argument("--study", action="append", help="only this study (repeat for more; default: all found)")
    report.add_argument("--storage", help="Optuna storage of the ablations (default: sqlite:///RESULTS/studies.db)")
    report.add_argument("--output-dir", default="kdbench-results/report", help="report folder (default: %(default)s)")

    demo = commands.add_parser("demo", help="SST-2 subset: teacher, no-KD student, KD student under each method",
                               description="The main job: on a 1,000-example seeded SST-2 subset (max length 64), "
                               "fine-tune the MiniLM teacher (cached), then train a 3-layer student taken from it "
                               "without KD and with KD under each augmentation method, and print dev accuracy and "
                               "wall-clock (augmentation, teacher labelling and training apart).")
    demo.add_argument("--data-dir", help="GLUE folder (default: $KDBENCH_GLUE_DIR, else the hub)")
    demo.add_argument("--output-dir", help=f"folder for the run records (default: {RESULTS_DIRS['demo']}, "
                      f"{RESULTS_DIRS['demo']}-PROFILE for another profile)")
    demo.add_argument("--cache-dir", help="cache of teachers and teacher outputs")
    demo.add_argument("--max-train-examples", type=int, default=DEMO_TRAIN_EXAMPLES,
                      help="training subset size (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=42, help="training seed")
    demo.add_argument("--methods", default=",".join(DEMO_METHODS),
                      help="comma-separated methods to compare (default: %(default)s)")
    demo.add_argument("--profile", default=DEFAULT_DEMO_PROFILE, choices=list(DEMO_PROFILES),
                      help="student setting: " + "; ".join(f"{k}: {v.description}" for k, v in DEMO_PROFILES.items()))
    return parser


def _run_config(args: argparse.Namespace):
    from bench.config import DataConfig, KDConfig, TrainConfig
    from bench.registry import parse_assignment
    from bench.runs import RunConfig

    return RunConfig(
        data=dataclass_from_args(args, DataConfig, "data"),
        train=dataclass_from_args(args, TrainConfig, "train"),
        kd=dataclass_from_args(args, KDConfig, "kd"),
        model=args.model,
        teacher=getattr(args, "teacher", None),
        finetune_teacher=getattr(args, "finetune_teacher", False),
        teacher_clean_labels=getattr(args, "teacher_clean_labels", False),
        method=getattr(args, "method", "none"),
        method_params=dict(map(parse_assignment, getattr(args, "param", []))),
        objective=getattr(args, "objective", "kd"),
        objective_params=dict(map(parse_assignment, getattr(args, "objective_param", []))),
        scheme=getattr(args, "scheme", "plain"),
        scheme_params=dict(map(parse_assignment, getattr(args, "scheme_param", []))),
        pool_seed=getattr(args, "pool_seed", 42),
        output_dir=args.output_dir,
        cache_dir=args.cache_dir,
        resume=getattr(args, "resume", False),
    )


def _validate_names(config, command: str) -> None:
    """Check task, part and parameter names and values before any model or data is loaded."""
    from bench.runs import choose_parts
    from bench.tasks import get_task

    if not config.data.train_file:
        get_task(config.data.task)
    choose_parts(config, distill=command in ("distill", "search"))


def _part_listing(parts: list[dict]) -> str:
    """Each part (a `Part.listing()`) with its kind (for methods), aliases and description, then its
    parameters: name, type, default, help, and the values allowed (choices or range)."""
    blocks = []
    for part in parts:
        kind = f" ({part['kind']})" if part["kind"] != part["family"] else ""
        aliases = f" [also: {', '.join(part['aliases'])}]" if part["aliases"] else ""
        lines = [f"{part['name']}{kind}{aliases}: {part['description']}"]
        for p in part["params"]:
            choices = f" [{'|'.join(map(str, p['choices']))}]" if p["choices"] else ""
            allowed = f"; must be {p['range']}" if p["range"] is not None else ""
            lines.append(f"    {p['name']:16} {p['type']:6} default {p['default']!s:10} {p['help']}{choices}{allowed}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _summary(record: dict) -> str:
    best = record["best"]
    return (f"{record['kind']} {record['task']}: best {best['metric']} = {best['value']:.4f} at step {best['step']}; "
            f"{json.dumps(record['timings_s'])}")


def _rerun_summary(original: dict, record: dict, folder: str) -> str:
    """The original's and the rerun's best scores side by side, and whether every number is the same."""
    from bench.records import evaluation_scores

    before, after = original["best"], record["best"]
    same_evaluations = evaluation_scores(original) == evaluation_scores(record)
    if before["value"] == after["value"] and same_evaluations:
        verdict = f"equal: the same best score and the same evaluations ({len(record['evaluations'])})"
    else:
        verdict = (f"not equal: the best scores differ by {after['value'] - before['value']:+.6f}, the evaluations "
                   f"{'are the same' if same_evaluations else 'differ'}")
        devices = [each.get("environment", {}).get("device") for each in (original, record)]
        if devices[0] != devices[1]:
            verdict += (f"; the original ran on {devices[0]}, the rerun on {devices[1]}: other CPU kernels or "
                        "thread counts round differently, so the same seed gives the same numbers only on the same")
    return (f"{record['kind']} {record['task']} again: {folder}\n"
            f"best {after['metric']}: original {before['value']:.4f} at step {before['step']}, "
            f"rerun {after['value']:.4f} at step {after['step']}\n{verdict}")


def _report_summary(sections, output_dir: str) -> str:
    """Per study: what was written, or what is missing."""
    lines = []
    for section in sections:
        study = section.study
        lines.append(f"{study.name} ({study.kind}, {len(study.runs)} runs): {section.state}")
        lines += [f"  missing: {line}" for line in study.missing]
        lines += [f"  {path}" for path in (*section.files[:1], *section.figures)]
    return "\n".join(lines + [f"report: {Path(output_dir) / 'index.html'}",
                              f"the AD2 paper's claims against these studies: {Path(output_dir) / 'claims.md'}"])


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command not in LIGHT_COMMANDS:
        from bench.progress import quiet_libraries

        quiet_libraries()
    try:
        if args.command == "tasks":
            from bench.tasks import TASKS

            for task in TASKS.values():
                kind = "regression" if task.is_regression else f"{task.num_labels} classes"
                print(f"{task.name:6} {'pair' if task.is_pair else 'single':6} {kind:11} {', '.join(task.metrics)}")
        elif args.command in ("methods", "list"):
            from bench.catalogue import listing
            from bench.registry import load_plugins, resolve

            load_plugins(args.plugin)
            registry = resolve(REGISTRIES[getattr(args, "kind", "methods")])
            parts = listing(registry, getattr(args, "pattern", "*"))
            if not parts:
                raise KdbenchError(f"no {registry.family} matches {args.pattern!r}: "
                                   f"the {registry.plural} are {', '.join(p['name'] for p in listing(registry))}")
            print(_part_listing(parts))
        elif args.command == "demo":
            from bench.demo import run_demo

            methods = [m.strip() for m in args.methods.split(",") if m.strip()]
            from bench.config import DEFAULT_DEMO_PROFILE

            suffix = "" if args.profile == DEFAULT_DEMO_PROFILE else f"-{args.profile}"
            output_dir = args.output_dir or RESULTS_DIRS["demo"] + suffix
            print(run_demo(data_dir=args.data_dir, output_dir=output_dir, cache_dir=args.cache_dir,
                           max_train_examples=args.max_train_examples, seed=args.seed, methods=methods,
                           profile=args.profile))
        elif args.command in ("ablate", "speed"):
            from ablations import SPEC_DIR
            from ablations.spec import load_spec
            from methods import load_plugins

            load_plugins(args.plugin)
            if args.command == "speed":
                from ablations.speed import run_speed

                if args.repeats < 1:
                    raise KdbenchError(f"--repeats must be at least 1, got {args.repeats}")
                spec = load_spec(args.spec or SPEC_DIR / "speed.toml")
                print(run_speed(spec, data_dir=args.data_dir, output_dir=args.output_dir, cache_dir=args.cache_dir,
                                repeats=args.repeats, plugins=args.plugin).read_text())
            else:
                from ablations.study import plan, run_ablation

                specs = [load_spec(path) for path in args.specs]  # all checked before any runs
                if not args.dry_run:
                    from bench.search import check_one_process

                    check_one_process("ablate")
                for spec in specs:
                    print(plan(spec))
                    if not args.dry_run:
                        print(run_ablation(spec, data_dir=args.data_dir, output_dir=args.output_dir,
                                           storage=args.storage, cache_dir=args.cache_dir).read_text())
        elif args.command == "report":
            from reports.report import build_report

            defaults = list(RESULTS_DIRS.values())
            folders = args.folders or [p for p in defaults if Path(p).is_dir()] or defaults
            sections = build_report(folders, args.output_dir, names=args.study, storage=args.storage)
            print(_report_summary(sections, args.output_dir))
            if all(section.tables is None for section in sections):
                raise KdbenchError("no study has a finished run yet: nothing to tabulate (see the lines above)")
        elif args.command in ("worker", "results"):
            from bench.run_table import export_results
            from bench.studies import open_storage

            if args.command == "worker":
                from bench.search import check_one_process, join_search, run_worker
                from methods import load_plugins

                check_one_process("worker")
                load_plugins(args.plugin)
                store = open_storage(args.storage, must_exist=True, heartbeat_interval=args.heartbeat_interval,
                                     grace_period=args.grace_period)
                search = join_search(store, args.study, data_dir=args.data_dir, teacher=args.teacher,
                                     cache_dir=args.cache_dir)
                print(json.dumps(run_worker(store, search, args.output_dir), indent=2))
            else:
                table = export_results(open_storage(args.storage, must_exist=True), args.output)
                print(_results_summary(table, args.output))
        elif args.command == "make-generator":
            from bench.config import DataConfig, GeneratorSettings
            from bench.generator import make_generator
            from bench.tasks import get_task

            data = dataclass_from_args(args, DataConfig, "data")
            if not data.train_file:
                get_task(data.task)
            folder, cached = make_generator(args.model, data, dataclass_from_args(args, GeneratorSettings, "generator"),
                                            cache_dir=args.cache_dir, output_dir=args.output_dir)
            info = json.loads((folder / "generator.json").read_text())
            print(f"generator{' (cached)' if cached else ''}: {folder}\nmasked-LM dev loss "
                  f"{info['eval_loss_before']:.3f} -> {info['eval_loss_after']:.3f} in {info['train_seconds']} s; "
                  f"use it with --method mlm --param generator={folder}")
        elif args.command == "rerun":
            from bench.runs import RUNS_BY_KIND, rerun_config
            from methods import load_plugins

            load_plugins(args.plugin)
            original, config = rerun_config(args.record, args.output_dir)
            args.output_dir = config.output_dir  # for the message if interrupted
            print(_rerun_summary(original, RUNS_BY_KIND[original["kind"]](config), config.output_dir))
        else:
            from bench.runs import default_output_dir, finetune_teacher, run_distill, run_finetune

            from methods import load_plugins

            load_plugins(getattr(args, "plugin", []))
            config = _run_config(args)
            _validate_names(config, args.command)
            if args.command in ("distill", "finetune") and not config.output_dir:
                task = "custom" if config.data.train_file else config.data.task
                config.output_dir = args.output_dir = str(default_output_dir(args.command, task))
            if args.command == "search":
                from bench.search import check_one_process, search

                check_one_process("search")
                summary = search(config, kind=args.baseline, profile=args.profile, storage=args.storage,
                                 results_dir=args.output_dir or "kdbench-results/search")
                print(json.dumps(summary, indent=2))
            elif args.command == "finetune-teacher":
                config.teacher_train = config.train
                folder, record, cached = finetune_teacher(config)
                print(f"teacher{' (cached)' if cached else ''}: {folder}\n{_summary(record)}")
            else:
                record = (run_distill if args.command == "distill" else run_finetune)(config)
                print(_summary(record))
    except KdbenchError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted: {_kept_after_interrupt(args)}", file=sys.stderr)
        return 130
    return 0


def _kept_after_interrupt(args: argparse.Namespace) -> str:
    """What an interrupted command kept, and how to go on from there."""
    if args.command in ("search", "ablate", "worker"):
        return ("finished runs are kept in the Optuna storage, and the interrupted run's last checkpoint in its run "
                "folder; run the same command again to resume (the interrupted point runs again, from that checkpoint)")
    if args.command in ("distill", "finetune"):
        return (f"the last checkpoint is kept in {Path(args.output_dir) / 'checkpoints'}; no record was written; "
                f"add --resume --output-dir {args.output_dir} to the same command to continue from it")
    if args.command == "finetune-teacher":
        return "the last checkpoint is kept in the cache; the same command continues from it"
    if args.command == "rerun" and args.output_dir:
        return (f"the original run is untouched; the rerun kept its last checkpoint and wrote no record; "
                f"`{PROG} rerun {args.record} --output-dir {args.output_dir}` continues from it")
    if args.command == "demo":
        return ("the cached teacher, pools, generator and teacher outputs are kept; `kdbench demo` again reuses them "
                "and trains the students anew")
    return "nothing half-written was left (files are written whole or not at all); run the command again"


def _results_summary(table, output: str) -> str:
    """How many trials of the export are finished runs; failed, interrupted or skipped ones are not runs."""
    states = table["state"].value_counts() if len(table) else {}
    others = {"FAIL": "failed or interrupted (run again by the next worker)", "RUNNING": "running",
              "WAITING": "queued", "PRUNED": "skipped (their point ran in another trial)"}
    notes = [f"{states[state]} {what}" for state, what in others.items() if states.get(state)]
    also = f"; other trials, not runs: {', '.join(notes)} (column `state`)" if notes else ""
    return f"{states.get('COMPLETE', 0)} finished runs{also} -> {output}"


if __name__ == "__main__":
    sys.exit(main())
