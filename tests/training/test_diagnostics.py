"""Gradient diagnostics: d loss/d h_t against the NumPy BPTT oracle; explode/vanish warnings."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import rnnkit
from rnnkit.config import DiagnosticsConfig
from rnnkit.reference import (
    LSTMWeights,
    RNNWeights,
    lstm_backward,
    lstm_forward,
    rnn_backward,
    rnn_forward,
)
from rnnkit.training.diagnostics import (
    GradientDiagnostics,
    GradientWarning,
    NonFiniteGradientError,
    hidden_state_gradients,
    layer_grad_norms,
    layer_of,
)
from tests.training.conftest import rnnkit_cli


def _weights(layer, cls):
    return cls(
        *(
            getattr(layer, n).detach().numpy()
            for n in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
        )
    )


@pytest.mark.parametrize("kind", ["lstm", "rnn"])
def test_hidden_state_gradients_match_numpy_bptt(kind):
    T, B, I, H = 9, 3, 4, 5
    layer = (rnnkit.LSTM if kind == "lstm" else rnnkit.RNN)(I, H, batch_first=True).double()
    x = torch.randn(B, T, I, dtype=torch.float64)
    v = torch.randn(B, H, dtype=torch.float64)
    norms = hidden_state_gradients(layer, x, lambda last: (last * v).sum())
    d_outputs = np.zeros((T, B, H))
    d_outputs[-1] = v.numpy()  # the loss reads the last output only
    xs = x.transpose(0, 1).numpy()
    if kind == "lstm":
        _, _, cache = lstm_forward(
            xs, np.zeros((B, H)), np.zeros((B, H)), _weights(layer, LSTMWeights)
        )
        hidden = lstm_backward(d_outputs, None, None, cache).hidden
    else:
        _, cache = rnn_forward(xs, np.zeros((B, H)), _weights(layer, RNNWeights))
        hidden = rnn_backward(d_outputs, None, cache).hidden
    expected = np.linalg.norm(hidden.reshape(T, -1), axis=1)
    np.testing.assert_allclose(norms[0].numpy(), expected, rtol=1e-5)


def test_stacked_layers_get_a_row_each():
    layer = rnnkit.GRU(3, 4, num_layers=3, batch_first=True)
    norms = hidden_state_gradients(layer, torch.randn(2, 6, 3), lambda last: last.sum())
    assert norms.shape == (3, 6) and bool((norms > 0).all())


def test_layer_names():
    assert layer_of("model.rnn.weight_ih_l0") == "rnn.l0"
    assert layer_of("model.rnn.bias_hh_l2_reverse") == "rnn.l2"
    assert layer_of("model.head.bias") == "head"
    module = nn.Sequential(nn.Linear(2, 2))
    module[0].weight.grad = torch.full((2, 2), 3.0)
    module[0].bias.grad = torch.full((2,), 4.0)
    norms = layer_grad_norms(module)
    assert norms["total"] == pytest.approx((4 * 9 + 2 * 16) ** 0.5)


class _Module(nn.Module):
    """A stand-in LightningModule: parameters with gradients and a ``log`` that records."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.Linear(3, 3)
        self.logged = {}

    def log(self, name, value, **kwargs):
        self.logged[name] = value


def _step(callback, module, step, scale):
    for p in module.parameters():
        p.grad = torch.full_like(p, scale)
    callback.on_before_optimizer_step(SimpleNamespace(global_step=step), module, None)


def test_exploding_gradient_warns_with_step_and_layer(tmp_path):
    callback = GradientDiagnostics(DiagnosticsConfig(explode_factor=10.0), tmp_path)
    module = _Module()
    for step in range(12):
        _step(callback, module, step, 1.0)
    assert module.logged["grad_norm"] == pytest.approx(12**0.5)
    with pytest.warns(GradientWarning, match=r"exploding gradient at step 12: .*layer rnn"):
        _step(callback, module, 12, 100.0)
    events = [
        json.loads(x) for x in (tmp_path / "diagnostics/events.jsonl").read_text().splitlines()
    ]
    assert events[-1]["kind"] == "exploding" and events[-1]["step"] == 12


def test_non_finite_gradient_stops_naming_the_layer():
    callback = GradientDiagnostics(DiagnosticsConfig(), None)
    module = _Module()
    with pytest.raises(
        NonFiniteGradientError, match=r"non-finite gradient at step 3 in layer\(s\) rnn"
    ):
        _step(callback, module, 3, float("nan"))


