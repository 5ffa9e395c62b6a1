"""Cells against torch.nn's cells and against naive per-gate oracles written from the papers."""

import pytest
import torch
from torch import nn

import rnnkit
from tests import oracles
from tests.helpers import assert_close


def randomise(module):
    """Move every parameter away from its initial value (layer-norm gains start at exactly 1)."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return module


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    "ours_cls,torch_cls,kwargs",
    [
        (rnnkit.RNNCell, nn.RNNCell, {}),
        (rnnkit.RNNCell, nn.RNNCell, {"nonlinearity": "relu"}),
        (rnnkit.LSTMCell, nn.LSTMCell, {}),
        (rnnkit.GRUCell, nn.GRUCell, {}),
    ],
)
def test_cell_matches_torch_cell(ours_cls, torch_cls, kwargs, bias):
    theirs = torch_cls(4, 6, bias=bias, dtype=torch.float64, **kwargs)
    ours = ours_cls(4, 6, bias=bias, dtype=torch.float64, **kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    x, h, c = (torch.randn(3, n, dtype=torch.float64) for n in (4, 6, 6))
    if torch_cls is nn.LSTMCell:
        want = theirs(x, (h, c))
        y, state = ours(x, rnnkit.LSTMState(h, c))
        assert isinstance(state, rnnkit.LSTMState)
        got = (state.h, state.c)
        assert torch.equal(y, state.h)
    else:
        want = (theirs(x, h),)
        y, state = ours(x, h)
        got = (state.h,)
    for g, w in zip(got, want, strict=True):
        assert_close(g, w, 1e-12)
    # Unbatched input works like torch's.
    y1, _ = ours(x[0])
    assert_close(y1, ours(x[:1])[0][0], 1e-12)


def test_initial_state_follows_parameters():
    cell = rnnkit.LSTMCell(3, 5, proj_size=2, dtype=torch.float64)
    state = cell.initial_state(4)
    assert state.h.shape == (4, 2) and state.c.shape == (4, 5)
    assert state.h.dtype == torch.float64 and not state.h.any()


@pytest.mark.parametrize(
    "options",
    [
        {"peephole": True},
        {"layer_norm": True},
        {"peephole": True, "layer_norm": True, "proj_size": 3},
        {"proj_size": 3},
    ],
)
def test_lstm_variants_match_naive_oracle(options):
    cell = randomise(rnnkit.LSTMCell(4, 6, dtype=torch.float64, **options))
    p = dict(cell.named_parameters())
    x = torch.randn(3, 4, dtype=torch.float64)
    h = torch.randn(3, options.get("proj_size") or 6, dtype=torch.float64)
    c = torch.randn(3, 6, dtype=torch.float64)
    want_h, want_c = oracles.lstm_step(
        p, x, h, c, peephole=options.get("peephole", False),
        layer_norm=options.get("layer_norm", False), proj="proj_size" in options,
    )  # fmt: skip
    _, state = cell(x, rnnkit.LSTMState(h, c))
    assert_close(state.h, want_h, 1e-12)
    assert_close(state.c, want_c, 1e-12)


def test_layer_norm_gru_and_sigmoid_rnn_match_naive_oracles():
    gru = randomise(rnnkit.GRUCell(4, 6, layer_norm=True, dtype=torch.float64))
    rnn = randomise(rnnkit.RNNCell(4, 6, nonlinearity="sigmoid", dtype=torch.float64))
    x, h = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    assert_close(
        gru(x, h)[0], oracles.gru_layer_norm_step(dict(gru.named_parameters()), x, h), 1e-12
    )
    assert_close(
        rnn(x, h)[0], oracles.elman_sigmoid_step(dict(rnn.named_parameters()), x, h), 1e-12
    )


@pytest.mark.parametrize(
    "cls,oracle",
    [(rnnkit.MinGRUCell, oracles.min_gru_step), (rnnkit.MinLSTMCell, oracles.min_lstm_step)],
)
def test_min_cells_match_paper_equations(cls, oracle):
    cell = cls(4, 6, dtype=torch.float64)
    x, h = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    assert_close(cell(x, h)[0], oracle(dict(cell.named_parameters()), x, h), 1e-12)


def test_forget_bias_initialisation():
    cell = rnnkit.LSTMCell(3, 4, forget_bias=1.0)
    assert torch.equal(cell.bias_ih[4:8], torch.ones(4))
    assert torch.equal(cell.bias_hh[4:8], torch.zeros(4))
    layer = rnnkit.LSTM(3, 4, num_layers=2, bidirectional=True, forget_bias=1.0)
    for name in ("bias_ih_l0", "bias_ih_l1_reverse"):
        assert torch.equal(getattr(layer, name)[4:8], torch.ones(4))
    layer.reset_parameters()
    assert torch.equal(layer.bias_hh_l1[4:8], torch.zeros(4))
