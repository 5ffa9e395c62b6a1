"""Streaming: a layer advanced chunk by chunk, or step by step, with carried state equals the
whole sequence at once."""

import pytest
import torch

import rnnkit
from tests.helpers import assert_close

LAYERS = {
    "LSTM": lambda: rnnkit.LSTM(3, 5, 2),
    "LSTM-peephole-proj": lambda: rnnkit.LSTM(3, 5, 2, peephole=True, proj_size=2),
    "GRU": lambda: rnnkit.GRU(3, 5, 2, batch_first=True),
    "RNN-sigmoid": lambda: rnnkit.RNN(3, 5, 2, nonlinearity="sigmoid"),
    "MinGRU": lambda: rnnkit.MinGRU(3, 5, 2),
    "MinLSTM": lambda: rnnkit.MinLSTM(3, 5, 2, batch_first=True),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_chunks_and_steps_equal_whole_sequence(name):
    layer = LAYERS[name]().double().eval()
    time_dim = 1 if layer.batch_first else 0
    x = torch.randn(2, 11, 3, dtype=torch.float64)
    x = x if layer.batch_first else x.transpose(0, 1)
    whole, h_whole = layer(x)

    hx, chunks = None, []
    for chunk in x.split(4, dim=time_dim):
        y, hx = layer(chunk, hx)
        chunks.append(y)
    assert_close(torch.cat(chunks, dim=time_dim), whole, 1e-12)

    hx, steps = None, []
    for x_t in x.unbind(time_dim):
        y_t, hx = layer.step(x_t, hx)
        steps.append(y_t)
    assert_close(torch.stack(steps, dim=time_dim), whole, 1e-12)
    for got, want in zip(
        (hx,) if isinstance(hx, torch.Tensor) else hx,
        (h_whole,) if isinstance(h_whole, torch.Tensor) else h_whole,
        strict=True,
    ):
        assert_close(got, want, 1e-12)
