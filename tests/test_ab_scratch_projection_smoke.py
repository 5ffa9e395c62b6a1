"""Smoke test of benchmarks/ab_scratch_projection.py at tiny shapes: every kernel runs both ways
and gives the same outputs and gradients. (No timing is asserted.)"""

from __future__ import annotations

import re

from benchmarks import ab_scratch_projection


def test_scratch_and_fresh_projections_agree(capsys):
    ab_scratch_projection.main(["--quick", "--repeats", "1", "--heap", "default"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("quick")]
    assert [line.split()[1:3] for line in lines] == [
        [kind, mode] for kind in ab_scratch_projection.KERNELS for mode in ("train", "infer")
    ]
    for line in lines:
        (within,) = re.findall(r"within ([0-9.e+-]+)\)", line)
        assert float(within) < 1e-6, line
