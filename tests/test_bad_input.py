"""Bad input is refused by rnnkit itself with a ValueError or TypeError whose message states both
what was expected and what came, on torch.nn's fast path as well as on rnnkit's own time loop;
and a refused call leaves the layer or cell usable (the next good call gives the same result as
before the bad one). Zero-length sequences are valid by design: lengths lie in [0, T]."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import rnnkit

RNNKIT_DIR = Path(rnnkit.__file__).resolve().parent
I, H, P, T, B = 4, 5, 3, 7, 3  # input, hidden, projection size; time steps; batch

# name -> (factory, runs on torch.nn's own kernel, inside rnnkit.reference_implementation())
VARIANTS = {
    "RNN": (lambda **kw: rnnkit.RNN(I, H, **kw), True, False),
    "RNN-sigmoid": (lambda **kw: rnnkit.RNN(I, H, nonlinearity="sigmoid", **kw), False, False),
    "LSTM": (lambda **kw: rnnkit.LSTM(I, H, **kw), True, False),
    "LSTM-proj": (lambda **kw: rnnkit.LSTM(I, H, proj_size=P, **kw), True, False),
    "LSTM-peephole": (lambda **kw: rnnkit.LSTM(I, H, peephole=True, **kw), False, False),
    "GRU": (lambda **kw: rnnkit.GRU(I, H, **kw), True, False),
    "GRU-layernorm": (lambda **kw: rnnkit.GRU(I, H, layer_norm=True, **kw), False, False),
    "MinGRU": (lambda **kw: rnnkit.MinGRU(I, H, **kw), False, False),
    "MinGRU-loop": (lambda **kw: rnnkit.MinGRU(I, H, **kw), False, True),
    "MinLSTM": (lambda **kw: rnnkit.MinLSTM(I, H, **kw), False, False),
    "MinLSTM-loop": (lambda **kw: rnnkit.MinLSTM(I, H, **kw), False, True),
}
LSTM_VARIANTS = [name for name in VARIANTS if name.startswith("LSTM")]
LAYER_CLASSES = [rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU, rnnkit.MinGRU, rnnkit.MinLSTM]
TORCH_COMPATIBLE = [rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU]

CELLS = {
    "RNNCell": lambda: rnnkit.RNNCell(I, H),
    "RNNCell-sigmoid": lambda: rnnkit.RNNCell(I, H, nonlinearity="sigmoid"),
    "LSTMCell": lambda: rnnkit.LSTMCell(I, H),
    "LSTMCell-proj": lambda: rnnkit.LSTMCell(I, H, proj_size=P),
    "LSTMCell-peephole-layernorm": lambda: rnnkit.LSTMCell(I, H, peephole=True, layer_norm=True),
    "GRUCell": lambda: rnnkit.GRUCell(I, H),
    "GRUCell-layernorm": lambda: rnnkit.GRUCell(I, H, layer_norm=True),
    "MinGRUCell": lambda: rnnkit.MinGRUCell(I, H),
    "MinLSTMCell": lambda: rnnkit.MinLSTMCell(I, H),
}
CELL_CLASSES = [rnnkit.RNNCell, rnnkit.LSTMCell, rnnkit.GRUCell, rnnkit.MinGRUCell,
                rnnkit.MinLSTMCell]  # fmt: skip


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: on a busy machine, waking torch's thread pool costs far more than
    the arithmetic (tens of ms per call), so run this module single-threaded."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def shape_re(*shape: int) -> str:
    """The regex for a shape as the messages print it: (7, 3, 4), (5,), ()."""
    return re.escape(str(tuple(shape)))


def flat(out) -> list[torch.Tensor]:
    """Every tensor in a (output, state) pair, detached."""
    tensors: list[torch.Tensor] = []

    def collect(x):
        if isinstance(x, PackedSequence):
            tensors.append(x.data.detach())
        elif isinstance(x, torch.Tensor):
            tensors.append(x.detach())
        else:
            for item in x:
                collect(item)

    collect(out)
    return tensors


def assert_raised_by_rnnkit(info: pytest.ExceptionInfo) -> None:
    """The exception was raised in rnnkit's own code, not deep inside torch.nn."""
    raised_in = Path(str(info.traceback[-1].path)).resolve()
    assert RNNKIT_DIR in raised_in.parents, f"raised in {raised_in}, not by rnnkit"


