"""The fused GRU kernel (C++ time loop and hand-written BPTT) equals rnnkit's reference Python
loop: outputs, h_n and every parameter and input gradient, over the layer options it handles;
its autograd Function passes gradcheck; and the fused path is really the one taken."""

from types import SimpleNamespace

import pytest
import torch

import rnnkit
import rnnkit.kernels
from rnnkit.cells.gru import GRUEquations, GRUState
from rnnkit.kernels import gemm
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
@pytest.mark.parametrize("layer_norm", [False, True], ids=["plain", "ln"])
def test_fused_equals_reference_loop(
    calls, layer_norm, bidirectional, num_layers, bias, ragged, recurrent_dropout, batch_first,
    dtype,
):  # fmt: skip
    T, B, I, H = 6, 10, 5, 12  # B, 3H >= 8 and not multiples of 8: AVX blocks and the rest
    layer = rnnkit.GRU(
        I, H, num_layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional,
        recurrent_dropout=recurrent_dropout, dtype=dtype, layer_norm=layer_norm,
    ).train()  # fmt: skip
    if layer_norm:  # gains away from 1, so a gain's gradient and its use are both checked
        with torch.no_grad():
            for name, param in layer.named_parameters():
                if name.startswith("ln_"):
                    param.uniform_(0.5, 1.5)
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


@pytest.mark.parametrize("layer_norm", [False, True], ids=["plain", "ln"])
def test_fused_equals_reference_at_a_size_that_uses_threads_and_onednn(calls, layer_norm):
    """float32 at a width where the gate loops split across threads and the GEMMs take
    oneDNN (where available)."""
    layer = rnnkit.GRU(
        16, 200, bidirectional=True, recurrent_dropout=0.2, layer_norm=layer_norm
    ).train()
    x = torch.randn(5, 40, 16)
    hx = torch.randn(2, 40, 200)
    lengths = torch.randint(0, 6, (40,))
    fused = outputs_and_grads(layer, x, hx, lengths)
    assert calls["run"] == 2
    with rnnkit.reference_implementation():
        reference = outputs_and_grads(layer, x, hx, lengths)
    for what in reference:
        assert_near(fused[what], reference[what], torch.float32, what)


