"""The streaming kernel (one step of a stacked LSTM or GRU in one C++ call on a Stepper) equals
rnnkit's reference Python loop step by step, for panel-sized and GEMM-sized batches; it really
runs; it follows parameter changes; and inputs it does not take go the general path."""

import pytest
import torch

import rnnkit
from rnnkit.kernels import stream
from tests.helpers import assert_near, require_kernel

I, H = 9, 70  # N = 4H or 3H is no multiple of the 64-row panels: a partial last panel
P = 37  # a projected LSTM's h: not a multiple of the panels' widths either


def make_layer(kind, **options):
    """A 2-layer rnnkit layer of the kind: LSTM, GRU, or LSTMP (an LSTM with proj_size P)."""
    if kind == "LSTMP":
        return rnnkit.LSTM(I, H, 2, proj_size=P, **options)
    return getattr(rnnkit, kind)(I, H, 2, **options)


@pytest.fixture
def steps(monkeypatch):
    """Counts the steps the C++ Stepper took (not the general path)."""
    require_kernel("stream")
    counter = {"stepped": 0}
    original = stream.stream_step

    def counted(*args):
        result = original(*args)
        counter["stepped"] += result is not None
        return result

    monkeypatch.setattr("rnnkit.layers.base.stream_step", counted)
    return counter


def run_steps(layer, xs, hx=None, via_forward=False):
    """Step the layer through xs (T, B, I) without autograd -> (outputs (T, B, H), hx)."""
    outputs = []
    with torch.no_grad():
        for x_t in xs:
            if via_forward:
                y, hx = layer(x_t.unsqueeze(0), hx)
                y = y[0]
            else:
                y, hx = layer.step(x_t, hx)
            outputs.append(y)
    return torch.stack(outputs), hx


def states(hx):
    return hx if isinstance(hx, tuple) else (hx,)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("B", [1, 3, 6], ids=["B1", "B3-panels", "B6-gemm"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("kind", ["LSTM", "LSTMP", "GRU"])
@pytest.mark.parametrize("via_forward", [False, True], ids=["step", "forward"])
def test_steps_equal_reference_loop(steps, kind, bias, B, dtype, via_forward):
    layer = make_layer(kind, bias=bias, dtype=dtype).eval()
    xs = torch.randn(5, B, I, dtype=dtype)
    hx0 = torch.randn(2, B, P if kind == "LSTMP" else H, dtype=dtype)
    hx0 = (hx0, torch.randn(2, B, H, dtype=dtype)) if kind.startswith("LSTM") else hx0
    for start in (None, hx0):
        got, got_hx = run_steps(layer, xs, start, via_forward)
        with rnnkit.reference_implementation():
            want, want_hx = run_steps(layer, xs, start)
        assert_near(got, want, dtype, "outputs")
        for g, w in zip(states(got_hx), states(want_hx), strict=True):
            assert_near(g, w, dtype, "state")
    assert steps["stepped"] == 2 * len(xs)


@pytest.mark.parametrize("kind", ["LSTM", "LSTMP", "GRU"])
def test_stepper_follows_parameter_changes(steps, kind):
    layer = make_layer(kind, dtype=torch.float64).eval()
    xs = torch.randn(3, 2, I, dtype=torch.float64)

    def check():
        got, _ = run_steps(layer, xs)
        with rnnkit.reference_implementation():
            want, _ = run_steps(layer, xs)
        assert_near(got, want, torch.float64)

    check()
    with torch.no_grad():
        layer.weight_hh_l0.mul_(-0.5)  # in place: the version counter moves
    check()
    if kind == "LSTMP":
        with torch.no_grad():
            layer.weight_hr_l1.mul_(0.5)  # the projection's weight is watched too
        check()
    layer.weight_ih_l0 = torch.nn.Parameter(torch.randn_like(layer.weight_ih_l0))  # replaced
    check()
    layer.bias_ih_l0.data = torch.randn_like(layer.bias_ih_l0)  # new data, same Parameter
    check()
    layer.float()  # new data of another dtype for every Parameter
    xs = xs.float()
    got, _ = run_steps(layer, xs)
    with rnnkit.reference_implementation():
        want, _ = run_steps(layer, xs)
    assert_near(got, want, torch.float32)
    assert steps["stepped"] == (6 if kind == "LSTMP" else 5) * len(xs)


def test_inputs_the_stepper_does_not_take_go_the_general_path(steps):
    layer = rnnkit.LSTM(I, H, dtype=torch.float64).eval()
    x = torch.randn(I, 3, dtype=torch.float64).t()  # (3, I), not contiguous
    h = torch.randn(1, 3, H, dtype=torch.float64)
    with torch.no_grad():
        got, _ = layer.step(x, (h, h))
        assert steps["stepped"] == 0
        want, _ = layer.step(x.contiguous(), (h, h))
        assert steps["stepped"] == 1
        assert_near(got, want, torch.float64)
        with pytest.raises(TypeError, match=r"expected hx as a tuple \(h_0, c_0\)"):
            layer.step(x.contiguous(), [h, h])
        with pytest.raises(ValueError, match=r"expected hx \(c_0\) of shape \(1, 3, 70\)"):
            layer.step(x.contiguous(), (h, h[:, :2]))


def test_no_stepper_off_the_cpu_or_for_other_dtypes(steps):
    for layer, x in (
        (rnnkit.GRU(I, H, device="meta").eval(), torch.empty(2, I, device="meta")),
        (rnnkit.LSTM(I, H, dtype=torch.bfloat16).eval(), torch.randn(2, I, dtype=torch.bfloat16)),
    ):
        with torch.no_grad():
            assert stream.stream_step(layer, x, None) is None
            assert id(layer) not in stream._steppers


@pytest.mark.parametrize("option", ["dropout", "recurrent_dropout"])
def test_dropout_in_training_mode_applies_without_autograd(steps, option):
    layer = rnnkit.LSTM(I, H, 2, **{option: 0.5}, dtype=torch.float64).train()
    xs = torch.randn(3, 2, I, dtype=torch.float64)
    torch.manual_seed(0)
    dropped, _ = run_steps(layer, xs)
    assert steps["stepped"] == 0  # the general path, which draws the dropout masks
    torch.manual_seed(0)
    with rnnkit.reference_implementation():
        want, _ = run_steps(layer, xs)
    assert_near(dropped, want, torch.float64)
    clean, _ = run_steps(layer.eval(), xs)
    assert steps["stepped"] == len(xs)  # in eval mode the Stepper runs, without dropout
    assert (clean - dropped).abs().max() > 1e-3


def test_a_layers_stepper_goes_with_it_and_follows_replaced_parameters(steps):
    """The cache holds a Stepper per live layer only: dropping the layer drops its entry (a new
    layer at the same address never meets it); a replaced Parameter or a changed batch size
    builds a new one."""
    layer = rnnkit.GRU(I, H).eval()
    x = torch.randn(2, I)
    with torch.no_grad():
        layer.step(x)
        key = id(layer)
        first = stream._steppers[key][1]
        layer.step(x)
        assert stream._steppers[key][1] is first  # reused while nothing changed
        layer.step(torch.randn(3, I))
        assert stream._steppers[key][1] is not first  # another batch size
        second = stream._steppers[key][1]
        layer.bias_hh_l0 = torch.nn.Parameter(torch.zeros_like(layer.bias_hh_l0))
        got, _ = layer.step(torch.randn(3, I))
        assert stream._steppers[key][1] is not second
    del layer, first, second
    assert key not in stream._steppers
    assert steps["stepped"] == 4
