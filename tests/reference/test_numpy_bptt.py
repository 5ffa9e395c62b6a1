"""The NumPy BPTT reference against torch autograd, against finite differences, and at its
input-validation edges. Everything runs in float64 so agreement can be demanded to 1e-10."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.reference import (
    GRUWeights,
    LSTMWeights,
    RNNWeights,
    gru_backward,
    gru_forward,
    lstm_backward,
    lstm_forward,
    rnn_backward,
    rnn_forward,
)

T, B, I, H = 5, 3, 4, 6  # noqa: E741 -- the docstrings' letter legend: time, batch, input, hidden
TOL = 1e-10

# (name, kind, nonlinearity) for every recurrence the reference implements.
VARIANTS = [
    ("rnn_tanh", "rnn", "tanh"),
    ("rnn_relu", "rnn", "relu"),
    ("rnn_sigmoid", "rnn", "sigmoid"),
    ("lstm", "lstm", None),
    ("gru", "gru", None),
]
TORCH_NN_VARIANTS = [v for v in VARIANTS if v[0] != "rnn_sigmoid"]  # nn.RNN has no sigmoid
WEIGHT_TYPES = {"rnn": RNNWeights, "lstm": LSTMWeights, "gru": GRUWeights}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def assert_close(name, got, expected):
    expected = np.asarray(expected)
    # Guard against a vacuous pass: comparing two all-zero arrays proves nothing.
    assert np.abs(expected).max() > 1e-6, f"{name}: reference gradient is (near) zero"
    assert got.shape == expected.shape, f"{name}: shape {got.shape} != {expected.shape}"
    err = np.abs(got - expected).max()
    assert err <= TOL, f"{name}: max abs error {err:.3e} > {TOL:.0e}"


def torch_layer(kind, nonlinearity, bias, seed=0):
    torch.manual_seed(seed)
    if kind == "rnn":
        return torch.nn.RNN(I, H, bias=bias, nonlinearity=nonlinearity, dtype=torch.float64)
    layer_type = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    return layer_type(I, H, bias=bias, dtype=torch.float64)


def numpy_weights(kind, layer):
    def param(name):
        p = getattr(layer, f"{name}_l0", None)
        return None if p is None else p.detach().numpy().copy()

    return WEIGHT_TYPES[kind](*(param(name) for name in PARAM_NAMES))


def random_weights(kind, bias, rng, scale=0.5):
    g = GATES[kind]

    def normal(*shape):
        return scale * rng.standard_normal(shape)

    return WEIGHT_TYPES[kind](
        normal(g * H, I),
        normal(g * H, H),
        normal(g * H) if bias else None,
        normal(g * H) if bias else None,
    )


def problem(seed=1):
    """Random inputs, initial states and upstream gradients (all float64)."""
    rng = np.random.default_rng(seed)

    def normal(*shape):
        return rng.standard_normal(shape)

    return {
        "x": normal(T, B, I),
        "h0": normal(B, H),
        "c0": normal(B, H),
        "d_outputs": normal(T, B, H),
        "d_h_n": normal(B, H),
        "d_c_n": normal(B, H),
    }


def run_reference(kind, nonlinearity, weights, p):
    """Forward + backward with the NumPy reference; returns (outputs, finals, grads)."""
    if kind == "rnn":
        outputs, cache = rnn_forward(p["x"], p["h0"], weights, nonlinearity)
        return outputs, (outputs[-1],), rnn_backward(p["d_outputs"], p["d_h_n"], cache)
    if kind == "gru":
        outputs, cache = gru_forward(p["x"], p["h0"], weights)
        return outputs, (outputs[-1],), gru_backward(p["d_outputs"], p["d_h_n"], cache)
    outputs, (h_n, c_n), cache = lstm_forward(p["x"], p["h0"], p["c0"], weights)
    grads = lstm_backward(p["d_outputs"], p["d_h_n"], p["d_c_n"], cache)
    return outputs, (h_n, c_n), grads


def linear_loss(kind, outputs, finals, p):
    """L = <d_outputs, outputs> + <d_h_n, h_n> (+ <d_c_n, c_n>), the loss backward assumes.

    Works on NumPy arrays and on torch tensors (then the coefficients become tensors)."""
    coef = torch.as_tensor if isinstance(outputs, torch.Tensor) else np.asarray
    loss = (outputs * coef(p["d_outputs"])).sum() + (finals[0] * coef(p["d_h_n"])).sum()
    if kind == "lstm":
        loss = loss + (finals[1] * coef(p["d_c_n"])).sum()
    return loss


def tensor(a, requires_grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=requires_grad)


# --------------------------------------------------------------------------------------------
# Against torch.nn.RNN / LSTM / GRU (whole-sequence layers)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize(("name", "kind", "nonlinearity"), TORCH_NN_VARIANTS)
def test_forward_and_gradients_match_torch_nn(name, kind, nonlinearity, bias):
    layer = torch_layer(kind, nonlinearity, bias)
    weights = numpy_weights(kind, layer)
    p = problem()
    outputs, finals, grads = run_reference(kind, nonlinearity, weights, p)

    x = tensor(p["x"], requires_grad=True)
    h0 = tensor(p["h0"][None], requires_grad=True)  # torch wants (num_layers, B, H)
    if kind == "lstm":
        c0 = tensor(p["c0"][None], requires_grad=True)
        out, (h_n, c_n) = layer(x, (h0, c0))
        torch_finals = (h_n[0], c_n[0])
    else:
        out, h_n = layer(x, h0)
        torch_finals = (h_n[0],)
    linear_loss(kind, out, torch_finals, p).backward()

    assert_close("outputs", outputs, out.detach().numpy())
    for i, (got, expected) in enumerate(zip(finals, torch_finals, strict=True)):
        assert_close(f"final state {i}", got, expected.detach().numpy())

    assert_close("d x", grads.x, x.grad.numpy())
    assert_close("d h0", grads.h0, h0.grad[0].numpy())
    if kind == "lstm":
        assert_close("d c0", grads.c0, c0.grad[0].numpy())
    assert type(grads.weights) is WEIGHT_TYPES[kind]
    for pname in PARAM_NAMES:
        torch_param = getattr(layer, f"{pname}_l0", None)
        got = getattr(grads.weights, pname)
        if torch_param is None:
            assert got is None, f"d {pname} should be None for a layer without that bias"
        else:
            assert_close(f"d {pname}", got, torch_param.grad.numpy())


# --------------------------------------------------------------------------------------------
# Per-step d L / d h_t (and d L / d c_t), against autograd on a step-by-step torch loop
# --------------------------------------------------------------------------------------------


def torch_unrolled(kind, nonlinearity, weights, p):
    """Unroll with torch cells (or, for the sigmoid RNN, torch ops), keeping every h_t and
    c_t as a graph node with retain_grad(), and backpropagate the same linear loss.

    Returns (outputs, per-step h tensors, per-step c tensors, weight tensors).
    """
    params = [
        None if a is None else tensor(a, requires_grad=True)
        for a in (getattr(weights, n) for n in PARAM_NAMES)
    ]
    w_ih, w_hh, b_ih, b_hh = params
    bias = b_ih is not None
    if kind == "rnn" and nonlinearity != "sigmoid":
        cell = torch.nn.RNNCell(I, H, bias=bias, nonlinearity=nonlinearity, dtype=torch.float64)
    elif kind == "lstm":
        cell = torch.nn.LSTMCell(I, H, bias=bias, dtype=torch.float64)
    elif kind == "gru":
        cell = torch.nn.GRUCell(I, H, bias=bias, dtype=torch.float64)
    else:
        cell = None  # the sigmoid RNN is written with plain torch ops below
    if cell is not None:
        # Replace the cell's parameters with ours so autograd reaches our leaf tensors.
        for pname, value in zip(PARAM_NAMES, params, strict=True):
            if value is not None:
                delattr(cell, pname)
                setattr(cell, pname, value)

    x = tensor(p["x"])
    h, c = tensor(p["h0"]), tensor(p["c0"])
    hs, cs = [], []
    for t in range(T):
        if cell is None:
            a = x[t] @ w_ih.T + h @ w_hh.T
            if bias:
                a = a + b_ih + b_hh
            h = torch.sigmoid(a)
        elif kind == "lstm":
            h, c = cell(x[t], (h, c))
            c.retain_grad()
            cs.append(c)
        else:
            h = cell(x[t], h)
        h.retain_grad()
        hs.append(h)
    outputs = torch.stack(hs)
    finals = (hs[-1], cs[-1]) if kind == "lstm" else (hs[-1],)
    linear_loss(kind, outputs, finals, p).backward()
    return outputs, hs, cs, params


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize(("name", "kind", "nonlinearity"), VARIANTS)
def test_per_step_hidden_gradients_match_autograd(name, kind, nonlinearity, bias):
    weights = random_weights(kind, bias, np.random.default_rng(2))
    p = problem()
    outputs, _, grads = run_reference(kind, nonlinearity, weights, p)
    torch_outputs, hs, cs, params = torch_unrolled(kind, nonlinearity, weights, p)

    assert_close("outputs", outputs, torch_outputs.detach().numpy())
    assert grads.hidden.shape == (T, B, H)
    for t in range(T):
        assert_close(f"d L / d h_{t}", grads.hidden[t], hs[t].grad.numpy())
        if kind == "lstm":
            assert_close(f"d L / d c_{t}", grads.cell[t], cs[t].grad.numpy())
    # The sigmoid RNN has no torch.nn layer, so its weight gradients are checked here.
    for pname, param in zip(PARAM_NAMES, params, strict=True):
        if param is not None:
            assert_close(f"d {pname}", getattr(grads.weights, pname), param.grad.numpy())


def test_per_step_gradient_shows_vanishing_with_small_recurrent_weights():
    # With only a loss on the final state and a contracting recurrence, d L / d h_t must
    # shrink geometrically going back in time: the quantity grads.hidden is meant to expose.
    rng = np.random.default_rng(3)
    weights = RNNWeights(rng.standard_normal((H, I)), 0.1 * rng.standard_normal((H, H)))
    p = problem()
    _, cache = rnn_forward(p["x"], p["h0"], weights)
    grads = rnn_backward(None, p["d_h_n"], cache)
    norms = np.linalg.norm(grads.hidden.reshape(T, -1), axis=1)
    assert np.all(norms[:-1] < 0.5 * norms[1:]), norms
    np.testing.assert_array_equal(grads.hidden[-1], p["d_h_n"])


# --------------------------------------------------------------------------------------------
# Finite differences: the NumPy backward on its own, no torch involved
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kind", "nonlinearity"), VARIANTS)
def test_backward_matches_central_finite_differences(name, kind, nonlinearity):
    rng = np.random.default_rng(4)
    weights = random_weights(kind, True, rng)
    p = problem()
    _, _, grads = run_reference(kind, nonlinearity, weights, p)

    def loss_with(weights=weights, **overrides):
        q = {**p, **overrides}
        outputs, finals, _ = run_reference(kind, nonlinearity, weights, q)
        return linear_loss(kind, outputs, finals, q)

    eps = 1e-6
    g = GATES[kind]
    # A few entries of every parameter, spread over the gate blocks, plus inputs and states.
    for pname in PARAM_NAMES:
        value = getattr(weights, pname)
        for row in (0, g * H - 1, (g * H) // 2 + 1):
            index = (row, 1) if value.ndim == 2 else (row,)
            plus, minus = value.copy(), value.copy()
            plus[index] += eps
            minus[index] -= eps
            numeric = (
                loss_with(weights=_replace(weights, pname, plus))
                - loss_with(weights=_replace(weights, pname, minus))
            ) / (2 * eps)
            analytic = getattr(grads.weights, pname)[index]
            assert abs(numeric - analytic) < 1e-6 * max(1.0, abs(numeric)), (pname, index)
    state_names = ("x", "h0", "c0") if kind == "lstm" else ("x", "h0")
    for sname in state_names:
        index = (0, 1, 2) if sname == "x" else (2, 3)
        plus, minus = p[sname].copy(), p[sname].copy()
        plus[index] += eps
        minus[index] -= eps
        numeric = (loss_with(**{sname: plus}) - loss_with(**{sname: minus})) / (2 * eps)
        analytic = getattr(grads, sname)[index]
        assert abs(numeric - analytic) < 1e-6 * max(1.0, abs(numeric)), (sname, index)


def _replace(weights, pname, value):
    fields = {n: getattr(weights, n) for n in PARAM_NAMES}
    fields[pname] = value
    return type(weights)(**fields)


# --------------------------------------------------------------------------------------------
# Small API behaviours
# --------------------------------------------------------------------------------------------


def test_none_upstream_gradients_mean_zero():
    weights = random_weights("lstm", True, np.random.default_rng(5))
    p = problem()
    _, _, cache = lstm_forward(p["x"], p["h0"], p["c0"], weights)
    zeros = np.zeros((B, H))
    a = lstm_backward(p["d_outputs"], None, None, cache)
    b = lstm_backward(p["d_outputs"], zeros, zeros, cache)
    np.testing.assert_array_equal(a.weights.weight_hh, b.weights.weight_hh)
    np.testing.assert_array_equal(a.hidden, b.hidden)


def test_editing_returned_outputs_or_inputs_does_not_change_backward():
    weights = random_weights("gru", True, np.random.default_rng(6))
    p = problem()
    x = p["x"].copy()
    outputs, cache = gru_forward(x, p["h0"], weights)
    before = gru_backward(p["d_outputs"], p["d_h_n"], cache)
    outputs[...] = 0.0
    x[...] = 0.0
    weights.weight_hh[...] = 0.0
    after = gru_backward(p["d_outputs"], p["d_h_n"], cache)
    np.testing.assert_array_equal(before.x, after.x)
    np.testing.assert_array_equal(before.weights.weight_ih, after.weights.weight_ih)


# --------------------------------------------------------------------------------------------
# Validation messages
# --------------------------------------------------------------------------------------------


def _rnn_inputs():
    rng = np.random.default_rng(7)
    return random_weights("rnn", True, rng), rng.standard_normal((T, B, I)), np.zeros((B, H))


def test_rejects_x_with_wrong_input_size():
    weights, _, h0 = _rnn_inputs()
    x = np.zeros((7, B, I + 1))
    with pytest.raises(
        ValueError,
        match=r"x must have shape \(T, B, I\) with I=4 matching weight_ih \(G\*H, I\); "
        r"got \(7, 3, 5\)",
    ):
        rnn_forward(x, h0, weights)


def test_rejects_x_that_is_not_3d_or_empty_in_time():
    weights, _, h0 = _rnn_inputs()
    with pytest.raises(ValueError, match=r"x must have shape \(T, B, I\).*got \(3, 4\)"):
        rnn_forward(np.zeros((B, I)), h0, weights)
    with pytest.raises(ValueError, match=r"at least one time step \(T >= 1\); got shape"):
        rnn_forward(np.zeros((0, B, I)), h0, weights)


def test_rejects_initial_states_with_wrong_shape():
    weights, x, _ = _rnn_inputs()
    with pytest.raises(
        ValueError, match=r"h0 must have shape \(B, H\) = \(3, 6\).*got \(1, 3, 6\)"
    ):
        rnn_forward(x, np.zeros((1, B, H)), weights)
    lstm_w = random_weights("lstm", False, np.random.default_rng(8))
    with pytest.raises(ValueError, match=r"c0 must have shape \(B, H\) = \(3, 6\).*got \(3, 5\)"):
        lstm_forward(x, np.zeros((B, H)), np.zeros((B, H - 1)), lstm_w)


def test_rejects_badly_shaped_weights():
    _, x, h0 = _rnn_inputs()
    bad_ih = LSTMWeights(np.zeros((10, I)), np.zeros((10, 10)))
    with pytest.raises(
        ValueError,
        match=r"weight_ih must have shape \(G\*H, I\) with G=4 for an LSTM "
        r"\(G=4, gates i, f, g, o\); got \(10, 4\)",
    ):
        lstm_forward(x, h0, h0, bad_ih)
    bad_hh = GRUWeights(np.zeros((3 * H, I)), np.zeros((3 * H, 3 * H)))
    with pytest.raises(
        ValueError, match=r"weight_hh must have shape \(G\*H, H\) = \(18, 6\).*got \(18, 18\)"
    ):
        gru_forward(x, h0, bad_hh)
    bad_bias = RNNWeights(np.zeros((H, I)), np.zeros((H, H)), np.zeros(H), np.zeros(H + 1))
    with pytest.raises(ValueError, match=r"bias_hh must have shape \(G\*H,\) = \(6,\).*got \(7,\)"):
        rnn_forward(x, h0, bad_bias)


def test_rejects_wrong_weight_type_dtype_and_nonlinearity():
    weights, x, h0 = _rnn_inputs()
    gru_w = GRUWeights(weights.weight_ih, weights.weight_hh)
    with pytest.raises(
        ValueError, match=r"weights must be an instance of RNNWeights; got GRUWeights"
    ):
        rnn_forward(x, h0, gru_w)
    with pytest.raises(ValueError, match=r"x must be a real-valued numeric array; got dtype"):
        rnn_forward(x.astype(np.complex128), h0, weights)
    with pytest.raises(
        ValueError, match=r"nonlinearity must be one of \('tanh', 'relu', 'sigmoid'\); got 'gelu'"
    ):
        rnn_forward(x, h0, weights, nonlinearity="gelu")


def test_backward_rejects_mismatched_upstream_gradients_and_caches():
    weights, x, h0 = _rnn_inputs()
    _, cache = rnn_forward(x, h0, weights)
    with pytest.raises(
        ValueError, match=r"d_outputs must have shape \(T, B, H\) = \(5, 3, 6\).*got \(4, 3, 6\)"
    ):
        rnn_backward(np.zeros((T - 1, B, H)), None, cache)
    with pytest.raises(ValueError, match=r"d_h_n must have shape \(B, H\) = \(3, 6\).*got \(6,\)"):
        rnn_backward(None, np.zeros(H), cache)
    lstm_w = random_weights("lstm", True, np.random.default_rng(9))
    _, _, lstm_cache = lstm_forward(x, h0, h0, lstm_w)
    with pytest.raises(ValueError, match=r"d_c_n must have shape \(B, H\) = \(3, 6\)"):
        lstm_backward(None, None, np.zeros((B, H, 1)), lstm_cache)
    with pytest.raises(
        ValueError,
        match=r"cache must be the GRUCache returned by the forward function; got "
        r"RNNCache",
    ):
        gru_backward(None, None, cache)