def assert_refused(bad, exc: type[Exception], match: str, good=None) -> None:
    """``bad()`` raises ``exc`` matching ``match`` from rnnkit's code; ``good()`` (if given)
    returns the same before and after the refused call."""
    before = flat(good()) if good is not None else None
    with pytest.raises(exc, match=match) as info:
        bad()
    assert_raised_by_rnnkit(info)
    if good is not None:
        after = flat(good())
        assert len(after) == len(before)
        for a, b in zip(after, before, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def state_widths(layer) -> dict[str, int]:
    """Width of each hx field of a layer, from its public attributes."""
    if isinstance(layer, rnnkit.LSTM):
        return {"h": layer.proj_size or layer.hidden_size, "c": layer.hidden_size}
    return {"h": layer.hidden_size}


def make_hx(layer, batch: int | None = B, dtype=torch.float32, **override):
    """A random hx in torch layout; ``override`` replaces a field's shape, e.g. h=(1, 2, 5)."""
    rows = layer.num_layers * (2 if layer.bidirectional else 1)
    fields = []
    for name, width in state_widths(layer).items():
        shape = override.get(name, (rows, width) if batch is None else (rows, batch, width))
        fields.append(torch.randn(shape, dtype=dtype))
    return fields[0] if len(fields) == 1 else tuple(fields)


@pytest.fixture(params=list(VARIANTS))
def variant(request):
    """(name, make_layer): a factory for the variant's layer, checked to run on the intended
    path (torch.nn's kernel or rnnkit's loop); the reference loop is forced for '-loop'."""
    factory, on_torch_kernel, reference = VARIANTS[request.param]

    def make_layer(**kw):
        layer = factory(**kw)
        # Plain configurations dispatch to a compiled kernel (torch.nn's or rnnkit's C++ one),
        # the others to rnnkit's time loop; the checks run before either.
        plain = hasattr(layer, "fused_beats_torch") and not layer._rnnkit_only_options()
        assert plain is on_torch_kernel, "not the configuration under test"
        return layer

    with rnnkit.reference_implementation() if reference else contextlib.nullcontext():
        yield request.param, make_layer


def x_of(*shape: int) -> torch.Tensor:
    return torch.randn(shape)


def in_context(variant_name: str):
    """The reference-loop context for the '-loop' variants, else nothing."""
    reference = VARIANTS[variant_name][2]
    return rnnkit.reference_implementation() if reference else contextlib.nullcontext()


# -- layers: input ---------------------------------------------------------------------------


@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
def test_input_with_wrong_feature_size(variant, batch_first):
    _, make = variant
    layer = make(batch_first=batch_first)
    layout = r"\(B, T, H_in\)" if batch_first else r"\(T, B, H_in\)"
    shape = (B, T, I + 1) if batch_first else (T, B, I + 1)
    good_x = x_of(*shape[:2], I)
    assert_refused(
        lambda: layer(x_of(*shape)),
        ValueError,
        rf"^{type(layer).__name__}: expected input of shape {layout}.*H_in={I}.*"
        rf"got {shape_re(*shape)}$",
        good=lambda: layer(good_x),
    )


def test_input_with_wrong_rank(variant):
    _, make = variant
    layer = make()
    good_x = x_of(T, B, I)
    for shape in [(I,), (T, B, I, 1), ()]:
        assert_refused(
            lambda shape=shape: layer(x_of(*shape)),
            ValueError,
            rf"{type(layer).__name__}: expected input of shape \(T, B, H_in\) or \(T, H_in\) "
            rf"with H_in={I}; got {shape_re(*shape)}",
            good=lambda: layer(good_x),
        )


def test_input_that_is_not_floating_point(variant):
    _, make = variant
    layer = make()
    good_x = x_of(T, B, I)
    name = type(layer).__name__
    for bad in [
        torch.randint(0, 100, (T, B)),  # token ids, no embedding
        torch.randint(0, 100, (T, B, I)),
        torch.ones(T, B, I, dtype=torch.bool),
    ]:
        assert_refused(
            lambda bad=bad: layer(bad),
            TypeError,
            rf"{name}: input must be a floating-point tensor.*got dtype {bad.dtype}.*embedding",
            good=lambda: layer(good_x),
        )
    assert_refused(
        lambda: layer([[0.0] * I] * T),
        TypeError,
        rf"{name}: input must be a torch\.Tensor; got list",
        good=lambda: layer(good_x),
    )


def test_input_without_time_steps(variant):
    _, make = variant
    good_x = x_of(T, B, I)
    for batch_first in (False, True):
        layer = make(batch_first=batch_first)
        for shape in [(B, 0, I) if batch_first else (0, B, I), (0, I)]:
            assert_refused(
                lambda shape=shape, layer=layer: layer(x_of(*shape)),
                ValueError,
                rf"expected input with at least one time step \(T >= 1\); "
                rf"got T=0 in shape {shape_re(*shape)}",
                good=lambda layer=layer: layer(good_x),
            )


# -- layers: hx ------------------------------------------------------------------------------


def test_hx_of_wrong_shape(variant):
    _, make = variant
    layer = make()
    x = x_of(T, B, I)
    hx = make_hx(layer)
    for name, width in state_widths(layer).items():
        for bad_shape in [(1, B + 1, width), (2, B, width), (1, B, width + 1), (B, width)]:
            assert_refused(
                lambda bad_shape=bad_shape, name=name: layer(
                    x, make_hx(layer, **{name: bad_shape})
                ),
                ValueError,
                rf"{type(layer).__name__}: expected hx \({name}_0\) of shape "
                rf"{shape_re(1, B, width)}; got {shape_re(*bad_shape)}",
                good=lambda: layer(x, hx),
            )


def test_batched_hx_for_unbatched_input(variant):
    _, make = variant
    layer = make()
    x = x_of(T, I)
    width = state_widths(layer)["h"]
    good_hx = make_hx(layer, batch=None)
    assert_refused(
        lambda: layer(x, make_hx(layer)),
        ValueError,
        rf"expected hx \(h_0\) of shape {shape_re(1, width)}; got {shape_re(1, B, width)}",
        good=lambda: layer(x, good_hx),
    )


def test_hx_of_wrong_dtype(variant):
    _, make = variant
    layer = make()
    x = x_of(T, B, I)
    hx = make_hx(layer)
    for dtype in [torch.float64, torch.float16, torch.int64]:
        bad = hx.to(dtype) if isinstance(hx, torch.Tensor) else (hx[0], hx[1].to(dtype))
        field = "h" if isinstance(hx, torch.Tensor) else "c"
        assert_refused(
            lambda bad=bad: layer(x, bad),
            TypeError,
            rf"expected hx \({field}_0\) of dtype torch\.float32 like the parameters; got {dtype}",
            good=lambda: layer(x, hx),
        )


def test_hx_of_wrong_type(variant):
    name, make = variant
    layer = make()
    x = x_of(T, B, I)
    hx = make_hx(layer)
    if name in LSTM_VARIANTS:  # LSTM hx is a tuple (h_0, c_0)
        bad_values = {"Tensor": hx[0], "list": list(hx)}
        match = r"LSTM: expected hx as a tuple \(h(_0)?, c(_0)?\).*; got {}$"
    else:
        bad_values = {"tuple": (hx,), "list": [hx], "float": 0.0}
        match = type(layer).__name__ + r": hx \(h_0\) must be a torch\.Tensor; got {}$"
    for got, bad in bad_values.items():
        assert_refused(
            lambda bad=bad: layer(x, bad), TypeError, match.format(got), good=lambda: layer(x, hx)
        )


def test_lstm_hx_tuple_of_wrong_length():
    layer = rnnkit.LSTM(I, H)
    h, c = make_hx(layer)
    assert_refused(
        lambda: layer(x_of(T, B, I), (h, c, c)),
        TypeError,
        r"LSTM: expected hx as a tuple \(h_0, c_0\) of 2 tensors; got a tuple of 3",
    )


# -- layers: lengths -------------------------------------------------------------------------


def test_zero_length_sequences_are_accepted(variant):
    _, make = variant
    layer = make()
    x = x_of(T, B, I)
    hx = make_hx(layer)
    for dtype in [torch.int64, torch.int32, torch.uint8]:
        y, h_n = layer(x, hx, lengths=torch.tensor([0, T, 2], dtype=dtype))
        assert y.shape[:2] == (T, B)
        assert not y[:, 0].any()  # all padding
        for final, initial in zip(flat(h_n), flat(hx), strict=True):  # the initial state
            torch.testing.assert_close(final[:, 0], initial[:, 0], rtol=0, atol=0)
    y_all_empty, h_n = layer(x, hx, lengths=torch.zeros(B, dtype=torch.long))
    assert not y_all_empty.any()
    for final, initial in zip(flat(h_n), flat(hx), strict=True):
        torch.testing.assert_close(final, initial, rtol=0, atol=0)


def test_lengths_out_of_range(variant):
    _, make = variant
    layer = make()
    x = x_of(T, B, I)
    good_lengths = torch.tensor([T, 0, 3])
    for values in [[1, -1, 2], [1, T + 1, 2], [-3, T, T + 5]]:
        assert_refused(
            lambda values=values: layer(x, lengths=torch.tensor(values)),
            ValueError,
            rf"{type(layer).__name__}: lengths must lie in \[0, T={T}\]; "
            rf"got values from {min(values)} to {max(values)}",
            good=lambda: layer(x, lengths=good_lengths),
        )


def test_lengths_of_wrong_size(variant):
    _, make = variant
    layer = make()
    x = x_of(T, B, I)
    good_lengths = torch.tensor([T, 0, 3])
    for shape in [(B - 1,), (B + 1,), (1, B), ()]:
        assert_refused(
            lambda shape=shape: layer(x, lengths=torch.ones(shape, dtype=torch.long)),
            ValueError,
            rf"{type(layer).__name__}: expected lengths of shape \({B},\), one per sequence; "
            rf"got {shape_re(*shape)}",
            good=lambda: layer(x, lengths=good_lengths),
        )


def test_lengths_of_wrong_dtype_or_type(variant):
    _, make = variant
    layer = make()
    x = x_of(T, B, I)
    good_lengths = torch.tensor([T, 0, 3])
    for bad in [torch.tensor([3.0, 2.0, 1.0]), torch.tensor([True, False, True])]:
        assert_refused(
            lambda bad=bad: layer(x, lengths=bad),
            TypeError,
            rf"{type(layer).__name__}: lengths must have an integer dtype; got {bad.dtype}",
            good=lambda: layer(x, lengths=good_lengths),
        )
    assert_refused(
        lambda: layer(x, lengths=[T, 1, 2]),
        TypeError,
        r"lengths must be a 1-D integer torch\.Tensor; got list",
        good=lambda: layer(x, lengths=good_lengths),
    )


def test_lengths_with_a_packed_sequence(variant):
    _, make = variant
    layer = make()
    lengths = torch.tensor([T, 4, 2])
    packed = pack_padded_sequence(x_of(T, B, I), lengths)
    assert_refused(
        lambda: layer(packed, lengths=lengths),
        ValueError,
        rf"{type(layer).__name__}: a PackedSequence carries its own lengths; got lengths too",
        good=lambda: layer(packed),
    )


# -- layers: PackedSequence --------------------------------------------------------------


@pytest.mark.parametrize("variant_name", ["LSTM", "GRU", "LSTM-peephole", "MinGRU-loop"])
def test_packed_input_with_hx_of_wrong_shape(variant_name):
    with in_context(variant_name):
        layer = VARIANTS[variant_name][0]()
        packed = pack_padded_sequence(x_of(T, B, I), torch.tensor([T, 4, 2]))
        width = state_widths(layer)["h"]
        bad_hx, good_hx = make_hx(layer, h=(1, B - 1, width)), make_hx(layer)
        assert_refused(
            lambda: layer(packed, bad_hx),
            ValueError,
            rf"expected hx \(h_0\) of shape {shape_re(1, B, width)}; "
            rf"got {shape_re(1, B - 1, width)}",
            good=lambda: layer(packed, good_hx),
        )


@pytest.mark.parametrize("variant_name", ["LSTM", "LSTM-peephole"])
def test_packed_input_with_wrong_feature_size(variant_name):
    layer = VARIANTS[variant_name][0]()
    packed = pack_padded_sequence(x_of(T, B, I + 1), torch.tensor([T, 4, 2]))
    assert_refused(
        lambda: layer(packed),
        ValueError,
        rf"expected PackedSequence data of shape \(N, H_in\) with H_in={I}; "
        rf"got {shape_re(T + 4 + 2, I + 1)}",
    )


@pytest.mark.parametrize("variant_name", ["LSTM-peephole", "MinGRU"])
def test_packed_batch_first_input_with_correct_hx(variant_name):
    layer = VARIANTS[variant_name][0](batch_first=True)
    packed = pack_padded_sequence(x_of(B, T, I), torch.tensor([T, 4, 2]), batch_first=True)
    output, _ = layer(packed, make_hx(layer))
    assert isinstance(output, PackedSequence)


@pytest.mark.parametrize("variant_name", ["LSTM", "GRU-layernorm", "MinGRU"])
def test_input_of_another_dtype_than_the_parameters(variant_name):
    layer = VARIANTS[variant_name][0]()
    assert_refused(
        lambda: layer(x_of(T, B, I).double()),
        TypeError,
        rf"{type(layer).__name__}: expected input of dtype torch\.float32 like the parameters; "
        r"got torch\.float64",
    )


# -- layers: step ----------------------------------------------------------------------------


def test_step_on_a_bidirectional_layer(variant):
    _, make = variant
    layer = make(bidirectional=True)
    x = x_of(T, B, I)
    assert_refused(
        lambda: layer.step(x_of(B, I)),
        ValueError,
        rf"{type(layer).__name__}\.step: a bidirectional layer needs the whole sequence; "
        "got bidirectional=True",
        good=lambda: layer(x),
    )


def test_step_with_bad_hx_or_input(variant):
    _, make = variant
    layer = make()
    x_t = x_of(B, I)
    hx = make_hx(layer)
    width = state_widths(layer)["h"]
    assert_refused(
        lambda: layer.step(x_t, make_hx(layer, h=(1, B + 1, width))),
        ValueError,
        rf"expected hx \(h_0\) of shape {shape_re(1, B, width)}; got {shape_re(1, B + 1, width)}",
        good=lambda: layer.step(x_t, hx),
    )
    assert_refused(
        lambda: layer.step(torch.randint(0, 10, (B, I))),
        TypeError,
        r"must be a floating-point tensor.*got dtype torch\.int64",
        good=lambda: layer.step(x_t, hx),
    )


@pytest.mark.parametrize("shape", [(T, B, I), (B, I + 1)], ids=["3d", "feature_size"])
def test_step_with_wrongly_shaped_input(shape):
    layer = rnnkit.GRU(I, H)
    assert_refused(
        lambda: layer.step(x_of(*shape)),
        ValueError,
        rf"GRU\.step: expected x_t of shape \(B, {I}\) or \({I},\); got {shape_re(*shape)}",
    )


# -- layers and cells: constructor arguments ---------------------------------------------------


@pytest.mark.parametrize("cls", LAYER_CLASSES, ids=lambda c: c.__name__)
def test_dropout_outside_0_1(cls):
    for p in [-0.1, 1.0, 1.5, float("nan"), "0.5", True]:
        assert_refused(
            lambda p=p: cls(I, H, 2, dropout=p),
            ValueError,
            rf"dropout must be a probability in \[0, 1\); got {re.escape(repr(p))}",
        )
    assert cls(I, H, 2, dropout=0.999).dropout == 0.999


@pytest.mark.parametrize("cls", TORCH_COMPATIBLE, ids=lambda c: c.__name__)
def test_recurrent_dropout_outside_0_1(cls):
    for p in [-0.1, 1.0, 2]:
        assert_refused(
            lambda p=p: cls(I, H, recurrent_dropout=p),
            ValueError,
            rf"recurrent_dropout must be a probability in \[0, 1\); got {p}",
        )
    assert cls(I, H, recurrent_dropout=0.999).recurrent_dropout == 0.999


@pytest.mark.parametrize("cls", LAYER_CLASSES + CELL_CLASSES, ids=lambda c: c.__name__)
def test_bad_sizes(cls):
    for sizes, name, value in [
        ((I, 0), "hidden_size", 0),
        ((0, H), "input_size", 0),
        ((I, -2), "hidden_size", -2),
        ((I, 5.0), "hidden_size", 5.0),
        ((I, None), "hidden_size", None),
    ]:
        assert_refused(
            lambda sizes=sizes: cls(*sizes),
            ValueError,
            rf"{name} must be a positive int; got {value!r}",
        )


@pytest.mark.parametrize("cls", LAYER_CLASSES, ids=lambda c: c.__name__)
def test_bad_num_layers(cls):
    for num_layers in [0, -1, 1.0]:
        assert_refused(
            lambda num_layers=num_layers: cls(I, H, num_layers),
            ValueError,
            rf"num_layers must be a positive int; got {num_layers!r}",
        )


@pytest.mark.parametrize("cls", [rnnkit.RNN, rnnkit.RNNCell], ids=lambda c: c.__name__)
def test_unknown_nonlinearity(cls):
    for nonlinearity in ["gelu", "Tanh", "", None, ["tanh"]]:
        assert_refused(
            lambda nonlinearity=nonlinearity: cls(I, H, nonlinearity=nonlinearity),
            ValueError,
            r"nonlinearity must be one of \['relu', 'sigmoid', 'tanh'\]; "
            rf"got {re.escape(repr(nonlinearity))}",
        )


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.LSTMCell], ids=lambda c: c.__name__)
def test_bad_proj_size(cls):
    for proj_size in [H, H + 1]:
        assert_refused(
            lambda proj_size=proj_size: cls(I, H, proj_size=proj_size),
            ValueError,
            rf"proj_size must be smaller than hidden_size \({H}\); got {proj_size}",
        )
    for proj_size in [-1, 2.0]:
        assert_refused(
            lambda proj_size=proj_size: cls(I, H, proj_size=proj_size),
            ValueError,
            rf"proj_size must be a non-negative int; got {proj_size!r}",
        )
    module = cls(I, H, proj_size=H - 1)  # the largest valid projection
    x = x_of(T, B, I) if cls is rnnkit.LSTM else x_of(B, I)
    assert module(x)[0].shape[-1] == H - 1


