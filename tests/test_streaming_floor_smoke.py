"""Smoke test of benchmarks/streaming_floor.py at tiny sizes: the read floor compiles and runs,
and every figure comes out for both layer kinds. (No timing is asserted.)"""

from __future__ import annotations

import torch
from benchmarks import streaming_floor

from tests.helpers import require_kernel


def test_every_figure_is_there_for_both_kinds(capsys):
    require_kernel("stream")
    streaming_floor.main(["--quick", "--repeats", "1"])
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines if line.split()[:1] in (["LSTM"], ["GRU"])]
    assert [row[0] for row in rows] == ["LSTM", "GRU"]
    for row in rows:
        kib, *us = (float(v) for v in row[1:7])
        # one panel of 64 columns (4 or 3 gates of 16 units, zero past them), K = I + H = 32
        assert kib == round(64 * 32 * 4 / torch.get_num_threads() / 1024)
        assert all(u > 0 for u in us), row
