"""Ablation studies and speed comparisons, each declared by a TOML spec in this folder.

`spec.py` reads and checks a spec, `study.py` runs it through the search (`kdbench ablate`),
`speed.py` measures every method's wall-clock and memory side by side (`kdbench speed`).
"""

from pathlib import Path

SPEC_DIR = Path(__file__).parent  # the shipped specs: ad2-*.toml, methods.toml, speed.toml
