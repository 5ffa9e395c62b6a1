"""The NumPy BPTT reference against autograd through rnnkit's own time loop (not torch.nn's
kernel), including the sigmoid RNN that torch.nn lacks."""

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import reference as ref


def weights_of(layer, weights_type):
    p = {k: v.detach().numpy() for k, v in layer.state_dict().items()}
    return weights_type(p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"])


@pytest.mark.parametrize(
    "kind,nonlinearity", [("RNN", "tanh"), ("RNN", "sigmoid"), ("LSTM", None), ("GRU", None)]
)
def test_numpy_bptt_equals_autograd_through_rnnkit_loop(kind, nonlinearity):
    T, B, I, H = 6, 3, 4, 5
    kwargs = {"nonlinearity": nonlinearity} if nonlinearity else {}
    layer = getattr(rnnkit, kind)(I, H, dtype=torch.float64, **kwargs)
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(1, B, H, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(1, B, H, dtype=torch.float64, requires_grad=True)
    d_y, d_h = torch.randn(T, B, H, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)

    with rnnkit.reference_implementation():
        y, state = layer(x, (h0, c0) if kind == "LSTM" else h0)
    h_n = state[0] if kind == "LSTM" else state
    ((y * d_y).sum() + (h_n[0] * d_h).sum()).backward()

    xs, h0s = x.detach().numpy(), h0.detach()[0].numpy()
    if kind == "RNN":
        y_ref, cache = ref.rnn_forward(xs, h0s, weights_of(layer, ref.RNNWeights), nonlinearity)
        grads = ref.rnn_backward(d_y.numpy(), d_h.numpy(), cache)
    elif kind == "LSTM":
        y_ref, _, cache = ref.lstm_forward(
            xs, h0s, c0.detach()[0].numpy(), weights_of(layer, ref.LSTMWeights)
        )
        grads = ref.lstm_backward(d_y.numpy(), d_h.numpy(), None, cache)
        np.testing.assert_allclose(grads.c0, c0.grad[0].numpy(), atol=1e-10)
    else:
        y_ref, cache = ref.gru_forward(xs, h0s, weights_of(layer, ref.GRUWeights))
        grads = ref.gru_backward(d_y.numpy(), d_h.numpy(), cache)

    np.testing.assert_allclose(y_ref, y.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(grads.x, x.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(grads.h0, h0.grad[0].numpy(), atol=1e-10)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        want = getattr(layer, f"{name}_l0").grad.numpy()
        np.testing.assert_allclose(getattr(grads.weights, name), want, atol=1e-10, err_msg=name)
