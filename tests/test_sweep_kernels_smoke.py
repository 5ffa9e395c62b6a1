"""Smoke test of benchmarks/sweep_kernels.py: its quick shape runs on the process's own heap and
prints one row, for each layer kind and mode; asking for the other heap reruns the script in a
process that has it. (No timing is asserted.)"""

from __future__ import annotations

import os

import pytest
from benchmarks import sweep_kernels
from benchmarks.bench_speed import WARM_HEAP


def own_heap() -> str:
    return "warm" if all(os.environ.get(k) == v for k, v in WARM_HEAP.items()) else "default"


@pytest.mark.parametrize("kind,mode", [("lstm", "train"), ("gru", "infer"), ("rnn_relu", "train")])
def test_quick_run_prints_a_row_for_its_shape(kind, mode, capsys):
    argv = ["--quick", "--repeats", "1", "--heap", own_heap(), "--kind", kind, "--mode", mode]
    rows = sweep_kernels.main(argv)
    printed = capsys.readouterr().out
    assert f"{kind} {'training step' if mode == 'train' else 'inference'}" in printed
    assert f"heap: {own_heap()};" in printed
    (row,) = rows
    assert row["bidirectional"] and row["rnnkit"] > 0 and row["torch.nn"] > 0
    (line,) = [line for line in printed.splitlines() if line.split()[:6] == "8 6 5 16 2 2".split()]
    assert line.endswith("x") and line.split()[6] in ("yes", "no")


def test_the_other_heap_runs_in_a_fresh_process(capfd):
    other = "default" if own_heap() == "warm" else "warm"
    assert sweep_kernels.main(["--quick", "--repeats", "1", "--heap", other]) == []
    assert f"heap: {other};" in capfd.readouterr().out
