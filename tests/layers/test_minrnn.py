"""minGRU/minLSTM: the scan equals the step loop (non-zero initial state, lengths, long T)."""

import pytest
import torch

import rnnkit
from rnnkit.ops.scan import linear_scan
from tests.helpers import assert_close


@pytest.mark.parametrize("cls", [rnnkit.MinGRU, rnnkit.MinLSTM])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_scan_equals_step_loop(cls, with_lengths):
    layer = cls(4, 6, num_layers=2, bidirectional=True, dtype=torch.float64)
    x = torch.randn(70, 3, 4, dtype=torch.float64)  # T spans several scan chunks
    h0 = torch.randn(4, 3, 6, dtype=torch.float64)
    lengths = torch.tensor([70, 33, 1]) if with_lengths else None
    y_scan, h_scan = layer(x, h0, lengths=lengths)
    with rnnkit.reference_implementation():
        y_loop, h_loop = layer(x, h0, lengths=lengths)
    assert_close(y_scan, y_loop, 1e-10)
    assert_close(h_scan, h_loop, 1e-10)


def test_linear_scan_against_naive_loop_with_extreme_gates():
    T, B, H = 100, 2, 3
    log_a = torch.cat([torch.full((10, B, H), -50.0), torch.randn(T - 10, B, H).clamp(max=0)])
    b, h0 = torch.randn(T, B, H), torch.randn(B, H)
    got = linear_scan(log_a.double(), b.double(), h0.double(), chunk_size=16)
    h, want = h0.double(), []
    for t in range(T):
        h = log_a[t].double().exp() * h + b[t].double()
        want.append(h)
    assert_close(got, torch.stack(want), 1e-12)


@pytest.mark.parametrize("cls", [rnnkit.MinGRU, rnnkit.MinLSTM])
def test_float32_scan_stays_accurate_at_4096_steps(cls):
    layer = cls(8, 16)
    x = torch.randn(4096, 2, 8)
    h0 = torch.randn(1, 2, 16)
    with torch.no_grad():
        y32, _ = layer(x, h0)
        with rnnkit.reference_implementation():
            y64, _ = layer.double()(x.double(), h0.double())
    relative = (y32.double() - y64).norm() / y64.norm()
    assert relative < 1e-5


def test_min_rnn_has_no_recurrent_weights_and_gradients_flow():
    layer = rnnkit.MinGRU(3, 5, num_layers=2)
    assert sorted(n for n, _ in layer.named_parameters()) == [
        "bias_ih_l0", "bias_ih_l1", "weight_ih_l0", "weight_ih_l1",
    ]  # fmt: skip
    y, h = layer(torch.randn(9, 2, 3))
    (y.sum() + h.sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters())
