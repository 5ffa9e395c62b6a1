"""The fused GRU kernel (C++ time loop and hand-written BPTT) equals rnnkit's reference Python
loop: outputs, h_n and every parameter and input gradient, over the layer options it handles;
its autograd Function passes gradcheck; and the fused path is really the one taken."""

import pytest
import torch

import rnnkit
import rnnkit.kernels
from rnnkit.cells.gru import GRUEquations, GRUState
from rnnkit.kernels import gru as fused_gru
from tests.helpers import (
    assert_direction_matches_loop,
    assert_inference_equals_torch_nn,
    assert_near,
    count_calls,
    outputs_and_grads,
    require_kernel,
)


@pytest.fixture
def calls(monkeypatch):
    """Counts calls of the kernel's ``run``."""
    require_kernel("gru")
    return count_calls(monkeypatch, fused_gru)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time-major", "batch-first"])
@pytest.mark.parametrize(
    "ragged, recurrent_dropout",
    [(True, 0.0), (False, 0.3), (True, 0.3)],
    ids=["lengths", "rdrop", "lengths-rdrop"],
)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_fused_equals_reference_loop(
    calls, bidirectional, num_layers, bias, ragged, recurrent_dropout, batch_first, dtype
):
    T, B, I, H = 6, 10, 5, 12  # B, 3H >= 8 and not multiples of 8: AVX blocks and the rest
    layer = rnnkit.GRU(
        I, H, num_layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional,
        recurrent_dropout=recurrent_dropout, dtype=dtype,
    ).train()  # fmt: skip
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=dtype)
    hx = torch.randn(num_layers * (2 if bidirectional else 1), B, H, dtype=dtype)
    lengths = torch.tensor([6, 0, 3, 6, 1, 5, 2, 6, 4, 0]) if ragged else None

    fused = outputs_and_grads(layer, x, hx, lengths)
    assert calls["run"] == num_layers * (2 if bidirectional else 1)
    with rnnkit.reference_implementation():
        reference = outputs_and_grads(layer, x, hx, lengths)
    assert calls["run"] == num_layers * (2 if bidirectional else 1)  # not during the reference
    assert fused.keys() == reference.keys()
    for what in reference:
        assert_near(fused[what], reference[what], dtype, what)
    if ragged:
        y = fused["output"] if not batch_first else fused["output"].transpose(0, 1)
        assert y[torch.arange(T).unsqueeze(1) >= lengths].abs().max() == 0


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_fused_direction_without_lengths(calls, dtype, reverse, bias):
    """No lengths and no mask (empty batch_sizes): the fused direction equals the step loop."""
    assert_direction_matches_loop(calls, GRUEquations(5, 12, bias), GRUState, dtype, reverse)


def test_fused_equals_reference_at_a_size_that_uses_threads_and_onednn(calls):
    """float32 at a width where the gate loops split across threads and the GEMMs take
    oneDNN (where available)."""
    layer = rnnkit.GRU(16, 200, bidirectional=True, recurrent_dropout=0.2).train()
    x = torch.randn(5, 40, 16)
    hx = torch.randn(2, 40, 200)
    lengths = torch.randint(0, 6, (40,))
    fused = outputs_and_grads(layer, x, hx, lengths)
    assert calls["run"] == 2
    with rnnkit.reference_implementation():
        reference = outputs_and_grads(layer, x, hx, lengths)
    for what in reference:
        assert_near(fused[what], reference[what], torch.float32, what)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("ragged", [False, True], ids=["full", "ragged"])
@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_gradcheck_gru_function(calls, bias, ragged, masked):
    T, B, I, H = 4, 3, 2, 3
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    weights = [
        torch.randn(3 * H, I, dtype=torch.float64, requires_grad=True),
        torch.randn(3 * H, H, dtype=torch.float64, requires_grad=True),
    ]
    biases = [torch.randn(3 * H, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    mask = torch.empty(B, H, dtype=torch.float64).bernoulli_(0.6) / 0.6 if masked else None
    batch_sizes = [3, 2, 1, 0] if ragged else []

    def function(x, h0, w_ih, w_hh, *b):
        b_ih, b_hh = b if bias else (None, None)
        return fused_gru.GRUFunction.apply(x, h0, w_ih, w_hh, b_ih, b_hh, mask, batch_sizes, True)

    inputs = (x, h0, *weights, *(biases if bias else []))
    assert torch.autograd.gradcheck(function, inputs, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("lengths", [None, "ragged"])
def test_inference_equals_torch_nn_and_keeps_nothing(calls, lengths):
    """Without autograd the kernel runs (rnnkit's GRU infers with it) and equals torch.nn.GRU
    with the same weights; it then keeps only one step's gates, none for a backward pass."""
    torch.manual_seed(0)
    theirs = torch.nn.GRU(7, 40, 2, bidirectional=True)
    ours = rnnkit.GRU(7, 40, 2, bidirectional=True)
    ours.load_state_dict(theirs.state_dict())
    assert_inference_equals_torch_nn(ours, theirs, ragged=lengths == "ragged")
    assert calls["run"] == 4

    ext = rnnkit.kernels.build.load_extension("gru")
    w_hh = torch.randn(120, 40)
    args = (torch.randn(9, 11, 120), torch.randn(11, 40), w_hh, None, torch.randn(40), None, [])
    kept, dropped = ext.gru_forward(*args, True), ext.gru_forward(*args, False)
    assert torch.equal(kept[0], dropped[0]) and torch.equal(kept[2], dropped[2])
    assert kept[1].shape == (9, 11, 160) and dropped[1].shape == (1, 11, 160)


def test_layer_norm_is_not_fused(calls):
    assert fused_gru.applies(GRUEquations(3, 4))
    assert not fused_gru.applies(GRUEquations(3, 4, layer_norm=True))
    layer = rnnkit.GRU(3, 4, layer_norm=True)
    layer(torch.randn(5, 2, 3), lengths=torch.tensor([5, 2]))
    assert calls["run"] == 0


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_non_finite_values_propagate(calls, dtype):
    layer = rnnkit.GRU(3, 8, dtype=dtype)
    x = torch.randn(5, 2, 3, dtype=dtype)
    x[2, 0, 1] = float("nan")
    y, h = layer(x, lengths=torch.tensor([5, 5]))
    assert calls["run"] == 1
    assert torch.isnan(y[2:, 0]).all() and torch.isnan(h[0, 0]).all()
    assert torch.isfinite(y[:, 1]).all() and torch.isfinite(h[0, 1]).all()
