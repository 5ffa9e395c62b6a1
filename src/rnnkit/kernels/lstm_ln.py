"""Fused layer-normalised LSTM direction (peepholes and recurrent dropout included).

The input side, LN(W_ih x) * g_ih + b_ih, depends on x alone: one GEMM for all steps, then the
per-gate normalisation for all rows in one C++ pass (in place), and in backward one pass the
other way. The C++ loop runs the rest: recurrent GEMM, per-gate normalisation of W_hh h, gates,
normalised cell state, and their BPTT.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..cells.lstm import LSTMEquations, LSTMState
from . import gemm
from .build import load_extension
from .lstm import previous_states, weight_gradients
from .workspace import pooled


class LayerNormLSTMFunction(torch.autograd.Function):
    """(x (T, B, I), h0, c0 (B, H), weights...) -> (h_all (T, B, H), h_n, c_n)."""

    @staticmethod
    def forward(
        ctx: Any, x, h0, c0, w_ih, g_ih, b_ih, w_hh, b_hh, g_hh, g_c, b_c, peephole, mask,
        batch_sizes,
    ):  # fmt: skip
        ext = load_extension("lstm_ln")
        T, B, I = x.shape
        G = w_ih.shape[0]
        x_rows = x.reshape(T * B, I)
        xp = gemm.linear(x_rows, w_ih)  # (T*B, 4H) raw W_ih x, normalised in place below
        x_hat = pooled("lstm_ln.x_hat", xp.shape, xp)
        rstd_ih = pooled("lstm_ln.rstd_ih", (T * B, 4), xp)
        ext.gate_norm_forward(xp, g_ih, b_ih, x_hat, rstd_ih)
        saved = [  # what backward reads, in buffers reused once nothing views them
            pooled(f"lstm_ln.{name}", shape, xp)
            for name, shape in (
                ("c_all", (T, B, G // 4)), ("gates", (T, B, G)), ("hh_hat", (T, B, G)),
                ("rstd_hh", (T, B, 4)), ("c_hat", (T, B, G // 4)), ("rstd_c", (T, B)),
            )
        ]  # fmt: skip
        h_all, c_all, gates, hh_hat, rstd_hh, c_hat, rstd_c, h_n, c_n = ext.lstm_ln_forward(
            xp.view(T, B, G), h0.contiguous(), c0.contiguous(), w_hh, gemm.pack(w_hh, B), b_hh,
            g_hh, g_c, b_c, peephole, mask, batch_sizes, saved,
        )  # fmt: skip
        ctx.save_for_backward(
            x_rows, w_ih, g_ih, x_hat, rstd_ih, h0, c0, w_hh, g_hh, g_c, b_c, peephole, mask,
            h_all, c_all, gates, hh_hat, rstd_hh, c_hat, rstd_c,
        )  # fmt: skip
        ctx.batch_sizes, ctx.has_bias = batch_sizes, b_hh is not None
        return h_all, h_n, c_n

    @staticmethod
    def backward(ctx: Any, d_h_all, d_h_n, d_c_n):
        (x_rows, w_ih, g_ih, x_hat, rstd_ih, h0, c0, w_hh, g_hh, g_c, b_c, peephole, mask, h_all,
         c_all, gates, hh_hat, rstd_hh, c_hat, rstd_c) = ctx.saved_tensors  # fmt: skip
        ext = load_extension("lstm_ln")
        T, B, G = gates.shape
        d_gates, d_hh, d_h0, d_c0, d_g_hh, d_b_hh, d_g_c, d_b_c = ext.lstm_ln_backward(
            d_h_all.contiguous(), d_h_n.contiguous(), d_c_n.contiguous(), gates, c_all,
            c0.contiguous(), hh_hat, rstd_hh, c_hat, rstd_c, w_hh,
            gemm.pack(w_hh.t().contiguous(), B), g_hh, g_c, b_c, peephole, mask, ctx.batch_sizes,
        )  # fmt: skip
        d_peephole = None
        if peephole is not None:  # before d_gates turns into the gradient of W_ih x below
            c_prev = torch.cat([c0.unsqueeze(0), c_all[:-1]])
            d_i, d_f, _, d_o = d_gates.chunk(4, dim=-1)
            d_peephole = torch.stack(
                [(d_i * c_prev).sum((0, 1)), (d_f * c_prev).sum((0, 1)), (d_o * c_all).sum((0, 1))]
            )
        d_xp = d_gates.view(T * B, G)
        d_g_ih = ext.gate_norm_backward(d_xp, x_hat, rstd_ih, g_ih)  # d_xp: now d(W_ih x)
        d_x = gemm.linear(d_xp, w_ih.t()).view(T, B, -1) if ctx.needs_input_grad[0] else None
        (d_w_ih,) = weight_gradients(d_xp, [lambda n0, n1: x_rows[n0:n1]], B)
        (d_w_hh,) = weight_gradients(
            d_hh.view(T * B, -1), [previous_states(h0, h_all, mask, None)], B
        )
        d_b = d_b_hh if ctx.has_bias else None  # b_ih and b_hh add to the same pre-activation
        return (
            d_x, d_h0, d_c0, d_w_ih, d_g_ih, d_b, d_w_hh, d_b, d_g_hh, d_g_c, d_b_c, d_peephole,
            None, None,
        )  # fmt: skip


def applies(equations: Any) -> bool:
    return isinstance(equations, LSTMEquations) and equations.layer_norm and not equations.proj_size


def run(
    equations: LSTMEquations, p: Any, x: Tensor, state: LSTMState, mask: Tensor | None,
    batch_sizes: list[int],
) -> tuple[Tensor, LSTMState]:  # fmt: skip
    if load_extension("lstm") is None:  # its transpose is used in backward
        raise RuntimeError("rnnkit: the 'lstm' kernel failed to build")
    h_all, h_n, c_n = LayerNormLSTMFunction.apply(
        x, state.h, state.c, p["weight_ih"], p["ln_ih_weight"], p.get("bias_ih"),
        p["weight_hh"], p.get("bias_hh"), p["ln_hh_weight"],
        p["ln_cell_weight"], p["ln_cell_bias"], p.get("weight_peephole"), mask, batch_sizes,
    )  # fmt: skip
    return h_all, LSTMState(h_n, c_n)
