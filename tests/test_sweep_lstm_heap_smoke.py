"""Smoke test of benchmarks/sweep_lstm_heap.py: its quick shape runs on the process's own heap
and prints one row; asking for the other heap reruns the script in a process that has it.
(No timing is asserted.)"""

from __future__ import annotations

import os

from benchmarks import sweep_lstm_heap
from benchmarks.bench_speed import WARM_HEAP


def test_quick_run_prints_a_row_for_its_shape(capsys):
    warm = all(os.environ.get(k) == v for k, v in WARM_HEAP.items())
    heap = "warm" if warm else "default"
    rows = sweep_lstm_heap.main(["--quick", "--repeats", "1", "--heap", heap])
    printed = capsys.readouterr().out
    assert f"heap: {heap};" in printed
    (row,) = rows
    assert row["bidirectional"] and row["rnnkit"] > 0 and row["torch.nn"] > 0
    (line,) = [line for line in printed.splitlines() if line.split()[:6] == "8 6 5 16 2 2".split()]
    assert line.endswith("x") and line.split()[6] in ("yes", "no")


def test_the_other_heap_runs_in_a_fresh_process(capfd):
    warm = all(os.environ.get(k) == v for k, v in WARM_HEAP.items())
    other = "default" if warm else "warm"
    assert sweep_lstm_heap.main(["--quick", "--repeats", "1", "--heap", other]) == []
    assert f"heap: {other};" in capfd.readouterr().out
