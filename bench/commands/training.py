"""Commands that train one model: `finetune-teacher`, `finetune`, `distill`, `rerun`, `make-generator` (a
masked-LM generator for the methods that take one) and `general-kd` (a student's general distillation on text);
and `attack`, which tests one that has been trained."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from bench.commands.base import Command
from bench.commands.options import (add_dataclass_options, add_plugin_option, add_role_options, add_run_options,
                                    add_layer_map_option, dataclass_from_args, group_values, load_plugins,
                                    role_values)
from bench.parts.errors import KdbenchError
from bench.parts.kd_config import KDConfig

PROG = "kdbench"


class RunCommand(Command):
    """A command whose options give one `RunConfig`: checked, names and parameters included, before
    any model or data is loaded."""

    distills = False  # takes a method, objective and KD settings

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_run_options(parser)

    def config(self, args: argparse.Namespace):
        """The run's config from the options, its task, parts and parameters checked."""
        from bench.parts.tasks import get_task
        from bench.pipeline.config import DataConfig, TrainConfig
        from bench.pipeline.choice import choose_parts
        from bench.pipeline.config import RunConfig

        load_plugins(args)
        config = RunConfig(
            data=dataclass_from_args(args, DataConfig, "data"),
            train=dataclass_from_args(args, TrainConfig, "train"),
            kd=dataclass_from_args(args, KDConfig, "kd"),
            teacher=getattr(args, "teacher", None),
            finetune_teacher=getattr(args, "finetune_teacher", False),
            teacher_clean_labels=getattr(args, "teacher_clean_labels", False),
            teacher_trajectory=getattr(args, "save_trajectory", 0),
            **role_values(args),
            pool_seed=getattr(args, "pool_seed", 42),
            layer_map=getattr(args, "layer_map", None),
            output_dir=args.output_dir,
            cache_dir=args.cache_dir,
            resume=getattr(args, "resume", False),
        )
        if not config.data.train_file:
            get_task(config.data.task)
        if self.distills and config.teacher_trajectory and not config.finetune_teacher:
            raise KdbenchError("--save-trajectory keeps checkpoints of a teacher fine-tuned here: add "
                               "--finetune-teacher, or run `kdbench finetune-teacher --save-trajectory N` first")
        choose_parts(config, distill=self.distills)
        return config


class FinetuneTeacher(RunCommand):
    name = "finetune-teacher"
    help = "fine-tune a pre-trained encoder on the task and save it as a teacher"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--model", dest="student", default="minilm", metavar="MODEL",
                            help="pre-trained encoder: hub id, folder, or 'minilm' (offline MiniLM; the default)")
        add_trajectory_option(parser)

    def run(self, args: argparse.Namespace) -> None:
        from bench.pipeline.runs import finetune_teacher

        config = self.config(args)
        config.teacher_train = config.train
        folder, record, cached = finetune_teacher(config)
        print(f"teacher{' (cached)' if cached else ''}: {folder}\n{run_summary(record)}")

    def kept_after_interrupt(self, args: argparse.Namespace) -> str:
        return "the last checkpoint is kept in the cache; the same command continues from it"


class Finetune(RunCommand):
    name = "finetune"
    help = "train a student on labels only (the no-KD baseline)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--teacher", help="model the student is built from (for teacher-layers:/fresh:)")
        add_role_options(parser, roles=("scheme", "student"))
        parser.add_argument("--resume", action="store_true", help="resume from the output folder's last checkpoint")

    def run(self, args: argparse.Namespace) -> None:
        from bench.pipeline.runs import default_output_dir, run_distill, run_finetune

        config = self.config(args)
        if not config.output_dir:
            task = "custom" if config.data.train_file else config.data.task
            config.output_dir = args.output_dir = str(default_output_dir(self.name, task))
        print(run_summary((run_distill if self.distills else run_finetune)(config)))

    def kept_after_interrupt(self, args: argparse.Namespace) -> str:
        return (f"the last checkpoint is kept in {Path(args.output_dir) / 'checkpoints'}; no record was written; "
                f"add --resume --output-dir {args.output_dir} to the same command to continue from it")


