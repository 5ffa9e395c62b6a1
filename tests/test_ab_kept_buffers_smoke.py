"""Smoke test of benchmarks/ab_kept_buffers.py at tiny shapes: both ways run for every kernel
and give the same outputs and gradients. (No timing is asserted.)"""

from __future__ import annotations

import re

from benchmarks import ab_kept_buffers


def test_pooled_and_fresh_buffers_agree(capsys):
    ab_kept_buffers.main(["--quick", "--repeats", "1", "--heap", "default"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("quick")]
    ways = [re.findall(r"pooled +[0-9.]+ +(fresh|pooled again) ", line) for line in lines]
    assert ways == [["fresh"], ["pooled again"]] * 2 * len(ab_kept_buffers.KERNELS)
    modes = [[kind, mode] for kind in ab_kept_buffers.KERNELS for mode in ("train", "infer")]
    assert [line.split()[1:3] for line in lines] == [m for m in modes for _ in range(2)]
    for line in lines:
        (within,) = re.findall(r"within ([0-9.e+-]+)\)", line)
        assert float(within) < 1e-6, line