# -- cells -----------------------------------------------------------------------------------


def cell_widths(cell) -> dict[str, int]:
    if isinstance(cell, rnnkit.LSTMCell):
        return {"h": cell.equations.output_size, "c": cell.hidden_size}
    return {"h": cell.hidden_size}


def cell_state(cell, batch: int | None = B, dtype=torch.float32, **override):
    """A random state of the cell's state type; ``override`` replaces a field's shape."""
    state_type = type(cell.initial_state(1))
    fields = []
    for name, width in cell_widths(cell).items():
        shape = override.get(name, (width,) if batch is None else (batch, width))
        fields.append(torch.randn(shape, dtype=dtype))
    return state_type(*fields)


@pytest.fixture(params=list(CELLS))
def cell(request):
    return CELLS[request.param]()


def test_cell_input_of_wrong_shape_or_dtype(cell):
    state = cell_state(cell)
    x_t = x_of(B, I)
    name = type(cell).__name__
    for shape in [(B, I + 1), (I - 1,), (T, B, I), ()]:
        assert_refused(
            lambda shape=shape: cell(x_of(*shape), state),
            ValueError,
            rf"^{name}: expected x_t of shape \(B, {I}\) or \({I},\); got {shape_re(*shape)}$",
            good=lambda: cell(x_t, state),
        )
    assert_refused(
        lambda: cell(torch.randint(0, 10, (B, I))),
        TypeError,
        rf"{name}: x_t must be a floating-point tensor.*got dtype torch\.int64",
        good=lambda: cell(x_t, state),
    )