class Distill(Finetune):
    name = "distill"
    help = "distil a fine-tuned teacher into a student"
    distills = True

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        RunCommand.add_arguments(self, parser)
        parser.add_argument("--teacher", required=True, help="fine-tuned teacher: folder (from finetune-teacher) or "
                            "hub id; with --finetune-teacher a pre-trained encoder to fine-tune first")
        parser.add_argument("--finetune-teacher", action="store_true",
                            help="fine-tune --teacher on the task first (cached) with default settings")
        parser.add_argument("--teacher-clean-labels", action="store_true",
                            help="with --finetune-teacher and --label-noise: fine-tune the teacher on the clean "
                            "labels (default: on the noisy labels the student sees)")
        add_trajectory_option(parser)
        add_role_options(parser)
        parser.add_argument("--pool-seed", type=int, default=42,
                            help="seed of a pool method's generation, fixed across training seeds (default: 42)")
        add_layer_map_option(parser)
        parser.add_argument("--resume", action="store_true", help="resume from the output folder's last checkpoint")
        add_dataclass_options(parser, KDConfig, "kd")


class Rerun(Command):
    name = "rerun"
    help = "run a recorded run again into a new folder and compare its best score with the original's"
    description = ("Rebuild a run's settings from its record, run it again as it ran (distill, finetune or "
                   "finetune-teacher) into a new folder, and print the original's and the new best score side by "
                   "side, and whether every number is the same (the same seed on the same device gives the same "
                   "numbers).")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("record", metavar="RECORD", help="a run's record.json, or the run folder holding one")
        parser.add_argument("--output-dir", help="folder for the new run (default: a new one under "
                            "kdbench-results/KIND/TASK/; never the original's)")
        add_plugin_option(parser)

    def run(self, args: argparse.Namespace) -> None:
        from bench.pipeline.runs import RUNS_BY_KIND, rerun_config

        load_plugins(args)
        original, config = rerun_config(args.record, args.output_dir)
        args.output_dir = config.output_dir  # for the message if interrupted
        print(rerun_summary(original, RUNS_BY_KIND[original["kind"]](config), config.output_dir))

    def kept_after_interrupt(self, args: argparse.Namespace) -> str:
        if not args.output_dir:
            return super().kept_after_interrupt(args)
        return (f"the original run is untouched; the rerun kept its last checkpoint and wrote no record; "
                f"`{PROG} rerun {args.record} --output-dir {args.output_dir}` continues from it")


