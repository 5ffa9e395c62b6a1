"""Fused layer-normalised LSTM direction (peepholes, recurrent dropout and projection included).

The input projection W_ih x is one GEMM over all steps; the C++ loop runs the rest: recurrent
GEMM, the per-gate normalisation of both sides, gates, normalised cell state, and their BPTT.
The input and weight gradients are GEMMs over all steps again.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..cells.lstm import LSTMEquations, LSTMState
from . import gemm
from .build import load_extension
from .lstm import previous_states, weight_gradient, weight_gradients
from .workspace import saved, scratch

SAVED = ("c_all", "gates", "x_hat", "rstd_ih", "hh_hat", "rstd_hh", "c_hat", "rstd_c")


class LayerNormLSTMFunction(torch.autograd.Function):
    """(x (T, B, I), h0 (B, R), c0 (B, H), weights...) -> (h_all (T, B, R), h_n, c_n); R is the
    projection's size P with W_hr (P, H), else H."""

    @staticmethod
    def forward(
        ctx: Any, x, h0, c0, w_ih, g_ih, b_ih, w_hh, b_hh, g_hh, g_c, b_c, peephole, w_hr, mask,
        batch_sizes, keep,
    ):  # fmt: skip
        # keep: what backward needs, only when there will be one (autograd on)
        ext = load_extension("lstm_ln")
        T, B, I = x.shape
        G = w_ih.shape[0]
        x_rows = x.reshape(T * B, I)
        xp = gemm.linear(x_rows, w_ih).view(T, B, G)  # raw W_ih x, normalised in the loop
        S = T if keep else 1  # steps the buffers hold
        shapes = ((S, B, G // 4), (S, B, G), (S, B, G), (S, B, 4), (S, B, G), (S, B, 4),
                  (S, B, G // 4), (S, B))  # fmt: skip
        buffers = [  # what backward reads
            saved(f"lstm_ln.{name}", shape, xp, keep)
            for name, shape in zip(SAVED, shapes, strict=True)
        ]
        # each step's masked GEMM input, kept for the weight gradient
        h_in = None if mask is None else saved("lstm_ln.h_in", (S, B, h0.shape[1]), xp, keep)
        # with a projection, o * tanh(LN(c_t)) of each row, which W_hr's weight gradient reads
        h_pre = None if w_hr is None else saved("lstm_ln.h_pre", (S, B, G // 4), xp, keep)
        h_all, h_n, c_n = ext.lstm_ln_forward(
            xp, h0.contiguous(), c0.contiguous(), w_hh, gemm.pack(w_hh, B), g_ih, b_ih, g_hh,
            b_hh, g_c, b_c, peephole, mask, batch_sizes, buffers, h_in, keep, w_hr,
            None if w_hr is None else gemm.pack(w_hr, B), h_pre,
        )  # fmt: skip
        if keep:
            ctx.save_for_backward(
                x_rows, h0, c0, w_ih, g_ih, w_hh, g_hh, g_c, b_c, peephole, w_hr, mask, h_all,
                h_in, h_pre, *buffers,
            )  # fmt: skip
        ctx.batch_sizes, ctx.has_bias = batch_sizes, b_hh is not None
        return h_all, h_n, c_n

    @staticmethod
    def backward(ctx: Any, d_h_all, d_h_n, d_c_n):
        (x_rows, h0, c0, w_ih, g_ih, w_hh, g_hh, g_c, b_c, peephole, w_hr, mask, h_all, h_in, h_pre,
         *kept) = ctx.saved_tensors  # fmt: skip
        ext = load_extension("lstm_ln")
        T, B, G = kept[1].shape
        R = h0.shape[1]
        d_r = None if w_hr is None else scratch("lstm_ln.d_r", (T, B, R), c0)
        d_xp, d_hh, d_h0, d_c0, d_g_ih, d_g_hh, d_b, d_g_c, d_b_c, d_peephole = (
            ext.lstm_ln_backward(
                d_h_all.contiguous(), d_h_n.contiguous(), d_c_n.contiguous(), c0.contiguous(),
                kept, w_hh, gemm.pack(w_hh.t(), B), g_ih, g_hh, g_c, b_c,
                peephole, mask, ctx.batch_sizes, scratch("lstm_ln.d_xp", kept[1].shape, c0),
                scratch("lstm_ln.d_hh", kept[1].shape, c0), w_hr,
                None if w_hr is None else gemm.pack(w_hr.t(), B), d_r,
            )
        )  # fmt: skip
        d_xp = d_xp.view(T * B, G)
        d_x = gemm.linear(d_xp, w_ih.t()).view(T, B, -1) if ctx.needs_input_grad[0] else None
        d_w_ih = weight_gradient(d_xp, x_rows, B)
        h_in_rows = None if h_in is None else h_in.view(T * B, -1)
        (d_w_hh,) = weight_gradients(
            d_hh.view(T * B, G), [previous_states(h0, h_all, h_in_rows)], [R], B
        )
        d_w_hr = None
        if w_hr is not None and ctx.needs_input_grad[12]:
            d_w_hr = weight_gradient(d_r.view(T * B, R), h_pre.view(T * B, G // 4), B)
        d_b = d_b if ctx.has_bias else None  # b_ih and b_hh add to the same pre-activation
        return (
            d_x, d_h0, d_c0, d_w_ih, d_g_ih, d_b, d_w_hh, d_b, d_g_hh, d_g_c, d_b_c, d_peephole,
            d_w_hr, None, None, None,
        )  # fmt: skip


def applies(equations: Any) -> bool:
    return isinstance(equations, LSTMEquations) and equations.layer_norm


def run(
    equations: LSTMEquations, p: Any, x: Tensor, state: LSTMState, mask: Tensor | None,
    batch_sizes: list[int],
) -> tuple[Tensor, LSTMState]:  # fmt: skip
    if load_extension("lstm") is None:  # its transpose is used in backward
        raise RuntimeError("rnnkit: the 'lstm' kernel failed to build")
    h_all, h_n, c_n = LayerNormLSTMFunction.apply(
        x, state.h, state.c, p["weight_ih"], p["ln_ih_weight"], p.get("bias_ih"),
        p["weight_hh"], p.get("bias_hh"), p["ln_hh_weight"],
        p["ln_cell_weight"], p["ln_cell_bias"], p.get("weight_peephole"), p.get("weight_hr"),
        mask, batch_sizes, torch.is_grad_enabled(),
    )  # fmt: skip
    return h_all, LSTMState(h_n, c_n)
