"""Prints the ratios the benchmarks exist for, measured side by side in the same run; gives the benchmarks
a longer time limit than the tests'."""

from pathlib import Path

import pytest

from tests.benchmarks import (test_augmentation, test_cli_startup, test_mlm_batching, test_peer, test_preparation,
                              test_search_workers, test_student_latency, test_throughput)

BENCHMARK_TIMEOUT_S = 3600  # test_peer.py trains MiniLM on thousands of examples: 23 min for its 10 benchmarks


def pytest_collection_modifyitems(items):
    """Each benchmark may run an hour instead of pyproject.toml's 600 s per test: they time whole trainings
    on real data, minutes each on 2 cores. A benchmark's own @pytest.mark.timeout still comes first."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.timeout(BENCHMARK_TIMEOUT_S))


def pytest_terminal_summary(terminalreporter):
    results = test_throughput.RESULTS
    if {"finetune", "kd", "hand-loop"} <= set(results):
        write = terminalreporter.write_line
        write(f"KD / fine-tuning time:         {results['kd'] / results['finetune']:.3f}  (target <= 1.10)")
        write(f"harness KD / hand-written loop: {results['kd'] / results['hand-loop']:.3f}  (target <= 1.10)")
    if {"kd", "ad2"} <= set(results):
        terminalreporter.write_line(f"AD2 / KD step time:            {results['ad2'] / results['kd']:.3f}")
    if {"kd", "ad2", "student-pass", "teacher-pass"} <= set(results):
        student, teacher = results["student-pass"], results["teacher-pass"]
        terminalreporter.write_line(f"AD2 / (KD + 2 student + 2 teacher passes, what K=1 runs): "
                                    f"{results['ad2'] / (results['kd'] + 2 * student + 2 * teacher):.3f}  (target <= 1.10)")
        terminalreporter.write_line(f"AD2 / (KD + 1 student + 1 teacher pass, the lower bound): "
                                    f"{results['ad2'] / (results['kd'] + student + teacher):.3f}")
    for method, rate in test_augmentation.THROUGHPUT.items():
        terminalreporter.write_line(f"{method} pool generation: {rate:,.1f} sentences/s")
    batching = test_mlm_batching.RESULTS
    if {"batched", "per-word"} <= set(batching):
        terminalreporter.write_line(f"masked-LM candidates, batched / one forward per word: "
                                    f"{batching['per-word'] / batching['batched']:.1f}x faster  (target >= 10)")
    profile = test_mlm_batching.PROFILE
    if profile:
        terminalreporter.write_line(
            f"masked-LM profile: {profile['per-word GFLOP']:.1f} GFLOP per word / {profile['batched GFLOP']:.1f} batched "
            f"({profile['per-word GFLOP'] / profile['batched GFLOP']:.2f}x fewer operations); rates "
            f"{profile['per-word GFLOP/s']:.1f} / {profile['batched GFLOP/s']:.1f} GFLOP/s "
            f"({profile['batched GFLOP/s'] / profile['per-word GFLOP/s']:.2f}x); float32 matmul peak "
            f"{profile['peak GFLOP/s']:.1f} GFLOP/s")
    latency = test_student_latency.RESULTS
    for (student, batch_size), measured in latency.items():
        if ("teacher", batch_size) in latency:
            terminalreporter.write_line(
                f"{student}, batch {batch_size}: {measured['ms']:.2f} ms per sentence (1 thread), "
                f"{measured['parameters']:,} parameters; {latency['teacher', batch_size]['ms'] / measured['ms']:.2f}x "
                f"the teacher's speed")
    rates = test_search_workers.TRIALS_PER_HOUR
    if {1, 2} <= set(rates):
        terminalreporter.write_line(f"search: {rates[1]:,.0f} trials/hour with 1 worker, {rates[2]:,.0f} with 2: "
                                    f"{rates[2] / rates[1]:.2f}x")
    peer = test_peer.RESULTS
    for task in test_peer.TASKS:
        for ours, theirs in (("kdbench-finetune", "hf-finetune"), ("kdbench-random", "hf-finetune"),
                             ("kdbench-distill", "hf-distill")):
            if (task, ours) in peer and (task, theirs) in peer:
                a, b = peer[task, ours], peer[task, theirs]
                terminalreporter.write_line(
                    f"{task}: {theirs} {b['seconds']:.1f} s (dev {b['score']:.4f}, best epoch {b['best_epoch_score']:.4f}) / "
                    f"{ours} {a['seconds']:.1f} s (dev {a['score']:.4f}, last epoch {a['last_epoch_score']:.4f}): "
                    f"{b['seconds'] / a['seconds']:.2f}x  (target >= 1.2); {ours} phases {a['phases']}")
    for size, row in sorted(test_preparation.RESULTS.items()):
        terminalreporter.write_line(f"preparing {size:,} SST-2 examples: " + ", ".join(
            f"{k} {v:.3f}" for k, v in row.items() if k != "examples"))
    for argv, seconds in test_cli_startup.RESULTS.items():
        terminalreporter.write_line(f"kdbench {argv}: {seconds:.2f} s  (target < 1.5)")