class Attack(Command):
    name = "attack"
    help = "attack a finished student with TextAttack recipes and add the results to its record"
    description = ("Attack the kept weights of a finished run (distill or finetune) with TextAttack recipes on a "
                   "seeded sample of its dev examples, print accuracy before and under attack, attack success "
                   "rate, words perturbed and queries, and add them to the run's record under `attack`. Needs the "
                   "attack extra (docs/running.md). A run attacked twice with the same settings gets the same "
                   "numbers.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from bench.pipeline.config import DataConfig

        parser.add_argument("run_folder", metavar="RUN_FOLDER", help="a finished run's folder (record.json and model/)")
        parser.add_argument("--data-dir", help="GLUE folder, where the run's own (a relative path, say) is not "
                            "found from here (default: the run's)")
        add_dataclass_options(parser, DataConfig, "data", defaults={"attack_recipe": "pwws"},
                              skip=[f.name for f in dataclasses.fields(DataConfig) if not f.name.startswith("attack_")])

    def run(self, args: argparse.Namespace) -> None:
        from bench.pipeline.attack import attack_saved_run

        settings = group_values(args, "data")
        if args.data_dir:
            settings["data_dir"] = args.data_dir
        for recipe, entry in attack_saved_run(args.run_folder, settings).items():
            print(attack_summary(recipe, entry))
        print(f"added to {Path(args.run_folder) / 'record.json'} under `attack`")


def attack_summary(recipe: str, entry: dict) -> str:
    """One line per recipe: the accuracies (x100), success rate, words perturbed and queries."""
    m = entry["metrics"]
    number = lambda value, scale=100: "-" if value is None else f"{scale * value:.2f}"  # noqa: E731
    return (f"{recipe}: {entry['examples']} examples, accuracy {number(m['original_accuracy'])} -> "
            f"{number(m['accuracy_under_attack'])} under attack; success rate {number(m['attack_success_rate'])}%, "
            f"{number(m['words_perturbed'], 1)} words ({number(m['words_perturbed_pct'], 1)}%) perturbed, "
            f"{number(m['queries_per_example'], 1)} queries per attacked example")


class MakeGenerator(Command):
    name = "make-generator"
    help = "build a masked-LM generator for the mlm method (offline: no MLM weights exist)"
    description = ("Continue masked-LM training of an encoder (default: the offline MiniLM; a fine-tuned teacher "
                   "folder works too) with a new MLM head tied to its embeddings, on the task's training text; "
                   "cached. Pass the printed folder to `kdbench distill --method mlm --param generator=FOLDER`.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from bench.pipeline.config import DataConfig, GeneratorSettings

        parser.add_argument("--model", default="minilm", help="encoder: hub id, folder, or 'minilm' (default)")
        parser.add_argument("--output-dir", help="save here instead of the cache")
        parser.add_argument("--cache-dir", help="cache folder (default: $KDBENCH_CACHE or ~/.cache/kdbench)")
        add_dataclass_options(parser, DataConfig, "data")
        add_dataclass_options(parser, GeneratorSettings, "generator")

    def run(self, args: argparse.Namespace) -> None:
        from bench.parts.tasks import get_task
        from bench.pipeline.config import DataConfig, GeneratorSettings
        from bench.pipeline.generator import make_generator

        data = dataclass_from_args(args, DataConfig, "data")
        if not data.train_file:
            get_task(data.task)
        folder, cached = make_generator(args.model, data, dataclass_from_args(args, GeneratorSettings, "generator"),
                                        cache_dir=args.cache_dir, output_dir=args.output_dir)
        info = json.loads((folder / "generator.json").read_text())
        print(f"generator{' (cached)' if cached else ''}: {folder}\nmasked-LM dev loss "
              f"{info['eval_loss_before']:.3f} -> {info['eval_loss_after']:.3f} in {info['train_seconds']} s; "
              f"use it with --method mlm --param generator={folder}")


class GeneralKD(Command):
    name = "general-kd"
    help = "general distillation of a student (KroneckerBERT's first stage) on a text file"
    description = ("Build the student from the pre-trained teacher (default: a KroneckerBERT student of the offline "
                   "MiniLM) and train it to match the teacher's hidden states and attention maps, layer to layer, on "
                   "the lines of TEXT (no labels); cached. Then distil it on a task with `kdbench distill --student "
                   "FOLDER --objective tinybert` (the second stage).")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from bench.pipeline.config import GeneralKDSettings

        parser.add_argument("text", metavar="TEXT", help="a UTF-8 text file, one text per line")
        parser.add_argument("--teacher", default="minilm",
                            help="the pre-trained encoder: hub id, folder, or 'minilm' (default)")
        add_role_options(parser, ["student"])
        parser.set_defaults(student="kronecker:kroneckerbert8")
        parser.add_argument("--output-dir", help="save here instead of the cache")
        parser.add_argument("--cache-dir", help="cache folder (default: $KDBENCH_CACHE or ~/.cache/kdbench)")
        add_dataclass_options(parser, GeneralKDSettings, "general")

    def run(self, args: argparse.Namespace) -> None:
        from bench.pipeline.config import GeneralKDSettings
        from bench.pipeline.general_kd import INFO_FILE, general_kd
        from bench.pipeline.students import parse_student

        load_plugins(args)
        values = role_values(args)
        parse_student(values["student"], values["student_params"])  # a bad student stops here, before any model
        settings = dataclass_from_args(args, GeneralKDSettings, "general")
        folder, cached = general_kd(args.text, args.teacher, values["student"], values["student_params"], settings,
                                    cache_dir=args.cache_dir, output_dir=args.output_dir)
        info = json.loads((folder / INFO_FILE).read_text())
        print(f"general-KD student{' (cached)' if cached else ''}: {folder}\n{info['student']}, "
              f"{info['parameters']:,} parameters; held-out layer-wise loss {info['eval_loss_before']:.4f} -> "
              f"{info['eval_loss_after']:.4f}; {info['train_lines']:,} lines, {info['train_tokens']:,} tokens in "
              f"{info['train_seconds']} s ({info['train_tokens_per_second']:,.0f} tokens/s); distil it with "
              f"`{PROG} distill --student {folder} --objective tinybert`")


def add_trajectory_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--save-trajectory", type=int, default=0, metavar="N",
                        help="keep N checkpoints along the teacher's fine-tuning, evenly spaced, the last at its final "
                        "step, in its folder's trajectory/ (what --objective pro-kd follows; default: none)")


def run_summary(record: dict) -> str:
    best = record["best"]
    return (f"{record['kind']} {record['task']}: best {best['metric']} = {best['value']:.4f} at step {best['step']}; "
            f"{json.dumps(record['timings_s'])}")


def rerun_summary(original: dict, record: dict, folder: str) -> str:
    """The original's and the rerun's best scores side by side, and whether every number is the same."""
    from bench.pipeline.records import evaluation_scores

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
