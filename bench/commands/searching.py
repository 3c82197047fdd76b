"""Commands of the paper's search protocol on Optuna: `search` (grid, then seeds), `worker` (join a
search started elsewhere) and `results` (every run of a storage as one table)."""

from __future__ import annotations

import argparse
import json

from bench.commands.base import Command
from bench.commands.options import (add_dataclass_options, add_plugin_option, add_role_options,
                                    add_layer_map_option, load_plugins)
from bench.commands.training import RunCommand
from bench.parts.kd_config import KDConfig

KEPT_BY_A_SEARCH = ("finished runs are kept in the Optuna storage, and the interrupted run's last checkpoint in its "
                    "run folder; run the same command again to resume (the interrupted point runs again, from that "
                    "checkpoint)")


class Search(RunCommand):
    name = "search"
    help = "the paper's protocol: learning-rate x batch-size grid, then the best over seeds"
    distills = True

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--teacher", help="fine-tuned teacher (distill) or the student's layer source")
        parser.add_argument("--baseline", choices=("distill", "finetune"), default="distill",
                            help="distill (KD with --method) or finetune (the no-KD baseline)")
        add_role_options(parser)
        add_layer_map_option(parser)
        parser.add_argument("--profile", choices=("quick", "paper"), default="quick",
                            help="quick (CPU: subset, length 64, 2 epochs, 2x2 grid) or paper (METHODS.md as is)")
        parser.add_argument("--storage", help="Optuna storage: SQLAlchemy URL or journal:PATH "
                            "(default: sqlite:///OUTPUT_DIR/studies.db)")
        add_dataclass_options(parser, KDConfig, "kd")

    def run(self, args: argparse.Namespace) -> None:
        from bench.store.search import check_one_process, search

        config = self.config(args)
        check_one_process("search")
        summary = search(config, kind=args.baseline, profile=args.profile, storage=args.storage,
                         results_dir=args.output_dir or "kdbench-results/search")
        print(json.dumps(summary, indent=2))

    def kept_after_interrupt(self, args: argparse.Namespace) -> str:
        return KEPT_BY_A_SEARCH


class Worker(Command):
    name = "worker"
    help = "join a search started elsewhere (same storage) until it is complete"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--storage", required=True, help="the search's Optuna storage URL")
        parser.add_argument("--study", required=True, help="the search's name (printed by `kdbench search`)")
        parser.add_argument("--output-dir", default="kdbench-results/search", help="folder for this worker's runs")
        parser.add_argument("--data-dir", help="this machine's GLUE folder (default: the one the search was started "
                            "with)")
        parser.add_argument("--teacher", help="this machine's copy of the search's teacher (default: its stored path)")
        parser.add_argument("--cache-dir", help="this machine's cache (default: the search's)")
        parser.add_argument("--heartbeat-interval", type=int, default=60, metavar="S",
                            help="seconds between a running trial's heartbeats, SQL storages (default: %(default)s)")
        parser.add_argument("--grace-period", type=int, default=180, metavar="S",
                            help="seconds without a heartbeat after which a worker's trial is failed and its point "
                            "runs again (default: %(default)s)")
        add_plugin_option(parser)

    def run(self, args: argparse.Namespace) -> None:
        from bench.store.search import check_one_process, join_search, run_worker
        from bench.store.studies import open_storage

        check_one_process("worker")
        load_plugins(args)
        store = open_storage(args.storage, must_exist=True, heartbeat_interval=args.heartbeat_interval,
                             grace_period=args.grace_period)
        search = join_search(store, args.study, data_dir=args.data_dir, teacher=args.teacher,
                             cache_dir=args.cache_dir)
        print(json.dumps(run_worker(store, search, args.output_dir), indent=2))

    def kept_after_interrupt(self, args: argparse.Namespace) -> str:
        return KEPT_BY_A_SEARCH


class Results(Command):
    name = "results"
    help = "export every run of a storage as CSV or Parquet"
    light = True

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--storage", default="sqlite:///kdbench-results/search/studies.db", help="Optuna storage")
        parser.add_argument("--output", default="kdbench-results/search/results.csv", help="a .csv or .parquet file")

    def run(self, args: argparse.Namespace) -> None:
        from bench.store.run_table import export_results
        from bench.store.studies import open_storage

        table = export_results(open_storage(args.storage, must_exist=True), args.output)
        print(results_summary(table, args.output))


def results_summary(table, output: str) -> str:
    """How many trials of the export are finished runs; failed, interrupted or skipped ones are not runs."""
    states = table["state"].value_counts() if len(table) else {}
    others = {"FAIL": "failed or interrupted (run again by the next worker)", "RUNNING": "running",
              "WAITING": "queued", "PRUNED": "skipped (their point ran in another trial)"}
    notes = [f"{states[state]} {what}" for state, what in others.items() if states.get(state)]
    also = f"; other trials, not runs: {', '.join(notes)} (column `state`)" if notes else ""
    return f"{states.get('COMPLETE', 0)} finished runs{also} -> {output}"
