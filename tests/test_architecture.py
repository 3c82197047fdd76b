"""The house runs one way (import-linter's contracts in pyproject.toml), the commands that train
nothing start without the training libraries, and every package the code imports is declared."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from importlib.metadata import packages_distributions, requires
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
HEAVY = ("transformers", "nlpaug", "nltk", "torch")
PACKAGES = ("bench", "methods", "objectives", "schemes", "selection", "students", "teachers", "ablations", "reports")


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
                                  ["list", "--help"], ["methods"], ["list", "objectives"], ["list", "schemes"], ["list", "selectors"],
                                  ["list", "students", "t*"], ["list", "teacher-outputs"]])
def test_commands_that_train_nothing_import_no_training_library(argv, tmp_path):
    assert imported_by(argv, tmp_path) == []


def _imported_top_level() -> set[str]:
    names = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - set(PACKAGES)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_package_is_declared():
    declared = {_canonical(re.split(r"[ ;<>=!~\[]", requirement, maxsplit=1)[0])
                for requirement in requires("kdbench") if "extra ==" not in requirement}
    distributions = packages_distributions()
    undeclared = {module for module in _imported_top_level() - {"textattack"}
                  if not {_canonical(d) for d in distributions.get(module, [module])} & declared}
    assert not undeclared, f"imported but not in pyproject.toml's dependencies: {sorted(undeclared)}"


def test_textattack_is_installed_without_its_dependencies_at_the_version_the_suite_names():
    """TextAttack cannot be a declared dependency (its flair requirement pulls transformers 4): the attack extra
    installs its other requirements, and every install command pins it as bench/pipeline/attack.py does."""
    from bench.pipeline.attack import INSTALL, TEXTATTACK_VERSION

    pinned = f"--no-deps textattack=={TEXTATTACK_VERSION}"
    assert pinned in INSTALL and pinned in (ROOT / "tox.ini").read_text() and pinned in (ROOT / "README.md").read_text()
    assert "extra == \"attack\"" in " ".join(requires("kdbench"))
