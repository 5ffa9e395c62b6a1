"""Gradients of rnnkit-only options by finite differences (gradcheck in float64), and the
semantics of recurrent (variational) dropout."""

import pytest
import torch

import rnnkit
from tests.helpers import assert_close

GRADCHECK_LAYERS = {
    "LSTM-peephole": lambda: rnnkit.LSTM(3, 4, 2, bidirectional=True, peephole=True),
    "LSTM-layer_norm": lambda: rnnkit.LSTM(3, 4, 2, bidirectional=True, layer_norm=True),
    "LSTM-all": lambda: rnnkit.LSTM(3, 4, peephole=True, layer_norm=True, proj_size=2),
    "GRU-layer_norm": lambda: rnnkit.GRU(3, 4, 2, bidirectional=True, layer_norm=True),
    "RNN-sigmoid": lambda: rnnkit.RNN(3, 4, 2, nonlinearity="sigmoid", bidirectional=True),
    "MinGRU": lambda: rnnkit.MinGRU(3, 4, 2, bidirectional=True),
    "MinLSTM": lambda: rnnkit.MinLSTM(3, 4, 2, bidirectional=True),
}


@pytest.mark.parametrize("name", list(GRADCHECK_LAYERS))
def test_gradcheck_with_lengths(name):
    layer = GRADCHECK_LAYERS[name]().double()
    names = [n for n, _ in layer.named_parameters()]
    x = torch.randn(5, 3, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([5, 2, 4])

    def run(x, *params):
        out = torch.func.functional_call(layer, dict(zip(names, params, strict=True)), (x,),
                                         {"lengths": lengths})  # fmt: skip
        y, h = out
        return (y, *((h,) if isinstance(h, torch.Tensor) else h))

    params = tuple(p.detach().clone().requires_grad_() for p in layer.parameters())
    assert torch.autograd.gradcheck(run, (x, *params), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_gradcheck_recurrent_dropout_with_fixed_mask(kind):
    layer = getattr(rnnkit, kind)(3, 4, 2, bidirectional=True, recurrent_dropout=0.3).double()
    layer.train()
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)

    def run(x):
        torch.manual_seed(7)  # the same masks at every evaluation
        y, h = layer(x, lengths=torch.tensor([5, 3]))
        return (y, *((h,) if isinstance(h, torch.Tensor) else h))

    assert torch.autograd.gradcheck(run, (x,), eps=1e-6, atol=1e-6)


def test_recurrent_dropout_is_one_mask_per_sequence_shared_across_time():
    p = 0.5
    layer = rnnkit.GRU(3, 4, recurrent_dropout=p).double().train()
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    torch.manual_seed(11)
    y, _ = layer(x)
    # The same mask, drawn the way the layer draws it, applied by hand in a naive loop.
    torch.manual_seed(11)
    mask = torch.empty(2, 4, dtype=torch.float64).bernoulli_(1 - p) / (1 - p)
    cell = rnnkit.GRUCell(3, 4, dtype=torch.float64)
    cell.load_state_dict({k[: -len("_l0")]: v for k, v in layer.state_dict().items()})
    eq, params = cell.equations, dict(cell.named_parameters())
    h, outs = torch.zeros(2, 4, dtype=torch.float64), []
    for x_t in x:
        h, _ = eq.step(eq.project_input(x_t, params), rnnkit.GRUState(h), params, mask)
        outs.append(h)
    assert_close(y, torch.stack(outs), 1e-12)
    assert (mask == 0).any() and (mask != 0).any()


def test_recurrent_dropout_is_off_in_eval_mode_and_changes_training_outputs():
    layer = rnnkit.LSTM(3, 8, recurrent_dropout=0.5)
    plain = torch.nn.LSTM(3, 8)
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(5, 2, 3)
    layer.eval()
    assert_close(layer(x)[0], plain(x)[0], 1e-6)
    layer.train()
    assert (layer(x)[0] - plain(x)[0]).abs().max() > 1e-2


def test_between_layer_dropout_only_in_training():
    layer = rnnkit.LSTM(3, 8, num_layers=2, dropout=0.5, peephole=True)
    x = torch.randn(5, 2, 3)
    layer.eval()
    assert torch.equal(layer(x)[0], layer(x)[0])
    layer.train()
    assert not torch.equal(layer(x)[0], layer(x)[0])