@pytest.mark.parametrize("recurrent_dropout", [0.0, 0.3], ids=["no-mask", "mask"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_onednn_and_aten_weight_gradients_agree(calls, monkeypatch, bias, recurrent_dropout):
    """The weight gradients from operands the C++ backward transposed (for oneDNN) and from
    the gate gradients and states where they lie (ATen): the same float32 numbers, with
    lengths, a recurrent dropout mask and one step."""
    layer = rnnkit.GRU(7, 24, 2, bias=bias, recurrent_dropout=recurrent_dropout).train()
    for T in (6, 1):
        x, hx = torch.randn(T, 5, 7, requires_grad=True), torch.randn(2, 5, 24)
        lengths = torch.tensor([T, 1, 0, T, max(T - 2, 0)])
        monkeypatch.setattr(gemm, "use_onednn", gemm.onednn_applies)  # whatever the CPU
        transposed = outputs_and_grads(layer, x, hx, lengths)  # seeded: the same masks
        monkeypatch.setattr(gemm, "use_onednn", lambda t: False)
        in_place = outputs_and_grads(layer, x, hx, lengths)
        for what in in_place:
            assert_near(transposed[what], in_place[what], torch.float32, what)
    assert calls["run"] == 8


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
    kept = ext.gru_forward(*args, True, torch.empty(9, 11, 160), torch.empty(9, 11, 40))
    dropped = ext.gru_forward(*args, False, torch.empty(1, 11, 160), torch.empty(9, 11, 40))
    assert torch.equal(kept[0], dropped[0]) and torch.equal(kept[2], dropped[2])
    assert kept[1].shape == (9, 11, 160) and dropped[1].shape == (1, 11, 160)
    with pytest.raises(RuntimeError, match=r"gates must be a contiguous \(9, B, 4H\)"):
        ext.gru_forward(*args, True, torch.empty(1, 11, 160), torch.empty(9, 11, 40))
    with pytest.raises(RuntimeError, match=r"h_all must be a contiguous \(T, B, H\)"):
        ext.gru_forward(*args, True, torch.empty(9, 11, 160), torch.empty(9, 40, 11).mT)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("ragged", [False, True], ids=["full", "ragged"])
@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_gradcheck_layer_norm_gru_function(calls, bias, ragged, masked):
    """The layer-normalised loop's Function against finite differences: the normalised input
    side xp, h0, W_hh, the recurrent side's gains and b_hn."""
    T, B, H = 4, 3, 3
    xp = torch.randn(T, B, 3 * H, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    w_hh = torch.randn(3 * H, H, dtype=torch.float64, requires_grad=True)
    g_hh = torch.empty(3 * H, dtype=torch.float64).uniform_(0.5, 1.5).requires_grad_()
    b_hn = torch.randn(H, dtype=torch.float64, requires_grad=True)
    mask = torch.empty(B, H, dtype=torch.float64).bernoulli_(0.6) / 0.6 if masked else None
    batch_sizes = [3, 2, 1, 0] if ragged else []

    def function(xp, h0, w_hh, g_hh, *b):
        return fused_gru.LayerNormGRUFunction.apply(
            xp, h0, w_hh, g_hh, b[0] if b else None, mask, batch_sizes, True
        )

    inputs = (xp, h0, w_hh, g_hh, *([b_hn] if bias else []))
    assert torch.autograd.gradcheck(function, inputs, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_layer_norm_inference_keeps_nothing_and_equals_training_forward(calls, dtype, monkeypatch):
    """Without autograd the layer-normalised loop saves one step, not all of them; its outputs
    equal those of the forward that keeps them, and the reference loop's."""
    layer = rnnkit.GRU(5, 24, 2, bidirectional=True, layer_norm=True, dtype=dtype).eval()
    x = torch.randn(9, 6, 5, dtype=dtype)
    lengths = torch.tensor([9, 3, 0, 6, 9, 1])
    ext = rnnkit.kernels.build.load_extension("gru")
    forward, steps_saved = ext.gru_forward, []

    def spy(*args):  # the steps held by the gates, hh_hat and rstd buffers of each call
        result = forward(*args)
        steps_saved.append((result[1].shape[0], args[11].shape[0], args[12].shape[0]))
        return result

    monkeypatch.setattr(fused_gru, "load_extension", lambda name: SimpleNamespace(
        gru_forward=spy, gru_backward=ext.gru_backward))  # fmt: skip
    kept = layer(x, lengths=lengths)
    with torch.no_grad():
        dropped = layer(x, lengths=lengths)
        with rnnkit.reference_implementation():
            reference = layer(x, lengths=lengths)
    assert calls["run"] == 8
    assert steps_saved == [(9, 9, 9)] * 4 + [(1, 1, 1)] * 4
    for a, b, r in zip(dropped, kept, reference, strict=True):
        assert torch.equal(a, b.detach())
        assert_near(a, r, dtype, "inference")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("layer_norm", [False, True], ids=["plain", "ln"])
def test_non_finite_values_propagate(calls, dtype, layer_norm):
    layer = rnnkit.GRU(3, 8, dtype=dtype, layer_norm=layer_norm)
    x = torch.randn(5, 2, 3, dtype=dtype)
    x[2, 0, 1] = float("nan")
    y, h = layer(x, lengths=torch.tensor([5, 5]))
    assert calls["run"] == 1
    assert torch.isnan(y[2:, 0]).all() and torch.isnan(h[0, 0]).all()
    assert torch.isfinite(y[:, 1]).all() and torch.isfinite(h[0, 1]).all()
