"""Prints the ratios the benchmarks exist for, measured side by side in the same run."""

from tests.benchmarks import test_throughput


def pytest_terminal_summary(terminalreporter):
    results = test_throughput.RESULTS
    if {"finetune", "kd", "hand-loop"} <= set(results):
        write = terminalreporter.write_line
        write(f"KD / fine-tuning time:         {results['kd'] / results['finetune']:.3f}  (target <= 1.10)")
        write(f"harness KD / hand-written loop: {results['kd'] / results['hand-loop']:.3f}  (target <= 1.10)")
