"""Run records: one JSON file per run with everything needed to trust and reproduce a number.

A record holds the full config, seed, every evaluation, the best metric and where it was reached,
the wall-clock split by phase, throughput, peak memory, package versions, git commit and device.
It is written once, atomically, when the run has finished: a file that exists is complete.
"""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from bench.parts.errors import KdbenchError
from bench.pipeline.config import RunConfig, from_identity
from bench.pipeline.storage import write_json

PACKAGES = ("kdbench", "torch", "transformers", "accelerate", "datasets", "numpy", "scikit-learn", "scipy")
RECORD_FILE = "record.json"
TIMING_SUFFIXES = ("_runtime", "_per_second")  # evaluation metrics that time it: they differ between equal runs


class PhaseTimer:
    """Wall-clock seconds per named phase (data, teacher, training, evaluation, ...)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._running: set[str] = set()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block under `name`; a nested block of the same name is not counted twice."""
        if name in self._running:
            yield
            return
        self._running.add(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start
            self._running.discard(name)


def package_version(name: str) -> str | None:
    """The installed version of distribution `name`; None where it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def package_versions() -> dict[str, str | None]:
    return {name: package_version(name) for name in PACKAGES}


def git_commit() -> str | None:
    """The commit of the kdbench checkout running this, with `+dirty` if it has local changes."""
    repo = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def device_info() -> dict[str, object]:
    import torch  # here, not at the top: reports read records without loading torch

    if torch.cuda.is_available():
        return {"type": "cuda", "name": torch.cuda.get_device_name(), "count": torch.cuda.device_count()}
    # the kernels torch picked (e.g. AVX2 or AVX512) and the thread count: machines that differ in them can
    # round differently, so the same seed gives the same numbers only where they match
    return {"type": "cpu", "name": _cpu_model() or platform.processor() or platform.machine(),
            "capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}


def _cpu_model() -> str | None:
    """The processor's model name from /proc/cpuinfo (Linux), which `platform.processor()` leaves empty."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), None)
    except OSError:
        return None


def peak_memory_mb() -> dict[str, float]:
    """Peak resident memory of this process, and peak GPU memory allocated when on CUDA."""
    import torch

    peak = {"cpu_rss_mb": _peak_rss_kb() / 1024}
    if torch.cuda.is_available():
        peak["cuda_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return peak


def _peak_rss_kb() -> int:
    """Linux's VmHWM: the peak of this process image. Not ru_maxrss, which Linux carries over from
    the parent at exec, so a run in a fresh process would report its launcher's peak if larger."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux and the BSDs


def environment() -> dict[str, object]:
    return {
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "packages": package_versions(),
        "git_commit": git_commit(),
        "device": device_info(),
        "host": platform.node(),
    }


def with_environment(record: dict) -> dict:
    """`record` completed with the environment and this process's peak memory so far."""
    return {**record, "environment": environment(), "peak_memory": peak_memory_mb()}


def write_record(output_dir: str | Path, record: dict) -> Path:
    """Write `record` atomically to `output_dir/record.json`."""
    path = Path(output_dir) / RECORD_FILE
    write_json(path, record)
    return path


def read_record(output_dir: str | Path) -> dict:
    return json.loads((Path(output_dir) / RECORD_FILE).read_text())


def read_run(path: str | Path, kinds: Sequence[str], *, why: str = "") -> tuple[Path, dict, RunConfig]:
    """The record at `path` (a record.json file or the run folder holding one) of a run of one of `kinds`,
    its file and the config it ran: what `kdbench rerun` and `kdbench attack` start from. One clear error
    for a missing or unreadable file, another kind of record (`why` says why only those kinds), or a
    config this version cannot rebuild."""
    path = Path(path)
    file = path / RECORD_FILE if path.is_dir() else path
    if not file.is_file():
        raise KdbenchError(f"{path}: no such run record: give a {RECORD_FILE} file or the run folder holding one")
    try:
        record = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        record = None
    if not (isinstance(record, dict) and isinstance(record.get("config"), dict) and record.get("kind") in kinds):
        kind = record.get("kind") if isinstance(record, dict) else None
        found = f" (a {kind} run's)" if isinstance(kind, str) else ""
        raise KdbenchError(f"{file}: not a kdbench run record of a {' or '.join(kinds)} run{found}: it needs a "
                           f"config and one of those kinds{f'; {why}' if why else ''}")
    try:
        return file, record, from_identity(record["config"])
    except TypeError as error:  # a setting this version does not have
        raise KdbenchError(f"{file}: its config does not fit this version of kdbench: {error}") from None


def evaluation_scores(record: dict) -> list[dict]:
    """Each evaluation of `record` without its timings: what two runs of one config and seed share."""
    return [{k: v for k, v in entry.items() if not k.endswith(TIMING_SUFFIXES)} for entry in record["evaluations"]]
