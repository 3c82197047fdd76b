"""How long the commands that train nothing take to start and answer (pytest-benchmark; `tox -e bench`):
`kdbench --help`, the listings of parts, `report --help` and `tasks`, each in a fresh process, as a user
types them. Target: under 1.5 s each on 2 CPU cores; they import no training library
(tests/test_architecture.py) and list the built-in parts from bench/catalogue.json."""

from __future__ import annotations

import subprocess
import sys

import pytest

COMMANDS = ["--help", "methods", "list objectives", "list schemes", "list students", "report --help", "tasks"]
RESULTS: dict[str, float] = {}  # command -> mean seconds; read by conftest's summary


@pytest.mark.parametrize("argv", COMMANDS)
def test_command_starts_at_once(benchmark, argv, tmp_path):
    benchmark.group = "kdbench commands that train nothing, wall-clock in a fresh process"
    command = [sys.executable, "-c", "import sys; from bench.cli import main; sys.exit(main())", *argv.split()]

    def once():
        subprocess.run(command, cwd=tmp_path, check=True, capture_output=True)

    benchmark.pedantic(once, rounds=5, warmup_rounds=1)
    RESULTS[argv] = benchmark.stats.stats.mean
