"""Smoke test of benchmarks/ab_lstm_loops.py: its quick case runs every combination of row
splits and projection in the loop, checks their outputs agree, and prints a row for each mode.
(No timing is asserted.)"""

from __future__ import annotations

import pytest
import torch
from benchmarks import ab_lstm_loops

from rnnkit.kernels import gemm


def test_quick_run_prints_every_combination(capsys):
    if not gemm.panels_available(torch.zeros(1)):
        with pytest.raises(SystemExit, match="panel kernel"):
            ab_lstm_loops.main(["--quick", "--repeats", "1"])
        return
    ab_lstm_loops.main(["--quick", "--repeats", "1"])
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.startswith("quick")]
    assert len(rows) == 2 and "train" in rows[0] and "infer, lengths" in rows[1]
    for row in rows:
        assert row.count(" ms ") == 4 and row.count("*") == 1
