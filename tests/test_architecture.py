"""The house runs one way (import-linter's contracts in pyproject.toml), and the commands that train
nothing start without the training libraries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
HEAVY = ("transformers", "nlpaug", "nltk", "torch")


def test_import_contracts_hold():
    linter = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(linter), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def imported_by(argv: list[str], cwd: Path) -> list[str]:
    """Which heavy libraries `kdbench ARGV` imports, run in a fresh interpreter."""
    code = ("import sys\nfrom bench.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            f"import json\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code, *argv], cwd=cwd, capture_output=True, text=True)
    assert result.stdout.strip(), result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])  # the list printed last


@pytest.mark.parametrize("argv", [["--help"], ["report", "--help"], ["tasks"], ["report", "nowhere"],
                                  ["list", "--help"], ["methods"], ["list", "objectives"], ["list", "schemes"],
                                  ["list", "students", "t*"]])
def test_commands_that_train_nothing_import_no_training_library(argv, tmp_path):
    assert imported_by(argv, tmp_path) == []
