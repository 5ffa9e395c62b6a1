"""minGRU/minLSTM: the linear recurrence h_t = exp(log_a_t) ⊙ h_{t-1} + b_t solved by a C++
sequential loop over t with a hand-written reverse-time backward.

The loop does O(T·B·H) work in one pass over memory and is exact up to float rounding, where
:func:`rnnkit.ops.scan.linear_scan` does O(T·C·B·H) work in chunks of C steps; the gate math
(``equations.coefficients``) stays in PyTorch, with its autograd.

Entry point: :func:`linear_recurrence`, a drop-in for ``linear_scan`` that falls back to it where
the kernel does not apply (not the CPU, not float32/float64, autocast, no compiler). It is called
from the scan path of :mod:`rnnkit.layers.recurrence`, which already handles padded steps by
setting log_a = 0, b = 0 (carry) without sorting the batch, so the registry's
:func:`applies` is False: the sorted-batch :func:`run` is kept only to satisfy the kernel
contract (and is tested).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..cells.mingru import LinearRecurrenceEquations, MinRNNState
from ..ops.scan import linear_scan
from .build import load_extension
from .workspace import scratch


class LinearRecurrence(torch.autograd.Function):
    """(log_a, b (T, B, H), h0 (B, H)) -> h (T, B, H), h_t = exp(log_a_t) h_{t-1} + b_t."""

    @staticmethod
    def forward(ctx: Any, log_a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        ext = load_extension("minrnn")
        log_a, b, h0 = log_a.contiguous(), b.contiguous(), h0.contiguous()
        h = ext.linear_recurrence_forward(log_a, b, h0)
        ctx.save_for_backward(log_a, h0, h)
        return h

    @staticmethod
    def backward(ctx: Any, d_h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        log_a, h0, h = ctx.saved_tensors
        ext = load_extension("minrnn")
        d_log_a, d_b, d_h0 = ext.linear_recurrence_backward(d_h.contiguous(), log_a, h, h0)
        return d_log_a, d_b, d_h0


def kernel_applies(log_a: Tensor, b: Tensor, h0: Tensor) -> bool:
    """True when :class:`LinearRecurrence` can run these tensors (and the extension builds)."""
    tensors = (log_a, b, h0)
    return (
        all(t.device.type == "cpu" and t.dtype == log_a.dtype for t in tensors)
        and log_a.dtype in (torch.float32, torch.float64)
        and log_a.dim() == 3
        and b.shape == log_a.shape
        and h0.shape == log_a.shape[1:]
        and not torch.is_autocast_enabled("cpu")
        and load_extension("minrnn") is not None
    )


def linear_recurrence(log_a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """Solve h_t = exp(log_a_t) ⊙ h_{t-1} + b_t for all t: log_a, b (T, B, H), h0 (B, H) ->
    h (T, B, H); :func:`rnnkit.ops.scan.linear_scan` where the C++ kernel does not apply."""
    if kernel_applies(log_a, b, h0):
        return LinearRecurrence.apply(log_a, b, h0)
    return linear_scan(log_a, b, h0)


def applies(equations: Any) -> bool:
    # minGRU/minLSTM reach the kernel through linear_recurrence in the scan path, not here.
    return False


def run(
    equations: LinearRecurrenceEquations, p: Any, x: Tensor, state: MinRNNState,
    mask: Tensor | None, batch_sizes: list[int],
) -> tuple[Tensor, MinRNNState]:  # fmt: skip
    """The registry contract (batch sorted by decreasing length); ``mask`` is unused, these
    cells having no recurrent weights."""
    log_a, b = equations.coefficients(equations.project_input(x, p))  # (T, B, H) each
    valid = None
    if batch_sizes:
        rows = torch.arange(x.shape[1], device=x.device)
        sizes = torch.tensor(batch_sizes, device=x.device)
        valid = (rows.unsqueeze(0) < sizes.unsqueeze(1)).unsqueeze(-1)  # (T, B, 1)
        zero = torch.zeros((), dtype=log_a.dtype, device=log_a.device)
        log_a, b = torch.where(valid, log_a, zero), torch.where(valid, b, zero)
    h = linear_recurrence(log_a, b, state.h)
    final = MinRNNState(h[-1] if h.shape[0] else state.h)
    if valid is not None:
        h = torch.where(valid, h, torch.zeros((), dtype=h.dtype, device=h.device))
    return h, final


class MinRNNFunction(torch.autograd.Function):
    """(xp (T, B, G), h0 (B, H), valid (T, B) uint8 or empty) -> h (T, B, H): the whole minGRU
    (G = 2H) or minLSTM (G = 3H) recurrence with its gates, fused in C++; padded steps carry."""

    @staticmethod
    def forward(ctx: Any, xp: Tensor, h0: Tensor, valid: Tensor, lstm: bool) -> Tensor:
        ext = load_extension("minrnn")
        xp, h0 = xp.contiguous(), h0.contiguous()
        h = ext.min_rnn_forward(xp, h0, valid, lstm)
        ctx.save_for_backward(xp, h0, h, valid)
        ctx.lstm = lstm
        return h

    @staticmethod
    def backward(ctx: Any, d_h: Tensor) -> tuple[Tensor, Tensor, None, None]:
        xp, h0, h, valid = ctx.saved_tensors
        if not d_h.is_contiguous():  # e.g. expanded, from a sum: laid out in a reused buffer
            d_h = scratch("minrnn.d_h", d_h.shape, d_h).copy_(d_h)
        # d_xp only feeds the input projection's backward, done before the next call
        d_xp, d_h0 = load_extension("minrnn").min_rnn_backward(
            d_h, xp, h0, h, valid, ctx.lstm, scratch("minrnn.d_xp", xp.shape, xp)
        )
        return d_xp, d_h0, None, None


def fused_min_rnn(
    equations: LinearRecurrenceEquations, xp: Tensor, h0: Tensor, valid: Tensor | None
) -> Tensor | None:
    """minGRU/minLSTM over xp (T, B, G) with the gate math in the C++ loop -> h (T, B, H) with
    padded steps carrying the state; None where the kernel does not apply."""
    from ..cells.mingru import MinGRUEquations, MinLSTMEquations

    if not isinstance(equations, (MinGRUEquations, MinLSTMEquations)):
        return None
    if not kernel_applies(xp[..., : h0.shape[-1]], xp[..., : h0.shape[-1]], h0):
        return None
    flags = xp.new_empty(0, dtype=torch.uint8) if valid is None else valid.to(torch.uint8)
    return MinRNNFunction.apply(xp, h0, flags.contiguous(), isinstance(equations, MinLSTMEquations))