def test_cell_state_of_wrong_shape(cell):
    x_t = x_of(B, I)
    state = cell_state(cell)
    for name, width in cell_widths(cell).items():
        for bad_shape in [(B - 1, width), (B, width + 1), (1, B, width), (width,)]:
            bad = cell_state(cell, **{name: bad_shape})
            assert_refused(
                lambda bad=bad: cell(x_t, bad),
                ValueError,
                rf"^{type(cell).__name__}: expected state\.{name} of shape "
                rf"{shape_re(B, width)}; got {shape_re(*bad_shape)}$",
                good=lambda: cell(x_t, state),
            )


def test_cell_state_of_wrong_type(cell):
    x_t = x_of(B, I)
    state = cell_state(cell)
    state_name = type(state).__name__
    if len(state) == 1:  # a bare tensor is fine for a single-field state
        torch.testing.assert_close(cell(x_t, state.h), cell(x_t, state), rtol=0, atol=0)
        bad_values = {"list": [state.h], "a tuple of 2": (state.h, state.h)}
    else:
        bad_values = {"Tensor": state.h, "list": list(state), "a tuple of 1": (state.h,)}
    for got, bad in bad_values.items():
        assert_refused(
            lambda bad=bad: cell(x_t, bad),
            TypeError,
            rf"expected state as {state_name}\(h(, c)?\).*; got {got}$",
            good=lambda: cell(x_t, state),
        )
    width = cell_widths(cell)["h"]
    assert_refused(
        lambda: cell(x_t, state._replace(h=None)),
        TypeError,
        rf"expected state\.h as a torch\.Tensor of shape {shape_re(B, width)}; got NoneType",
        good=lambda: cell(x_t, state),
    )


