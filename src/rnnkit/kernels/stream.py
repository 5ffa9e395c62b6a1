"""Streaming: one time step of a stacked unidirectional LSTM or GRU in one C++ call, for online
inference (B small, no autograd). Weights are packed for oneDNN once and repacked only when a
parameter changes (its version counter moves)."""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor

from ..cells.gru import GRUEquations
from ..cells.lstm import LSTMEquations
from . import gemm
from .build import load_extension


def stream_step(layer: Any, x_t: Tensor, hx: Any) -> tuple[Tensor, Any] | None:
    """x_t (B, I) and torch-layout hx (or None) -> (y_t (B, H), hx); None if not applicable."""
    kind = _stream_kind(layer._equations[0])
    if kind is None or layer.bidirectional or torch.is_grad_enabled():
        return None
    if x_t.device.type != "cpu" or x_t.dtype not in (torch.float32, torch.float64):
        return None
    ext = load_extension("stream")
    if ext is None:
        return None
    weights = _packed_weights(layer, x_t.shape[0])
    L, B, H = layer.num_layers, x_t.shape[0], layer.hidden_size
    if kind == "lstm":
        h, c = hx if hx is not None else (x_t.new_zeros(L, B, H), x_t.new_zeros(L, B, H))
        w_ih, w_hh, p_ih, p_hh, _, _, bias = weights
        h, c = ext.lstm_stream_step(
            x_t.contiguous(), h.contiguous(), c.contiguous(), w_ih, w_hh, p_ih, p_hh, bias
        )
        return h[-1], (h, c)
    h = hx if hx is not None else x_t.new_zeros(L, B, H)
    h = ext.gru_stream_step(x_t.contiguous(), h.contiguous(), *weights[:6])
    return h[-1], h


@functools.cache
def _stream_kind(cell: Any) -> str | None:
    """'lstm' or 'gru' when the cell's step has a streaming kernel, else None."""
    if isinstance(cell, LSTMEquations) and not (cell.peephole or cell.layer_norm or cell.proj_size):
        return "lstm"
    if isinstance(cell, GRUEquations) and not cell.layer_norm:
        return "gru"
    return None


def _packed_weights(layer: Any, batch_size: int) -> tuple[list[Any], ...]:
    # The cache key: every parameter's identity and version (in-place updates bump it).
    key = tuple((id(p), p._version) for p in layer._parameters.values()) + (batch_size,)
    cached = getattr(layer, "_rnnkit_stream_cache", None)
    if cached is None or cached[0] != key:
        params = [layer.layer_parameters(k, 0) for k in range(layer.num_layers)]
        w_ih = [p["weight_ih"].detach() for p in params]
        w_hh = [p["weight_hh"].detach() for p in params]
        b_ih = [None if "bias_ih" not in p else p["bias_ih"].detach() for p in params]
        b_hh = [None if "bias_hh" not in p else p["bias_hh"].detach() for p in params]
        packed_ih = [gemm.pack(w, batch_size) for w in w_ih]
        packed_hh = [gemm.pack(w, batch_size) for w in w_hh]
        bias = [None if a is None else a + b for a, b in zip(b_ih, b_hh, strict=True)]
        cached = (key, (w_ih, w_hh, packed_ih, packed_hh, b_ih, b_hh, bias))
        layer._rnnkit_stream_cache = cached
    return cached[1]
