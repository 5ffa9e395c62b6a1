"""rnnkit.RNN/LSTM/GRU against torch.nn: weights, state_dicts, outputs, states, gradients.

Both of rnnkit's paths are checked: the torch kernel it hands plain configurations to, and its
own time loop (``reference_implementation``), over the product of options torch.nn tests.
"""

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit
from rnnkit.layers.torch_compat import onednn_lacks_autocast_lstm
from tests.helpers import TOLERANCE, assert_close, forward_backward

PAIRS = {"RNN": (rnnkit.RNN, nn.RNN), "LSTM": (rnnkit.LSTM, nn.LSTM), "GRU": (rnnkit.GRU, nn.GRU)}
CONFIGS = [
    (kind, layers, bidi, batch_first, bias, proj)
    for kind, layers, bidi, batch_first, bias, proj in itertools.product(
        ["RNN", "LSTM", "GRU"], [1, 2], [False, True], [False, True], [True, False], [0, 3]
    )
    if proj == 0 or kind == "LSTM"
]


def make_pair(kind, dtype=torch.float64, **kwargs):
    ours_cls, torch_cls = PAIRS[kind]
    theirs = torch_cls(5, 6, dtype=dtype, **kwargs)
    ours = ours_cls(5, 6, dtype=dtype, **kwargs)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def initial_state(kind, layers, bidi, batch, proj, dtype):
    rows = layers * (2 if bidi else 1)
    h = torch.randn(rows, batch, proj or 6, dtype=dtype)
    return (h, torch.randn(rows, batch, 6, dtype=dtype)) if kind == "LSTM" else h


@pytest.mark.parametrize("reference", [False, True], ids=["kernel", "loop"])
@pytest.mark.parametrize("kind,layers,bidi,batch_first,bias,proj", CONFIGS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_torch_nn(kind, layers, bidi, batch_first, bias, proj, dtype, reference):
    kwargs = dict(num_layers=layers, bidirectional=bidi, batch_first=batch_first, bias=bias)
    if proj:
        kwargs["proj_size"] = proj
    ours, theirs = make_pair(kind, dtype, **kwargs)
    x = torch.randn(3, 7, 5, dtype=dtype) if batch_first else torch.randn(7, 3, 5, dtype=dtype)
    hx = initial_state(kind, layers, bidi, 3, proj, dtype)
    with rnnkit.reference_implementation() if reference else _nothing():
        got, got_grads = forward_backward(ours, x, hx)
    want, want_grads = forward_backward(theirs, x, hx)
    tol = TOLERANCE[dtype]
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert_close(g, w, tol, f"output {i}")
    assert got_grads.keys() == want_grads.keys()
    for name in want_grads:
        assert_close(got_grads[name], want_grads[name], tol, f"grad {name}")


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_unbatched_input_and_default_state(kind):
    ours, theirs = make_pair(kind, num_layers=2)
    x = torch.randn(6, 5, dtype=torch.float64)
    for reference in (False, True):
        with rnnkit.reference_implementation() if reference else _nothing():
            got = forward_backward(ours, x)[0]
        want = forward_backward(theirs, x)[0]
        for g, w in zip(got, want, strict=True):
            assert_close(g, w, 1e-10, f"reference={reference}")


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_same_initialisation_and_state_dict_both_ways(kind):
    ours_cls, torch_cls = PAIRS[kind]
    torch.manual_seed(3)
    ours = ours_cls(4, 5, num_layers=2, bidirectional=True)
    torch.manual_seed(3)
    theirs = torch_cls(4, 5, num_layers=2, bidirectional=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for name, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[name], value), name
    assert isinstance(ours, torch_cls)
    # rnnkit -> torch.nn: a fresh torch layer takes an rnnkit state_dict unchanged.
    fresh = torch_cls(4, 5, num_layers=2, bidirectional=True)
    fresh.load_state_dict(ours.state_dict())
    x = torch.randn(5, 2, 4)
    assert_close(fresh(x)[0], ours(x)[0], 1e-5)


@pytest.mark.parametrize("reference", [False, True], ids=["kernel", "loop"])
@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_packed_sequence_matches_torch_nn(kind, enforce_sorted, reference):
    ours, theirs = make_pair(kind, num_layers=2, bidirectional=True)
    lengths = torch.tensor([6, 4, 4, 1]) if enforce_sorted else torch.tensor([4, 6, 1, 4])
    x = torch.randn(6, 4, 5, dtype=torch.float64)
    packed = pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted)
    hx = initial_state(kind, 2, True, 4, 0, torch.float64)
    with rnnkit.reference_implementation() if reference else _nothing():
        out, _ = ours(packed, hx)
        got, got_grads = forward_backward(ours, packed, hx)
    want, want_grads = forward_backward(theirs, packed, hx)
    assert isinstance(out, nn.utils.rnn.PackedSequence)
    assert torch.equal(out.batch_sizes, packed.batch_sizes)
    for g, w in zip(got, want, strict=True):
        assert_close(g, w, 1e-10)
    for name in want_grads:
        assert_close(got_grads[name], want_grads[name], 1e-10, name)