CELL_SAMPLE = ["LSTMCell", "GRUCell"]


@pytest.mark.parametrize("cell_name", CELL_SAMPLE)
def test_cell_state_of_wrong_dtype(cell_name):
    cell = CELLS[cell_name]()
    bad = cell_state(cell, dtype=torch.float64)
    assert_refused(
        lambda: cell(x_of(B, I), bad),
        TypeError,
        r"expected state\.h of dtype torch\.float32 like x_t; got torch\.float64",
    )


@pytest.mark.parametrize("cell_name", CELL_SAMPLE)
def test_unbatched_cell_state_of_wrong_shape(cell_name):
    cell = CELLS[cell_name]()
    width = cell_widths(cell)["h"]
    bad = cell_state(cell, batch=None, h=(width + 1,))
    assert_refused(
        lambda: cell(x_of(I), bad),
        ValueError,
        rf"expected state\.h of shape {shape_re(width)}; got {shape_re(width + 1)}",
    )


@pytest.mark.parametrize("cell_name", CELL_SAMPLE)
def test_unbatched_cell_accepts_a_plain_tuple_state(cell_name):
    cell = CELLS[cell_name]()
    state = cell_state(cell, batch=None)
    h, _ = cell(x_of(I), tuple(state))
    assert h.shape == state.h.shape


@pytest.mark.parametrize("cell_name", ["LSTMCell", "MinGRUCell"])
def test_cell_input_of_another_dtype_than_the_parameters(cell_name):
    cell = CELLS[cell_name]()
    assert_refused(
        lambda: cell(x_of(B, I).double()),
        TypeError,
        rf"{cell_name}: expected x_t of dtype torch\.float32 like the parameters; "
        r"got torch\.float64",
    )
