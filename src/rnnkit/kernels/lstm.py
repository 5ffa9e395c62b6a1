"""Fused LSTM direction: one input-projection GEMM, the C++ time loop, hand-written BPTT, and
the weight gradients as one GEMM each over all time steps."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..cells.lstm import LSTMEquations, LSTMState
from . import gemm
from .build import load_extension
from .workspace import scratch


def previous_states_t(ext: Any, h0: Tensor, h_all: Tensor, mask: Tensor | None) -> Tensor:
    """(H, T*B): h_{t-1} for every step as the recurrent weights saw it, transposed for the
    weight-gradient GEMM."""
    if mask is None:
        return ext.transpose_previous(h0, h_all)
    h_prev = torch.cat([h0.unsqueeze(0), h_all[:-1]]) * mask  # (T, B, H), dropped out
    return ext.transpose(h_prev.view(-1, h_prev.shape[-1]))


class LSTMFunction(torch.autograd.Function):
    """(x (T, B, I), h0, c0 (B, H), weights...) -> (h_all (T, B, H), h_n, c_n).

    The batch is sorted by decreasing length and ``batch_sizes[t]`` rows are active at step t
    (all B when ``batch_sizes`` is empty).
    """

    @staticmethod
    def forward(ctx: Any, x, h0, c0, w_ih, w_hh, b_ih, b_hh, peephole, mask, batch_sizes):
        ext = load_extension("lstm")
        T, B, I = x.shape
        bias = None if b_ih is None else b_ih + b_hh
        xp = gemm.linear(x.reshape(T * B, I), w_ih, bias).view(T, B, -1)  # (T, B, 4H)
        h_all, c_all, gates, h_n, c_n = ext.lstm_forward(
            xp, h0.contiguous(), c0.contiguous(), w_hh, gemm.pack(w_hh, B), peephole, mask,
            batch_sizes,
        )  # fmt: skip
        ctx.save_for_backward(x, h0, c0, w_ih, w_hh, peephole, mask, h_all, c_all, gates)
        ctx.batch_sizes, ctx.has_bias = batch_sizes, b_ih is not None
        return h_all, h_n, c_n

    @staticmethod
    def backward(ctx: Any, d_h_all, d_h_n, d_c_n):
        x, h0, c0, w_ih, w_hh, peephole, mask, h_all, c_all, gates = ctx.saved_tensors
        ext = load_extension("lstm")
        T, B, I = x.shape
        w_hh_t = w_hh.t().contiguous()
        d_gates, d_gates_t, d_h0, d_c0 = ext.lstm_backward(
            d_h_all.contiguous(), d_h_n.contiguous(), d_c_n.contiguous(), gates, c_all,
            c0.contiguous(), w_hh, gemm.pack(w_hh_t, B), peephole, mask, ctx.batch_sizes,
            scratch("lstm.d_gates", gates.shape, gates),
            scratch("lstm.d_gates_t", (gates.shape[2], T * B), gates),
        )  # fmt: skip
        d_g = d_gates.view(T * B, -1)  # (T*B, 4H)
        d_x = gemm.linear(d_g, w_ih.t()).view(T, B, I) if ctx.needs_input_grad[0] else None
        # Weight gradients summed over all steps, one GEMM each, from transposed operands.
        d_w_ih = gemm.linear(d_gates_t, ext.transpose(x.reshape(T * B, I)))  # (4H, I)
        d_w_hh = gemm.linear(d_gates_t, previous_states_t(ext, h0, h_all, mask))  # (4H, H)
        d_b = d_g.sum(0) if ctx.has_bias else None
        d_peephole = None
        if peephole is not None:
            c_prev = torch.cat([c0.unsqueeze(0), c_all[:-1]])
            d_i, d_f, _, d_o = d_gates.chunk(4, dim=-1)
            d_peephole = torch.stack(
                [(d_i * c_prev).sum((0, 1)), (d_f * c_prev).sum((0, 1)), (d_o * c_all).sum((0, 1))]
            )
        return d_x, d_h0, d_c0, d_w_ih, d_w_hh, d_b, d_b, d_peephole, None, None


def applies(equations: Any) -> bool:
    return isinstance(equations, LSTMEquations) and not (
        equations.layer_norm or equations.proj_size
    )


def run(
    equations: LSTMEquations, p: Any, x: Tensor, state: LSTMState, mask: Tensor | None,
    batch_sizes: list[int],
) -> tuple[Tensor, LSTMState]:  # fmt: skip
    h_all, h_n, c_n = LSTMFunction.apply(
        x, state.h, state.c, p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"),
        p.get("weight_peephole"), mask, batch_sizes,
    )  # fmt: skip
    return h_all, LSTMState(h_n, c_n)