def test_vanishing_gradient_is_detected_on_a_contracting_rnn(tmp_path):
    """A tanh RNN with tiny recurrent weights forgets within a few steps."""
    layer = rnnkit.RNN(4, 8, batch_first=True)
    with torch.no_grad():
        layer.weight_hh_l0.mul_(0.01)
    model = SimpleNamespace(rnn=layer)
    task = SimpleNamespace(
        model=model,
        training=False,
        train=lambda mode: None,
        eval=lambda: None,
        probe=lambda batch: (torch.randn(2, 12, 4), lambda last: last.sum()),
    )
    callback = GradientDiagnostics(
        DiagnosticsConfig(vanish_threshold=1e-3, vanish_within=10), tmp_path
    )
    callback.probe_batch = object()
    norms = callback.measure(task)
    with pytest.warns(GradientWarning, match=r"vanishing gradient at step 50, layer rnn.l0"):
        callback._record(50, norms)
    rows = (tmp_path / "diagnostics/hidden_grad_norms.csv").read_text().splitlines()
    assert rows[0] == "step,layer,steps_back,norm" and len(rows) == 1 + 12


def test_exploding_configuration_stops_the_run(tiny_text, tmp_path):
    """SGD with a huge step and no clipping on a ReLU RNN: detected, named, run stopped."""
    result = rnnkit_cli(
        "train",
        "--quiet",
        "--run-dir",
        tmp_path / "run",
        *[
            a
            for kv in (
                "data.dataset=file",
                f"data.path={tiny_text}",
                "model.cell=rnn_relu",
                "model.hidden_size=32",
                "model.dropout=0",
                "optim.name=sgd",
                "optim.lr=5",
                "optim.clip=none",
                "train.batch_size=8",
                "train.bptt=16",
            )
            for a in ("--set", kv)
        ],
    )
    assert result.returncode == 1
    assert (
        "error: non-finite gradient at step" in result.stderr or "training loss is" in result.stderr
    )
    events = (tmp_path / "run/diagnostics/events.jsonl").read_text()
    assert '"kind": "nonfinite"' in events or '"kind": "exploding"' in events


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnnkit.LSTM(3, 4, num_layers=2, batch_first=True, peephole=True, proj_size=2),
        lambda: rnnkit.GRU(3, 4, num_layers=3, batch_first=True, layer_norm=True),
        lambda: rnnkit.RNN(3, 4, num_layers=2, batch_first=True, nonlinearity="relu"),
        lambda: rnnkit.MinGRU(3, 4, num_layers=2, batch_first=True),
    ],
)
def test_split_layers_run_as_the_stack(make):
    from rnnkit.training.diagnostics import split_layers

    stack = make().eval()
    x = torch.randn(2, 5, 3)
    expected, _ = stack(x)
    for layer in split_layers(stack):
        x, _ = layer(x)
    torch.testing.assert_close(x, expected)


def test_lower_layers_count_the_path_through_the_layers_above():
    """Finite differences on the lower layer's h_t of a 2-layer stack, in float64."""
    stack = rnnkit.RNN(2, 3, num_layers=2, batch_first=True).double()
    x = torch.randn(1, 4, 2, dtype=torch.float64)
    v = torch.randn(1, 3, dtype=torch.float64)
    norms = hidden_state_gradients(stack, x, lambda last: (last * v).sum())
    lower, upper = (
        (stack.weight_ih_l0, stack.weight_hh_l0, stack.bias_ih_l0, stack.bias_hh_l0),
        (stack.weight_ih_l1, stack.weight_hh_l1, stack.bias_ih_l1, stack.bias_hh_l1),
    )

    @torch.no_grad()
    def loss_with_nudge(t, delta):
        h0 = torch.zeros(1, 3, dtype=torch.float64)
        h1 = h0.clone()
        for s in range(4):
            h0 = torch.tanh(x[:, s] @ lower[0].T + lower[2] + h0 @ lower[1].T + lower[3])
            if s == t:
                h0 = h0 + delta
            h1 = torch.tanh(h0 @ upper[0].T + upper[2] + h1 @ upper[1].T + upper[3])
        return float((h1 * v).sum().detach())

    eps = 1e-6
    for t in range(4):
        grad = torch.tensor(
            [
                (loss_with_nudge(t, eps * e) - loss_with_nudge(t, -eps * e)) / (2 * eps)
                for e in torch.eye(3, dtype=torch.float64)
            ]
        )
        assert float(norms[0, t]) == pytest.approx(float(grad.norm()), rel=1e-5)


def test_measuring_does_not_move_the_training_random_stream():
    from rnnkit.training.diagnostics import split_layers

    stack = rnnkit.LSTM(3, 4, num_layers=2, batch_first=True)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    split_layers(stack)
    assert torch.equal(torch.rand(3), expected)
