"""Every part's numbers, pinned: a tiny run of each method, objective and scheme (and no KD, and label noise)
gives the dev loss and score at each evaluation and the training losses stored in tests/golden/runs.json.
The staged-run redesign (issue 27) must leave them unchanged. A change meant to alter a part's numbers
regenerates the file (`KDBENCH_UPDATE_GOLDEN=1 pytest tests/test_golden_runs.py`) and says why in its commit.

The numbers hold for the processor, CPU kernels and thread count they were made with (the file records them): the
KD losses of a tiny student near its teacher are differences of nearly equal log-probabilities, whose
last bits another machine rounds differently (docs/running.md, run records). On such a machine the test
is skipped, saying so: regenerate the file there before a change and compare after. Losses are compared
to a relative 1e-5, which a one-in-a-thousand change of any part's loss exceeds."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from bench.parts.kd_config import KDConfig
from bench.pipeline.records import device_info
from bench.pipeline.runs import run_distill, run_finetune
from tests.test_runs import distill_config

GOLDEN = Path(__file__).parent / "golden" / "runs.json"
UPDATE = os.environ.get("KDBENCH_UPDATE_GOLDEN") == "1"
GENERATOR = "GENERATOR"  # replaced by the tiny masked LM's folder
ADVERSARIAL = {"generator": GENERATOR, "generator_steps": 2, "student_steps": 3, "generator_lr": 1e-2}
LABEL_TERM = KDConfig(alpha_kd=1.0, alpha_ce=0.5)

CASES: dict[str, dict] = {
    "no-kd": {"finetune": True},
    "kd": {},
    "ad2": {"method": "ad2"},
    "ad2-ours": {"method": "ad2", "method_params": {"reading": "ours", "eps": 0.1, "eta": 0.05, "steps": 2}},
    "eda": {"method": "eda", "method_params": {"num_aug": 1}},
    "backtranslation": {"method": "backtranslation"},
    "mlm": {"method": "mlm", "method_params": {"generator": GENERATOR, "n_a": 1}},
    "mate-kd": {"method": "mate-kd", "method_params": ADVERSARIAL},
    "combined-kd": {"method": "combined-kd", "method_params": ADVERSARIAL},
    "annealing": {"objective": "annealing"},
    "continuation": {"objective": "continuation"},
    "rw-kd": {"objective": "rw-kd", "objective_params": {"meta_fraction": 0.25, "meta_batch_size": 4}},
    "kd-gce": {"objective": "kd-gce", "kd": LABEL_TERM},
    "kd-bootstrap": {"objective": "kd-bootstrap", "kd": LABEL_TERM},
    "swa": {"scheme": "swa"},
    "label-noise": {"label_noise": 0.25, "kd": LABEL_TERM},  # plain KD (alpha_ce 0) never reads the labels
}


def machine() -> dict:
    """The processor, the kernels torch picked and the thread count, as records keep them: two AVX512 machines
    with 2 threads, an Intel and an AMD one, differ in the last bits of the KD losses."""
    return device_info()


def numbers(record: dict) -> dict:
    """What a part changes: the dev loss and score at each evaluation, and the logged training losses."""
    return {"evaluations": [[e["eval_validation_loss"], e["eval_validation_score"]] for e in record["evaluations"]],
            "training_loss": [e["loss"] for e in record["training_loss"]]}


def run(case: str, glue_dir: Path, teacher: Path, generator: Path, out: Path) -> dict:
    changes = dict(CASES[case])
    finetune = changes.pop("finetune", False)
    for key in ("method_params", "objective_params"):
        if key in changes:
            changes[key] = {k: str(generator) if v == GENERATOR else v for k, v in changes[key].items()}
    config = distill_config(glue_dir, teacher, out)
    if "label_noise" in changes:
        config = replace(config, data=replace(config.data, label_noise=changes.pop("label_noise")))
    config = replace(config, **changes)
    return run_finetune(config) if finetune else run_distill(config)


@pytest.mark.parametrize("case", CASES)
def test_a_tiny_run_gives_its_golden_numbers(case, glue_dir, tiny_teacher, tiny_generator, tmp_path):
    if case == "backtranslation" and shutil.which("apertium") is None:
        pytest.skip("apertium is not installed (apt-get install apertium apertium-eng-spa)")
    stored = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {"machine": machine(), "runs": {}}
    if stored["machine"] != machine() and not UPDATE:
        pytest.skip(f"the golden numbers were made with {stored['machine']}, this machine has {machine()}: "
                    "regenerate them here with KDBENCH_UPDATE_GOLDEN=1 before a change, then compare")
    got = numbers(run(case, glue_dir, tiny_teacher, tiny_generator, tmp_path / "run"))
    if UPDATE:
        stored = {"machine": machine(), "runs": dict(sorted({**stored["runs"], case: got}.items()))}
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(stored, indent=1) + "\n")
    expected = stored["runs"][case]
    assert [score for _, score in got["evaluations"]] == [score for _, score in expected["evaluations"]]
    assert [loss for loss, _ in got["evaluations"]] == pytest.approx([loss for loss, _ in expected["evaluations"]],
                                                                      rel=1e-5)
    assert got["training_loss"] == pytest.approx(expected["training_loss"], rel=1e-5)


def test_the_parts_give_different_numbers():
    """A golden file in which two parts agree would not notice one of them turning into the other."""
    golden = json.loads(GOLDEN.read_text())["runs"]
    assert set(golden) == set(CASES)
    seen = {json.dumps(entry["training_loss"]) for entry in golden.values()}
    assert len(seen) == len(golden)
