"""Smoke test of benchmarks/breakdown_lstm.py: it reports the C++ loops and GEMM helpers of real
training steps and leaves the kernel modules as they were. (No timing is asserted.)"""

from __future__ import annotations

import contextlib
import io

import torch
from benchmarks import breakdown_lstm

import rnnkit
from rnnkit.kernels import gemm


def test_breakdown_reports_the_kernel_parts_and_restores_the_modules():
    before = {m: (m.load_extension, m.gemm) for m in breakdown_lstm.KERNEL_MODULES}
    x = torch.randn(6, 4, 5)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        breakdown_lstm.breakdown("plain", breakdown_lstm.own_kernel(rnnkit.LSTM(5, 8)), x, 1)
        breakdown_lstm.breakdown("ln", rnnkit.LSTM(5, 8, layer_norm=True), x, 1)
        breakdown_lstm.breakdown("gru", rnnkit.GRU(5, 8), x, 1)
    plain, ln = out.getvalue().split("ln: ")
    ln, gru = ln.split("gru: ")
    for part in (
        "C++ lstm_forward",
        "C++ lstm_backward",
        "gemm.rows_t_matmul",
        "gemm.pack",
        "rest",
    ):
        assert part in plain, part
    # the input projection: inside the loop's GEMM with the panel kernel, else a GEMM before it
    assert ("gemm.linear" in plain) == (not gemm.panels_available(x))
    for part in ("C++ lstm_ln_forward", "C++ lstm_ln_backward", "gemm.rows_t_matmul"):
        assert part in ln, part
    for part in ("C++ gru_forward", "C++ gru_backward", "gemm.linear"):
        assert part in gru, part
    assert {m: (m.load_extension, m.gemm) for m in before} == before
