"""Fused CPU kernels: the time loop and BPTT in C++ behind the same layers.

:func:`fused_direction` is the one entry point the time loop (:mod:`rnnkit.layers.recurrence`)
calls; it returns None whenever no fused kernel applies (an option it lacks, a device other than
the CPU, bfloat16, autocast, no compiler), and the readable Python path runs instead.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..cells.base import CellEquations, Params
from ..cells.lstm import LSTMEquations, LSTMState
from .build import backend as backend
from .build import load_extension

KERNELS = ("lstm",)


def fused_direction(
    equations: CellEquations,
    params: Params,
    x: Tensor,
    state: Any,
    lengths: Tensor | None,
    recurrent_mask: Tensor | None,
) -> tuple[Tensor, Any] | None:
    """Run one direction over x (T, B, I) (already reversed if it is the reverse direction);
    None if no fused kernel applies."""
    if not _eligible(equations, x):
        return None
    if load_extension("lstm") is None:
        return None
    from .lstm import LSTMFunction

    order, batch_sizes = _sort_by_length(lengths, x.shape[0])
    p = params
    h0, c0 = state.h, state.c
    mask = recurrent_mask
    if order is not None:
        x, h0, c0 = x.index_select(1, order), h0.index_select(0, order), c0.index_select(0, order)
        mask = None if mask is None else mask.index_select(0, order)
    h_all, h_n, c_n = LSTMFunction.apply(
        x, h0, c0, p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"),
        p.get("weight_peephole"), mask, batch_sizes,
    )  # fmt: skip
    if order is not None:
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)
        h_all, h_n, c_n = (
            h_all.index_select(1, inverse),
            h_n.index_select(0, inverse),
            c_n.index_select(0, inverse),
        )
    return h_all, LSTMState(h_n, c_n)


def _eligible(equations: CellEquations, x: Tensor) -> bool:
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return False
    if torch.is_autocast_enabled("cpu"):
        return False
    return (
        isinstance(equations, LSTMEquations)
        and not equations.layer_norm
        and not equations.proj_size
    )


def _sort_by_length(lengths: Tensor | None, num_steps: int) -> tuple[Tensor | None, list[int]]:
    """-> (batch order by decreasing length or None, active rows per step or [])."""
    if lengths is None:
        return None, []
    sorted_lengths, order = torch.sort(lengths.cpu(), descending=True, stable=True)
    counts = torch.bincount(sorted_lengths, minlength=num_steps + 1)  # sequences per length
    batch_sizes = lengths.numel() - counts.cumsum(0)[:num_steps]  # rows with length > t
    return order.to(lengths.device), batch_sizes.tolist()
