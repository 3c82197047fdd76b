"""Does the order of training batches cost accuracy? MiniLM fine-tuned as a teacher (`kdbench
finetune-teacher`: 2 epochs, lr 5e-5, batch 32, length 128) under each `--train-sampling-strategy`,
over seeds, on the pair tasks of the offline GLUE folder and SST-2; the numbers of
docs/batch-order.md.

    python experiments/batch_order.py run OUT [--workers 2] [--seeds 42,43,44,45,46] [--tasks wnli,sst2,stsb,rte]
    python experiments/batch_order.py report OUT
    python experiments/batch_order.py batches

`run` trains the missing runs (each single-threaded, `--workers` at a time; a finished run is kept, so
an interrupted run continues) and keeps only each run's record; `report` prints, per task and
order, the median [min, max] over seeds, each epoch's median, and each
length order against random batches: ASO both ways and the paired bootstrap over dev examples
(`reports.significance`, as `kdbench report` tests methods); `batches` describes the first epoch's
batches of each order at seed 42 (no training): padded tokens per real token, how far the batches'
mean labels spread, and where in the epoch the short examples fall.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from reports.significance import aso_test, dev_predictions, paired_bootstrap

ORDERS = ("random", "group_by_length", "bucket_by_length")
EXTRA = {"sst2": ["--max-train-examples", "2000"]}  # a seeded subset: the full set is 67,349 phrases
SETTINGS = ["--model", "minilm", "--num-train-epochs", "2", "--learning-rate", "5e-5",
            "--per-device-train-batch-size", "32", "--max-length", "128"]


def train(out: Path, task: str, order: str, seed: int, data_dir: str) -> None:
    folder = out / f"{task}-{order}-{seed}"
    if (folder / "record.json").exists():
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(["kdbench", "finetune-teacher", "--task", task, "--data-dir", data_dir, *SETTINGS,
                           "--seed", str(seed), "--train-sampling-strategy", order, "--output-dir", str(folder),
                           "--cache-dir", str(out / "cache"), *EXTRA.get(task, [])], env=env, capture_output=True,
                          text=True)
    if done.returncode:
        raise SystemExit(f"{folder.name}: kdbench finetune-teacher failed:\n{done.stderr[-3000:]}")
    for each in folder.iterdir():  # the model is not needed, only the record (scores and dev predictions)
        if each.name != "record.json":
            shutil.rmtree(each) if each.is_dir() else each.unlink()


def run(args: argparse.Namespace) -> None:
    jobs = [(task, order, seed) for seed in args.seeds for task in args.tasks for order in ORDERS]
    with ThreadPoolExecutor(args.workers) as pool:
        list(pool.map(lambda job: train(args.out, *job, args.data_dir), jobs))  # raises a failed run's error


def report(args: argparse.Namespace) -> None:
    runs: dict[tuple[str, str], dict[int, dict]] = {}
    for path in sorted(args.out.glob("*/record.json")):
        record = json.loads(path.read_text())
        train_config = record["config"]["teacher_train"]
        runs.setdefault((record["task"], train_config["train_sampling_strategy"]), {})[train_config["seed"]] = record
    for task in dict.fromkeys(task for task, _ in runs):
        random = runs.get((task, "random"), {})
        for order in ORDERS:
            got = runs.get((task, order), {})
            seeds = sorted(set(got) & set(random))
            if not seeds:
                continue
            best = [100 * got[s]["best"]["value"] for s in seeds]
            epochs = np.median([[100 * e["eval_validation_score"] for e in got[s]["evaluations"]] for s in seeds], 0)
            print(f"{task} {order}: seeds {','.join(map(str, seeds))}; best {np.median(best):.2f} "
                  f"[{min(best):.2f}, {max(best):.2f}], per seed {', '.join(f'{b:.2f}' for b in best)}; "
                  f"epoch medians {', '.join(f'{e:.2f}' for e in epochs)}")
            if order != "random" and len(seeds) >= 3:
                print("    against random: " + against(task, [got[s] for s in seeds], [random[s] for s in seeds]))


def against(task: str, arm: list[dict], baseline: list[dict]) -> str:
    from bench.parts.tasks import get_task

    scores = [[r["best"]["value"] for r in runs] for runs in (arm, baseline)]
    better, worse = aso_test(*scores)["aso_eps_min"], aso_test(*scores[::-1])["aso_eps_min"]
    boot = paired_bootstrap([dev_predictions(r) for r in arm], [dev_predictions(r) for r in baseline],
                            get_task(task).metrics)
    return (f"ASO eps_min better {better:.2f}, worse {worse:.2f}; paired bootstrap {100 * boot['bootstrap_diff']:+.2f} "
            f"[{100 * boot['ci_low']:+.2f}, {100 * boot['ci_high']:+.2f}], p {boot['p_value']:.3f}")


def batches(args: argparse.Namespace) -> None:
    import torch

    from bench.parts.features import LENGTH, tokenize
    from bench.parts.models import load_tokenizer
    from bench.pipeline.config import DataConfig
    from bench.pipeline.data import load_data
    from bench.pipeline.training import SeededLengthGroupedSampler

    for task in args.tasks:
        subset = int(EXTRA[task][1]) if task in EXTRA else None
        data = load_data(DataConfig(task=task, data_dir=args.data_dir, max_length=128, max_train_examples=subset))
        rows = tokenize(data.splits["train"], load_tokenizer("minilm"), 128)
        lengths, labels = np.array(rows[LENGTH]), np.array(rows["labels"], dtype=float)
        print(f"{task}: {len(rows)} examples, {lengths.mean():.1f} tokens on average; "
              f"correlation of length and label {np.corrcoef(lengths, labels)[0, 1]:+.2f}")
        orders = {"random": torch.randperm(len(rows), generator=torch.Generator().manual_seed(42)).tolist(),
                  **{order: list(SeededLengthGroupedSampler(32, lengths.tolist(), 42,
                                                            shuffle_batches=order == "bucket_by_length"))
                     for order in ORDERS[1:]}}
        for order, indices in orders.items():
            cut = [indices[i:i + 32] for i in range(0, len(indices), 32)]
            longest, mean = (np.array([reduce(lengths[b]) for b in cut]) for reduce in (np.max, np.mean))
            print(f"    {order}: {sum(longest * [len(b) for b in cut]) / lengths.sum():.2f} tokens computed per "
                  f"real token; batch mean label sd {np.std([labels[b].mean() for b in cut]):.3f}; batches "
                  f"shorter on average than the one before {np.mean(mean[1:] < mean[:-1]):.2f}; last 10 batches "
                  f"{mean[-10:].mean():.1f} tokens on average")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "report", "batches"):
        command = commands.add_parser(name)
        if name != "batches":
            command.add_argument("out", type=Path)
    commands.choices["run"].add_argument("--workers", type=int, default=2)
    commands.choices["run"].add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")],
                                         default=[42, 43, 44, 45, 46])
    for name in ("run", "batches"):
        commands.choices[name].add_argument("--tasks", type=lambda s: s.split(","), default=["wnli", "sst2", "stsb", "rte"])
        commands.choices[name].add_argument("--data-dir", default=os.environ.get("KDBENCH_GLUE_DIR", "../shared/glue"))
    args = parser.parse_args()
    {"run": run, "report": report, "batches": batches}[args.command](args)


if __name__ == "__main__":
    main()
