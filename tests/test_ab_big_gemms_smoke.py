"""Smoke test of benchmarks/ab_big_gemms.py at tiny shapes: both libraries' GEMMs agree (the
script asserts it) and every row is printed. (No timing is asserted.)"""

from __future__ import annotations

import pytest
import torch
from benchmarks import ab_big_gemms

from rnnkit.kernels import gemm


def test_ab_big_gemms_runs_every_row(capsys):
    if not gemm.onednn_applies(torch.zeros(1)):
        pytest.skip("this torch build has no oneDNN GEMMs")
    ab_big_gemms.main(["--quick", "--repeats", "1"])
    out = capsys.readouterr().out
    assert out.count(" GEMM ") == 4
    for kind in ab_big_gemms.LAYERS:
        assert f"quick  {kind}" in out
