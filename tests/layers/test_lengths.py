"""A padded batch run with ``lengths`` equals running each sequence alone: outputs, final
states and every parameter gradient, both directions, every layer type and variant."""

import pytest
import torch

import rnnkit
from tests.helpers import assert_close, flatten_output

LAYERS = {
    "RNN-relu": lambda: rnnkit.RNN(4, 5, 2, nonlinearity="relu", bidirectional=True),
    "RNN-sigmoid": lambda: rnnkit.RNN(4, 5, 2, nonlinearity="sigmoid", bidirectional=True),
    "LSTM": lambda: rnnkit.LSTM(4, 5, 2, bidirectional=True),
    "LSTM-proj": lambda: rnnkit.LSTM(4, 5, 2, bidirectional=True, proj_size=3),
    "LSTM-peephole-layernorm": lambda: rnnkit.LSTM(
        4, 5, 2, bidirectional=True, peephole=True, layer_norm=True
    ),
    "GRU": lambda: rnnkit.GRU(4, 5, 2, bidirectional=True),
    "GRU-layernorm": lambda: rnnkit.GRU(4, 5, 2, bidirectional=True, layer_norm=True),
    "MinGRU": lambda: rnnkit.MinGRU(4, 5, 2, bidirectional=True),
    "MinLSTM": lambda: rnnkit.MinLSTM(4, 5, 2, bidirectional=True),
}


def random_state(layer, batch):
    """A non-zero initial state in torch layout for ``layer``."""
    rows = layer.num_layers * (2 if layer.bidirectional else 1)
    sizes = layer._equations[0].state_sizes()
    fields = tuple(torch.randn(rows, batch, n, dtype=torch.float64) for n in sizes)
    return fields[0] if len(fields) == 1 else fields


def select(hx, index):
    if isinstance(hx, torch.Tensor):
        return hx[:, index : index + 1]
    return tuple(t[:, index : index + 1] for t in hx)


@pytest.mark.parametrize("reference", [False, True], ids=["fast", "loop"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_padded_batch_equals_each_sequence_alone(name, reference):
    layer = LAYERS[name]().double()
    lengths = torch.tensor([3, 7, 1, 5])
    x = torch.randn(7, 4, 4, dtype=torch.float64)
    x[lengths.unsqueeze(0) <= torch.arange(7).unsqueeze(1)] = 1e3  # poison the padding
    hx = random_state(layer, 4)
    weights = [torch.randn(7, 4, layer.hidden_size * 2 if name != "LSTM-proj" else 6,
                           dtype=torch.float64)]  # fmt: skip

    def run_batch():
        return flatten_output(layer(x, hx, lengths=lengths))

    def run_alone(b):
        n = int(lengths[b])
        return flatten_output(layer(x[:n, b : b + 1], select(hx, b)))

    with rnnkit.reference_implementation() if reference else _Nothing():
        batch_out = run_batch()
        alone = [run_alone(b) for b in range(4)]
        # Padded outputs are exactly zero.
        pad = lengths.unsqueeze(0) <= torch.arange(7).unsqueeze(1)
        assert batch_out[0][pad].abs().max() == 0
        for b in range(4):
            n = int(lengths[b])
            assert_close(batch_out[0][:n, b : b + 1], alone[b][0], 1e-10, f"outputs of {b}")
            for i in range(1, len(batch_out)):
                assert_close(batch_out[i][:, b : b + 1], alone[b][i], 1e-10, f"state {i} of {b}")

        # Gradients: the loss of the padded batch is the sum of the per-sequence losses.
        def loss(outs, b=None):
            y = outs[0]
            w = weights[0][:, :, : y.shape[-1]]
            w = w if b is None else w[: y.shape[0], b : b + 1]
            return (y * w).sum() + sum(o.sum() for o in outs[1:])

        layer.zero_grad()
        loss(run_batch()).backward()
        batch_grads = {n: p.grad.clone() for n, p in layer.named_parameters()}
        layer.zero_grad()
        sum(loss(run_alone(b), b) for b in range(4)).backward()
        for n, p in layer.named_parameters():
            assert_close(batch_grads[n], p.grad, 1e-10, f"grad {n}")


class _Nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_zero_length_sequence_keeps_initial_state_and_outputs_zeros():
    lstm = rnnkit.LSTM(3, 4, bidirectional=True)
    h0, c0 = torch.randn(2, 2, 4), torch.randn(2, 2, 4)
    y, (h, c) = lstm(torch.randn(5, 2, 3), (h0, c0), lengths=torch.tensor([0, 5]))
    assert torch.equal(y[:, 0], torch.zeros(5, 8))
    assert torch.equal(h[:, 0], h0[:, 0]) and torch.equal(c[:, 0], c0[:, 0])


def test_full_lengths_equal_no_lengths_and_lengths_can_live_anywhere():
    gru = rnnkit.GRU(3, 4, batch_first=True, bidirectional=True)
    x = torch.randn(2, 6, 3)
    y, h = gru(x)
    for lengths in (torch.tensor([6, 6]), torch.tensor([6, 6], dtype=torch.int32)):
        y2, h2 = gru(x, lengths=lengths)
        assert_close(y2, y, 1e-6)
        assert_close(h2, h, 1e-6)


def test_batch_first_with_lengths_matches_time_major():
    lstm = rnnkit.LSTM(3, 4, 2)
    lstm_bf = rnnkit.LSTM(3, 4, 2, batch_first=True)
    lstm_bf.load_state_dict(lstm.state_dict())
    x, lengths = torch.randn(6, 3, 3), torch.tensor([2, 6, 4])
    y, (h, c) = lstm(x, lengths=lengths)
    y_bf, (h_bf, c_bf) = lstm_bf(x.transpose(0, 1), lengths=lengths)
    assert_close(y_bf.transpose(0, 1), y, 1e-6)
    assert_close(h_bf, h, 1e-6)
    assert_close(c_bf, c, 1e-6)
