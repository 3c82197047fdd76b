"""Commands that run or report many runs at once: `ablate` (specs through the search), `speed`
(methods side by side), `report` (tables and figures of stored studies) and `demo` (the main job)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands.base import Command
from bench.commands.options import RESULTS_DIRS, add_plugin_option, load_plugins
from bench.commands.searching import KEPT_BY_A_SEARCH
from bench.parts.errors import KdbenchError


def add_study_options(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--data-dir", help="GLUE folder (default: $KDBENCH_GLUE_DIR, else the hub)")
    parser.add_argument("--output-dir", default=RESULTS_DIRS[command], help="results folder (default: %(default)s)")
    parser.add_argument("--cache-dir", help="cache of teachers, generators and teacher outputs")
    add_plugin_option(parser)


class Ablate(Command):
    name = "ablate"
    help = "run ablation specs (ablations/*.toml) through the search and write their tables"
    description = ("Each task x variant of the spec is one search (grid, then seeds) in one Optuna storage: rerun "
                   "to resume; run the same command on other machines with the same --storage to share the work.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("specs", nargs="+", metavar="SPEC", help="TOML spec file(s), e.g. ablations/ad2-eps.toml")
        parser.add_argument("--dry-run", action="store_true", help="check the specs and print what would run")
        add_study_options(parser, self.name)
        parser.add_argument("--storage", help="Optuna storage shared by workers "
                            "(default: sqlite:///OUTPUT_DIR/studies.db)")

    def run(self, args: argparse.Namespace) -> None:
        from ablations.spec import load_spec
        from ablations.study import plan, run_ablation

        load_plugins(args)
        specs = [load_spec(path) for path in args.specs]  # all checked before any runs
        if not args.dry_run:
            from bench.store.search import check_one_process

            check_one_process("ablate")
        for spec in specs:
            print(plan(spec))
            if not args.dry_run:
                print(run_ablation(spec, data_dir=args.data_dir, output_dir=args.output_dir, storage=args.storage,
                                   cache_dir=args.cache_dir).read_text())

    def kept_after_interrupt(self, args: argparse.Namespace) -> str:
        return KEPT_BY_A_SEARCH


class Speed(Command):
    name = "speed"
    help = "wall-clock and memory of each method of a spec, side by side, with ratios to KD and AD2"
    description = ("Train each variant of the spec (default: ablations/speed.toml) at the profile's first grid "
                   "point, each in a new process with an empty cache, and tabulate generation, teacher, training, "
                   "time-to-best, examples/s and peak memory, also divided by plain KD's and AD2's.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("spec", nargs="?", metavar="SPEC", help="TOML spec (default: ablations/speed.toml)")
        parser.add_argument("--repeats", type=int, default=1, help="measurements per variant, interleaved; the "
                            "median is reported (default: 1)")
        add_study_options(parser, self.name)

    def run(self, args: argparse.Namespace) -> None:
        from ablations import SPEC_DIR
        from ablations.spec import load_spec
        from ablations.speed import run_speed

        load_plugins(args)
        if args.repeats < 1:
            raise KdbenchError(f"--repeats must be at least 1, got {args.repeats}")
        spec = load_spec(args.spec or SPEC_DIR / "speed.toml")
        print(run_speed(spec, data_dir=args.data_dir, output_dir=args.output_dir, cache_dir=args.cache_dir,
                        repeats=args.repeats, plugins=args.plugin).read_text())


class Report(Command):
    name = "report"
    help = "tables (Markdown, LaTeX) and figures (PDF, PNG) of studies, all shown in index.html"
    description = ("Read the studies that `kdbench ablate`, `speed` and `demo` wrote (finished or not) and write "
                   "their tables (main table, ablation tables, speed table) and figures (ablation curves, dev score "
                   "against wall-clock, training curves), with an index.html showing them all.")
    light = True

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("folders", nargs="*", metavar="RESULTS",
                            help="results folders of ablate, speed or demo (default: those under kdbench-results/)")
        parser.add_argument("--study", action="append", help="only this study (repeat for more; default: all found)")
        parser.add_argument("--storage", help="Optuna storage of the ablations (default: sqlite:///RESULTS/studies.db)")
        parser.add_argument("--output-dir", default="kdbench-results/report",
                            help="report folder (default: %(default)s)")

    def run(self, args: argparse.Namespace) -> None:
        from reports.report import build_report

        defaults = list(RESULTS_DIRS.values())
        folders = args.folders or [p for p in defaults if Path(p).is_dir()] or defaults
        sections = build_report(folders, args.output_dir, names=args.study, storage=args.storage)
        print(report_summary(sections, args.output_dir))
        if all(section.tables is None for section in sections):
            raise KdbenchError("no study has a finished run yet: nothing to tabulate (see the lines above)")


class Demo(Command):
    name = "demo"
    help = "SST-2 subset: teacher, no-KD student, KD student under each method"
    description = ("The main job: on a 1,000-example seeded SST-2 subset (max length 64), fine-tune the MiniLM "
                   "teacher (cached), then train the profile's student taken from its layers without KD and with KD "
                   "under each augmentation method, and print dev accuracy and wall-clock (augmentation, teacher "
                   "labelling and training apart).")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from bench.pipeline.config import DEFAULT_DEMO_PROFILE, DEMO_METHODS, DEMO_PROFILES, DEMO_TRAIN_EXAMPLES

        parser.add_argument("--data-dir", help="GLUE folder (default: $KDBENCH_GLUE_DIR, else the hub)")
        parser.add_argument("--output-dir", help=f"folder for the run records (default: {RESULTS_DIRS['demo']}, "
                            f"{RESULTS_DIRS['demo']}-PROFILE for another profile)")
        parser.add_argument("--cache-dir", help="cache of teachers and teacher outputs")
        parser.add_argument("--max-train-examples", type=int, default=DEMO_TRAIN_EXAMPLES,
                            help="training subset size (default: %(default)s)")
        parser.add_argument("--seed", type=int, default=42, help="training seed")
        parser.add_argument("--methods", default=",".join(DEMO_METHODS),
                            help="comma-separated methods to compare (default: %(default)s)")
        parser.add_argument("--profile", default=DEFAULT_DEMO_PROFILE, choices=list(DEMO_PROFILES),
                            help="student setting: " + "; ".join(f"{k}: {v.description}"
                                                                 for k, v in DEMO_PROFILES.items()))

    def run(self, args: argparse.Namespace) -> None:
        from bench.demo import run_demo
        from bench.pipeline.config import DEFAULT_DEMO_PROFILE

        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        suffix = "" if args.profile == DEFAULT_DEMO_PROFILE else f"-{args.profile}"
        output_dir = args.output_dir or RESULTS_DIRS["demo"] + suffix
        print(run_demo(data_dir=args.data_dir, output_dir=output_dir, cache_dir=args.cache_dir,
                       max_train_examples=args.max_train_examples, seed=args.seed, methods=methods,
                       profile=args.profile))

    def kept_after_interrupt(self, args: argparse.Namespace) -> str:
        return ("the cached teacher, pools, generator and teacher outputs are kept; `kdbench demo` again reuses them "
                "and trains the students anew")


def report_summary(sections, output_dir: str) -> str:
    """Per study: what was written, or what is missing."""
    lines = []
    for section in sections:
        study = section.study
        lines.append(f"{study.name} ({study.kind}, {len(study.runs)} runs): {section.state}")
        lines += [f"  missing: {line}" for line in study.missing]
        lines += [f"  {path}" for path in (*section.files[:1], *section.figures)]
    return "\n".join(lines + [f"report: {Path(output_dir) / 'index.html'}",
                              f"the AD2 paper's claims against these studies: {Path(output_dir) / 'claims.md'}"])