def test_bfloat16_runs_on_both_paths_and_tracks_float32():
    lstm = rnnkit.LSTM(5, 6, num_layers=2)
    x = torch.randn(7, 3, 5)
    want, _ = lstm(x)
    lstm_bf16 = rnnkit.LSTM(5, 6, num_layers=2, dtype=torch.bfloat16)
    lstm_bf16.load_state_dict(lstm.state_dict())
    for reference in (False, True):
        with rnnkit.reference_implementation() if reference else _nothing():
            got, (h, c) = lstm_bf16(
                x.bfloat16(), lengths=torch.tensor([7, 5, 2]) if reference else None
            )
        assert got.dtype == h.dtype == c.dtype == torch.bfloat16
    got, _ = lstm_bf16(x.bfloat16())
    assert_close(got.float(), want, 0.05, "bf16 vs fp32")


def test_follows_dtype_conversion():
    lstm = rnnkit.LSTM(5, 6, peephole=True, layer_norm=True).double()
    x = torch.randn(4, 2, 5, dtype=torch.float64)
    y, (h, c) = lstm(x, lengths=torch.tensor([4, 2]))
    assert y.dtype == h.dtype == c.dtype == torch.float64
    assert all(p.dtype == torch.float64 for p in lstm.parameters())


def test_autocast_bfloat16_on_both_paths():
    lstm = rnnkit.LSTM(5, 6, num_layers=2)
    x, h = torch.randn(7, 3, 5), (torch.zeros(2, 3, 6), torch.zeros(2, 3, 6))
    want, _ = lstm(x, h)
    for reference in (False, True):
        with (
            rnnkit.reference_implementation() if reference else _nothing(),
            torch.autocast("cpu", dtype=torch.bfloat16),
        ):
            got, _ = lstm(x, h)
        assert_close(got.float(), want, 0.05, f"autocast, reference={reference}")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_onednn_autocast_lstm_check_matches_torch(dtype):
    """onednn_lacks_autocast_lstm says True exactly where torch.nn's LSTM raises under autocast
    on this CPU; rnnkit.LSTM then runs torch's ATen kernel, padded and packed input alike."""
    torch_lstm = nn.LSTM(5, 6)
    x = torch.randn(7, 3, 5)
    with torch.autocast("cpu", dtype=dtype):
        lacks = onednn_lacks_autocast_lstm(x)
        try:
            torch_lstm(x)
            raised = False
        except RuntimeError as error:
            assert "primitive descriptor" in str(error)
            raised = True
    assert lacks == raised
    lstm = rnnkit.LSTM(5, 6)
    lstm.load_state_dict(torch_lstm.state_dict())
    want, _ = lstm(x)
    packed = pack_padded_sequence(x, torch.tensor([7, 4, 2]))
    want_packed, _ = lstm(packed)
    with torch.autocast("cpu", dtype=dtype):
        got, _ = lstm(x)
        got_packed, _ = lstm(packed)
    assert_close(got.float(), want, 0.05, "autocast, padded")
    assert_close(got_packed.data.float(), want_packed.data, 0.05, "autocast, packed")
    assert torch.backends.mkldnn.enabled  # restored after the call


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnnkit.LSTM(3, 4, 2, bidirectional=True, peephole=True, recurrent_dropout=0.2),
        lambda: rnnkit.GRU(3, 4, layer_norm=True, bidirectional=True),
        lambda: rnnkit.MinGRU(3, 4, 2, bidirectional=True),
    ],
)
def test_no_tensor_is_created_on_a_hard_coded_device(make):
    # On the meta device any CPU tensor created inside the layer would fail to mix in.
    layer = make().to("meta").train()
    x = torch.empty(6, 2, 3, device="meta")
    y, h = layer(x, lengths=torch.tensor([6, 3]))
    states = (h,) if isinstance(h, torch.Tensor) else h
    assert y.device.type == "meta" and all(s.device.type == "meta" for s in states)
    assert y.shape == (6, 2, 8)
