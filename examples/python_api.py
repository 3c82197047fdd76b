"""kdbench from Python: fine-tune a teacher, distil it without augmentation and with AD2 over two
seeds, tabulate the runs with pandas, and rerun one from its record.

    NLTK_DATA=../shared/nltk_data python examples/python_api.py --data-dir ../shared/glue

(the demo's 1,000-sentence SST-2 subset and teacher, a 1-layer student, 2 epochs at lr 3e-4 in
batches of 16: in batches of 32 it stays at the majority class).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.api import DataConfig, RunConfig, TrainConfig, distill, finetune_teacher, load_runs, rerun


def compare(data_dir: str | None, output_dir: str | Path, teacher: str | None = None):
    """KD and KD + AD2 at seeds 42 and 43 into `output_dir`; the runs as a table, and a rerun's score."""
    data = DataConfig(task="sst2", data_dir=data_dir, max_train_examples=1000, max_length=64)
    train = TrainConfig(learning_rate=3e-4, num_train_epochs=2, per_device_train_batch_size=16)
    if teacher is None:  # the offline MiniLM fine-tuned on the subset (cached: a second call reads it)
        teacher = str(finetune_teacher(RunConfig(data=data, student="minilm"))[0])  # default settings: the demo's
    for method, params in (("none", {}), ("ad2", {"eps": 1e-5})):
        for seed in (42, 43):
            distill(RunConfig(data=data, train=TrainConfig(**{**vars(train), "seed": seed}), teacher=teacher,
                              student="teacher-layers:0", method=method, method_params=params,
                              output_dir=str(Path(output_dir) / f"{method}-{seed}")))
    runs = load_runs(output_dir)
    again = rerun(Path(output_dir) / "ad2-42", output_dir=Path(output_dir).with_name("rerun-ad2-42"))
    return runs, again


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="GLUE folder (default: $KDBENCH_GLUE_DIR)")
    parser.add_argument("--output-dir", default="kdbench-results/python-api")
    args = parser.parse_args()
    runs, again = compare(args.data_dir, args.output_dir)
    print(runs[["method", "method.eps", "seed", "student", "score", "seconds.training"]].to_string(index=False))
    print(runs.groupby("method")["score"].median())
    ad2 = runs[(runs["method"] == "ad2") & (runs["seed"] == 42)]["score"].item()
    print(f"rerun of AD2 at seed 42: {again['best']['value']:.4f} (first run {ad2:.4f})")
