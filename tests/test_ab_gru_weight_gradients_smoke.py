"""Smoke test of benchmarks/ab_gru_weight_gradients.py at tiny shapes: both ways run, with and
without a recurrent dropout mask, and give the same outputs and gradients. (No timing is
asserted.)"""

from __future__ import annotations

import re

from benchmarks import ab_gru_weight_gradients


def test_in_place_and_transposed_operands_agree(capsys):
    ab_gru_weight_gradients.main(["--quick", "--repeats", "1", "--heap", "default"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("quick")]
    assert [line.split()[2] for line in lines] == ["0.0", "0.25"]
    for line in lines:
        (within,) = re.findall(r"within ([0-9.e+-]+)\)", line)
        assert float(within) < 1e-5, line


def test_peak_memory_of_each_way_in_fresh_processes(capsys):
    ab_gru_weight_gradients.main(["--quick", "--memory", "--heap", "default"])
    lines = [line for line in capsys.readouterr().out.splitlines() if "peak RSS" in line]
    assert [line.split()[4] for line in lines] == ["in-place", "transposed"]
    for line in lines:
        assert len(re.findall(r"\d+\.\d", line.split("runs:")[1])) == 3, line
