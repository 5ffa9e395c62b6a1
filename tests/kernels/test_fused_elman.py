"""The fused Elman RNN kernel (C++ time loop and hand-written BPTT, tanh / relu / sigmoid) equals
rnnkit's reference Python loop: outputs, h_n and every parameter and input gradient, over the
layer options it handles; its autograd Function passes gradcheck; and the fused path is really
the one taken."""

import pytest
import torch

import rnnkit
import rnnkit.kernels
from rnnkit.cells.elman import ElmanEquations, RNNState
from rnnkit.kernels import elman as fused_elman
from rnnkit.kernels import gemm
from tests.helpers import (
    assert_direction_matches_loop,
    assert_inference_equals_torch_nn,
    assert_near,
    count_calls,
    outputs_and_grads,
    require_kernel,
)

NONLINEARITIES = ["tanh", "relu", "sigmoid"]


@pytest.fixture
def calls(monkeypatch):
    """Counts calls of the kernel's ``run``."""
    require_kernel("elman")
    return count_calls(monkeypatch, fused_elman)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("recurrent_dropout", [0.0, 0.3], ids=["no-rdrop", "rdrop"])
@pytest.mark.parametrize("lengths", [None, "full", "ragged"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_fused_equals_reference_loop(
    calls, nonlinearity, bidirectional, num_layers, bias, lengths, recurrent_dropout, dtype
):
    T, B, I, H = 6, 10, 5, 12  # B, H >= 8 and not multiples of 8: AVX blocks and the rest
    layer = rnnkit.RNN(
        I, H, num_layers, nonlinearity=nonlinearity, bias=bias, bidirectional=bidirectional,
        recurrent_dropout=recurrent_dropout, dtype=dtype,
    ).train()  # fmt: skip
    x = torch.randn(T, B, I, dtype=dtype)
    hx = torch.randn(num_layers * (2 if bidirectional else 1), B, H, dtype=dtype)
    lengths = {
        None: None,
        "full": torch.full((B,), T),
        "ragged": torch.tensor([6, 0, 3, 6, 1, 5, 2, 6, 4, 0]),
    }[lengths]

    fused = outputs_and_grads(layer, x, hx, lengths)
    directions = num_layers * (2 if bidirectional else 1)
    assert calls["run"] == directions
    with rnnkit.reference_implementation():
        reference = outputs_and_grads(layer, x, hx, lengths)
    assert calls["run"] == directions  # not during the reference
    assert fused.keys() == reference.keys()
    for what in reference:
        assert_near(fused[what], reference[what], dtype, what)
    if lengths is not None:
        assert not fused["output"][torch.arange(T).unsqueeze(1) >= lengths].any()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_fused_direction_without_lengths(calls, nonlinearity, dtype, reverse, bias):
    """No lengths and no mask (empty batch_sizes): the fused direction equals the step loop."""
    assert_direction_matches_loop(
        calls, ElmanEquations(5, 12, bias, nonlinearity), RNNState, dtype, reverse
    )


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_fused_equals_reference_at_a_size_that_uses_threads_and_onednn(calls, nonlinearity):
    """float32 at a width where the activation loops split across threads and the GEMMs take
    oneDNN (where available); the input needs no gradient."""
    layer = rnnkit.RNN(16, 200, nonlinearity=nonlinearity, bidirectional=True,
                       recurrent_dropout=0.2).train()  # fmt: skip
    x = torch.randn(5, 90, 16)
    hx = torch.randn(2, 90, 200)
    lengths = torch.randint(0, 6, (90,))

    def outputs_and_weight_grads():
        layer.zero_grad()
        torch.manual_seed(3)
        y, h_n = layer(x, hx, lengths=lengths)
        (y.square().sum() + h_n.sum()).backward()
        return [y.detach(), h_n.detach(), *(p.grad.clone() for p in layer.parameters())]

    fused = outputs_and_weight_grads()
    assert calls["run"] == 2
    with rnnkit.reference_implementation():
        reference = outputs_and_weight_grads()
    for i, (a, b) in enumerate(zip(fused, reference, strict=True)):
        assert_near(a, b, torch.float32, f"tensor {i}")


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("lengths", [None, "ragged"])
def test_inference_runs_the_kernel_and_equals_torch_nn(calls, nonlinearity, lengths):
    """Without autograd a plain RNN runs rnnkit's kernel (measured faster than torch.nn's:
    benchmarks/bench_speed.py), equal to torch.nn.RNN with the same weights; the kernel then
    keeps nothing for a backward pass."""
    torch.manual_seed(0)
    theirs = torch.nn.RNN(7, 40, 2, nonlinearity=nonlinearity, bidirectional=True)
    ours = rnnkit.RNN(7, 40, 2, nonlinearity=nonlinearity, bidirectional=True)
    ours.load_state_dict(theirs.state_dict())
    assert_inference_equals_torch_nn(ours, theirs, ragged=lengths == "ragged")
    assert calls["run"] == 4

    ext = rnnkit.kernels.build.load_extension("elman")
    w_hh = torch.randn(40, 40)
    args = (torch.randn(9, 11, 40), torch.randn(11, 40), w_hh, gemm.pack(w_hh, 11), None, [], 0)
    kept = ext.elman_forward(*args, True, torch.empty(9, 11, 40), torch.empty(40, 99))
    dropped = ext.elman_forward(*args, False, torch.empty(9, 11, 40), torch.empty(0, 99))
    assert torch.equal(kept[0], dropped[0]) and torch.equal(kept[1], dropped[1])
    assert kept[2].shape == (40, 99) and dropped[2].numel() == 0
    with pytest.raises(RuntimeError, match=r"h_all must be a contiguous \(T, B, H\) tensor"):
        ext.elman_forward(*args, True, torch.empty(9, 11, 40), torch.empty(0, 99))


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_onednn_and_aten_gemms_agree(calls, monkeypatch, nonlinearity):
    layer = rnnkit.RNN(7, 24, nonlinearity=nonlinearity, recurrent_dropout=0.25).train()
    x, hx = torch.randn(5, 9, 7), torch.randn(1, 9, 24)
    lengths = torch.tensor([5, 2, 0, 5, 4, 1, 3, 5, 2])
    monkeypatch.setattr(gemm, "use_onednn", gemm.onednn_applies)  # whatever the CPU
    default = outputs_and_grads(layer, x, hx, lengths)
    monkeypatch.setattr(gemm, "use_onednn", lambda t: False)
    aten = outputs_and_grads(layer, x, hx, lengths)
    assert calls["run"] == 2
    for what in default:
        assert_near(default[what], aten[what], torch.float32, what)


def test_packed_sequence_takes_the_fused_path(calls):
    """(relu and tanh without rnnkit-only options go to torch.nn's packed kernel.)"""
    layer = rnnkit.RNN(4, 9, nonlinearity="sigmoid", bidirectional=True, dtype=torch.float64)
    x = torch.randn(7, 3, 4, dtype=torch.float64)
    lengths = torch.tensor([4, 7, 2])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    y, h_n = layer(packed)
    assert calls["run"] == 2
    with rnnkit.reference_implementation():
        y_ref, h_ref = layer(packed)
    assert_near(y.data, y_ref.data, torch.float64, "output")
    assert_near(h_n, h_ref, torch.float64, "h_n")


@pytest.mark.parametrize("with_mask", [False, True], ids=["no-mask", "mask"])
@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_gradcheck_of_the_function(calls, nonlinearity, with_mask):
    """Every input of ElmanFunction: x, h0, both weights and both biases, with a sorted ragged
    batch (a zero-length row included) and a fixed recurrent-dropout mask."""
    T, B, I, H = 4, 3, 2, 3
    dtype = torch.float64

    def leaf(*shape):
        return (torch.randn(*shape, dtype=dtype) * 0.6).requires_grad_()

    x, h0 = leaf(T, B, I), leaf(B, H)
    w_ih, w_hh, b_ih, b_hh = leaf(H, I), leaf(H, H), leaf(H), leaf(H)
    mask = torch.bernoulli(torch.full((B, H), 0.7, dtype=dtype)) / 0.7 if with_mask else None
    batch_sizes = [2, 2, 1, 1]  # lengths 4, 2, 0
    code = fused_elman.ACTIVATIONS[nonlinearity]

    def function(*args):
        return fused_elman.ElmanFunction.apply(*args, mask, batch_sizes, code, True)

    assert torch.autograd.gradcheck(function, (x, h0, w_ih, w_hh, b_ih, b_hh))


def test_applies_to_every_elman_nonlinearity():
    for nonlinearity in NONLINEARITIES:
        assert fused_elman.applies(ElmanEquations(3, 4, True, nonlinearity))
    assert not fused_elman.applies(object())
