"""Streaming: one time step of a stacked unidirectional LSTM (projected or not) or GRU in one C++
call, for online inference (B small, no autograd). A C++ ``Stepper`` holds the layer's weights,
laid out once for the batch size (in panels for B <= 4, oneDNN-packed above); it is rebuilt when
a parameter is replaced, updated in place or given new data."""

from __future__ import annotations

import functools
import weakref
from typing import Any

import torch
from torch import Tensor

from ..cells.gru import GRUEquations
from ..cells.lstm import LSTMEquations
from . import gemm
from .build import load_extension


def stream_step(layer: Any, x_t: Tensor, hx: Any, time_dim: int = -1) -> tuple[Tensor, Any] | None:
    """x_t (B, I) and torch-layout hx (or None) -> (y_t (B, H), hx); None if the kernel does not
    apply (an option it lacks, autograd, dropout in training mode, another device or dtype) or
    the inputs do not fit it exactly, in which case the caller validates them and takes the
    general path. With ``time_dim`` 0 or 1, x_t is a one-step chunk (1, B, I) or (B, 1, I) and
    y_t keeps that dimension."""
    if torch.is_grad_enabled() or not isinstance(x_t, Tensor):
        return None
    if layer.training and (layer.dropout > 0 or layer.recurrent_dropout > 0):
        return None  # dropout still applies without autograd; the general path draws it
    # The common case: a fresh Stepper, which checks the inputs itself. Inline rather than a
    # helper shared with _stepper: the extra call cost 0.4 of a step's 5 us at H=8 (measured).
    cached = _steppers.get(id(layer))
    if cached is not None:
        ref, stepper, kind = cached
        if ref() is layer and stepper.fresh(layer._parameters):
            stepped = _run(stepper, kind, x_t, hx, time_dim)
            if stepped is not None:
                return stepped  # else another batch size, or inputs it does not take: below
    if x_t.dim() != (2 if time_dim < 0 else 3) or (time_dim >= 0 and x_t.shape[time_dim] != 1):
        return None  # not one step: no Stepper is built or looked up
    found = _stepper(layer, x_t.shape[1 if time_dim == 0 else 0])
    return None if found is None else _run(*found, x_t, hx, time_dim)


def _run(stepper: Any, kind: str, x_t: Tensor, hx: Any, time_dim: int) -> tuple[Tensor, Any] | None:
    """The Stepper's step on x_t and hx, or None if they do not fit it."""
    if kind == "gru":
        return stepper.gru(x_t, hx, time_dim) if hx is None or isinstance(hx, Tensor) else None
    if hx is None:
        return stepper.lstm(x_t, None, None, time_dim)
    if isinstance(hx, tuple) and len(hx) == 2:
        h, c = hx
        if isinstance(h, Tensor) and isinstance(c, Tensor):
            return stepper.lstm(x_t, h, c, time_dim)
    return None


@functools.cache
def _stream_kind(cell: Any) -> str | None:
    """'lstm' or 'gru' when the cell's step has a streaming kernel, else None."""
    if isinstance(cell, LSTMEquations) and not (cell.peephole or cell.layer_norm):
        return "lstm"
    if isinstance(cell, GRUEquations) and not cell.layer_norm:
        return "gru"
    return None


# id(layer) -> (a weak reference to the layer, its Stepper, kind); outside the module, so copying
# or pickling a layer never meets it. The reference's callback drops the entry when the layer goes,
# before its id can be reused. (A dict on ids: looking up a WeakKeyDictionary makes a new weak
# reference on every call.)
_steppers: dict[int, tuple[weakref.ref[Any], Any, str]] = {}


def _stepper(layer: Any, batch_size: int) -> tuple[Any, str] | None:
    """(the layer's C++ Stepper for this batch size, "lstm" or "gru"), rebuilt when a parameter
    changes; None for a layer it does not run (an option it lacks, bidirectional), without the
    extension, off the CPU, or for parameters of a dtype it lacks. A cached one of this batch
    size that is still fresh is reused: stream_step has tried it already (the common case), so
    here it serves the calls it declined without rebuilding it."""
    cached = _steppers.get(id(layer))
    if cached is not None:
        ref, stepper, kind = cached
        if (
            ref() is layer
            and stepper.batch_size() == batch_size
            and stepper.fresh(layer._parameters)
        ):
            return stepper, kind
    kind = _stream_kind(layer._equations[0])
    if kind is None or layer.bidirectional:
        return None
    weight = layer.weight_ih_l0
    if weight.device.type != "cpu" or weight.dtype not in (torch.float32, torch.float64):
        return None
    ext = load_extension("stream")
    if ext is None:
        return None
    params = [layer.layer_parameters(k, 0) for k in range(layer.num_layers)]
    w_ih = [p["weight_ih"].detach().contiguous() for p in params]
    w_hh = [p["weight_hh"].detach().contiguous() for p in params]
    b_ih = [p["bias_ih"].detach() if "bias_ih" in p else None for p in params]
    b_hh = [p["bias_hh"].detach() if "bias_hh" in p else None for p in params]
    if kind == "lstm":  # both biases add to the same pre-activations
        b_x = [None if a is None else a + b for a, b in zip(b_ih, b_hh, strict=True)]
        b_h = [None] * len(params)
    else:  # the GRU's r multiplies W_hn h + b_hn: kept apart
        b_x, b_h = b_ih, b_hh
    packed_ih = [gemm.pack(w, batch_size) for w in w_ih]
    packed_hh = [gemm.pack(w, batch_size) for w in w_hh]
    # a projected LSTM's W_hr (P, H): h_t = W_hr (o * tanh(c_t))
    w_hr = [p["weight_hr"].detach().contiguous() if "weight_hr" in p else None for p in params]
    packed_hr = [None if w is None else gemm.pack(w, batch_size) for w in w_hr]
    watched = list(layer._parameters.values())
    stepper = ext.Stepper(
        kind == "lstm", batch_size, watched, w_ih, w_hh, b_x, b_h, packed_ih, packed_hh, w_hr,
        packed_hr,
    )  # fmt: skip
    key = id(layer)
    _steppers[key] = (weakref.ref(layer, lambda _: _steppers.pop(key, None)), stepper, kind)
    return stepper, kind
