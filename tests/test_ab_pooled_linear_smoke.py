"""Smoke test of benchmarks/ab_pooled_linear.py at tiny shapes: every layer runs both ways and
gives the same outputs and gradients. (No timing is asserted.)"""

from __future__ import annotations

import re

from benchmarks import ab_pooled_linear


def test_reused_and_fresh_projections_agree(capsys):
    ab_pooled_linear.main(["--quick", "--repeats", "1", "--heap", "default"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("quick")]
    assert [line.split()[1] for line in lines] == ["MinGRU", "MinLSTM", "LN-GRU"]
    for line in lines:
        (within,) = re.findall(r"within ([0-9.e+-]+)\)", line)
        assert float(within) < 1e-6, line
