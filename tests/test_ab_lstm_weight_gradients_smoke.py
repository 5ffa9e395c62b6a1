"""Smoke test of benchmarks/ab_lstm_weight_gradients.py at tiny shapes: every method runs on
both kernels and gives the current method's weight gradients. (No timing is asserted.)"""

from __future__ import annotations

import re

from benchmarks import ab_lstm_weight_gradients


def test_every_method_gives_the_same_gradients(capsys):
    ab_lstm_weight_gradients.main(["--quick", "--rounds", "1"])
    lines = [line for line in capsys.readouterr().out.splitlines() if "config quick" in line]
    assert [line.split(",")[0] for line in lines] == ["LSTM (C++ kernel)", "LSTM layer_norm"]
    for line in lines:
        differences = [float(d) for d in re.findall(r"gradients within ([0-9.e+-]+)\)", line)]
        assert len(differences) == len(ab_lstm_weight_gradients.METHODS) - 1, line
        assert max(differences) < 1e-5, line
