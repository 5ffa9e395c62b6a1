"""Fused CPU kernels: the time loop and BPTT in C++ behind the same layers.

:func:`fused_direction` is the one entry point the time loop (:mod:`rnnkit.layers.recurrence`)
calls; it returns None whenever no fused kernel applies (an option it lacks, a device other than
the CPU, bfloat16, autocast, no compiler), and the readable Python path runs instead.

Each kernel module (``lstm``, ...) provides ``applies(equations) -> bool`` and
``run(equations, params, x, state, mask, batch_sizes) -> (outputs, state)`` for a batch already
sorted by decreasing length; this module does the sorting and picks the kernel.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

import torch
from torch import Tensor

from ..cells.base import CellEquations, Params
from .build import backend as backend
from .build import load_extension

KERNELS = ("lstm", "lstm_ln", "gru", "elman", "minrnn")


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
    kernel = _kernel_for(equations, x)
    if kernel is None:
        return None
    x = x.contiguous()  # the C++ loops read raw memory
    order, batch_sizes = _sort_by_length(lengths, x.shape[0])
    if order is None:
        return kernel.run(equations, params, x, state, recurrent_mask, batch_sizes)
    order = order.to(x.device)
    sort = type(state)(*(s.index_select(0, order) for s in state))
    mask = None if recurrent_mask is None else recurrent_mask.index_select(0, order)
    outputs, final = kernel.run(
        equations, params, x.index_select(1, order), sort, mask, batch_sizes
    )
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    return outputs.index_select(1, inverse), type(final)(
        *(s.index_select(0, inverse) for s in final)
    )


def fused_available(equations: CellEquations, x: Tensor) -> bool:
    """Whether :func:`fused_direction` would run a C++ kernel for this cell and input."""
    return _kernel_for(equations, x) is not None


def _kernel_for(equations: CellEquations, x: Tensor) -> Any:
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return None
    if torch.is_autocast_enabled("cpu"):
        return None
    kernel = next((k for k in _modules() if k.applies(equations)), None)
    if kernel is None or load_extension(kernel.__name__.rsplit(".", 1)[-1]) is None:
        return None
    return kernel


@functools.cache
def _modules() -> list[Any]:
    return [importlib.import_module(f"{__name__}.{name}") for name in KERNELS]


def _sort_by_length(lengths: Tensor | None, num_steps: int) -> tuple[Tensor | None, list[int]]:
    """-> (batch order by decreasing length, or None if no reordering is needed; active rows per
    step, or [] if all are active throughout)."""
    if lengths is None:
        return None, []
    lengths = lengths.cpu()
    if bool((lengths == num_steps).all()):
        return None, []  # nothing is padded
    sorted_lengths, order = torch.sort(lengths, descending=True, stable=True)
    counts = torch.bincount(sorted_lengths, minlength=num_steps + 1)  # sequences per length
    batch_sizes = lengths.numel() - counts.cumsum(0)[:num_steps]  # rows with length > t
    if torch.equal(sorted_lengths, lengths):
        return None, batch_sizes.tolist()  # already in order: no gather
    return order, batch_sizes.tolist()
