"""Fused layer-normalised LSTM direction (peepholes and recurrent dropout included).

The input side, LN(W_ih x) * g_ih + b_ih, depends on x alone: it is computed for all steps by
the cell's own ``project_input`` and differentiated by autograd. The C++ loop runs the rest:
recurrent GEMM, per-gate normalisation, gates, normalised cell state, and their BPTT.
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
    """(xp (T, B, 4H), h0, c0 (B, H), recurrent weights...) -> (h_all (T, B, H), h_n, c_n)."""

    @staticmethod
    def forward(ctx: Any, xp, h0, c0, w_hh, b_hh, g_hh, g_c, b_c, peephole, mask, batch_sizes):
        ext = load_extension("lstm_ln")
        T, B, G = xp.shape
        saved = [  # what backward reads, in buffers reused once nothing views them
            pooled(f"lstm_ln.{name}", shape, xp)
            for name, shape in (
                ("c_all", (T, B, G // 4)), ("gates", (T, B, G)), ("hh_hat", (T, B, G)),
                ("rstd_hh", (T, B, 4)), ("c_hat", (T, B, G // 4)), ("rstd_c", (T, B)),
            )
        ]  # fmt: skip
        h_all, c_all, gates, hh_hat, rstd_hh, c_hat, rstd_c, h_n, c_n = ext.lstm_ln_forward(
            xp.contiguous(), h0.contiguous(), c0.contiguous(), w_hh, gemm.pack(w_hh, B), b_hh,
            g_hh, g_c, b_c, peephole, mask, batch_sizes, saved,
        )  # fmt: skip
        ctx.save_for_backward(
            h0, c0, w_hh, g_hh, g_c, b_c, peephole, mask, h_all, c_all, gates, hh_hat, rstd_hh,
            c_hat, rstd_c,
        )  # fmt: skip
        ctx.batch_sizes, ctx.has_bias = batch_sizes, b_hh is not None
        return h_all, h_n, c_n

    @staticmethod
    def backward(ctx: Any, d_h_all, d_h_n, d_c_n):
        (h0, c0, w_hh, g_hh, g_c, b_c, peephole, mask, h_all, c_all, gates, hh_hat, rstd_hh,
         c_hat, rstd_c) = ctx.saved_tensors  # fmt: skip
        ext = load_extension("lstm_ln")
        T, B, _ = gates.shape
        d_gates, d_hh, d_h0, d_c0, d_g_hh, d_b_hh, d_g_c, d_b_c = ext.lstm_ln_backward(
            d_h_all.contiguous(), d_h_n.contiguous(), d_c_n.contiguous(), gates, c_all,
            c0.contiguous(), hh_hat, rstd_hh, c_hat, rstd_c, w_hh,
            gemm.pack(w_hh.t().contiguous(), B), g_hh, g_c, b_c, peephole, mask, ctx.batch_sizes,
        )  # fmt: skip
        (d_w_hh,) = weight_gradients(
            d_hh.view(T * B, -1), [previous_states(h0, h_all, mask, None)], B
        )
        d_b_hh = d_b_hh if ctx.has_bias else None
        d_peephole = None
        if peephole is not None:
            c_prev = torch.cat([c0.unsqueeze(0), c_all[:-1]])
            d_i, d_f, _, d_o = d_gates.chunk(4, dim=-1)
            d_peephole = torch.stack(
                [(d_i * c_prev).sum((0, 1)), (d_f * c_prev).sum((0, 1)), (d_o * c_all).sum((0, 1))]
            )
        return (d_gates, d_h0, d_c0, d_w_hh, d_b_hh, d_g_hh, d_g_c, d_b_c, d_peephole, None, None)


def applies(equations: Any) -> bool:
    return isinstance(equations, LSTMEquations) and equations.layer_norm and not equations.proj_size


def run(
    equations: LSTMEquations, p: Any, x: Tensor, state: LSTMState, mask: Tensor | None,
    batch_sizes: list[int],
) -> tuple[Tensor, LSTMState]:  # fmt: skip
    if load_extension("lstm") is None:  # its transpose is used in backward
        raise RuntimeError("rnnkit: the 'lstm' kernel failed to build")
    # (T, B, 4H): LN(W_ih x) * g_ih + b_ih, differentiated by autograd
    xp = equations.project_input(x, p, gemm.linear_autograd)
    h_all, h_n, c_n = LayerNormLSTMFunction.apply(
        xp, state.h, state.c, p["weight_hh"], p.get("bias_hh"), p["ln_hh_weight"],
        p["ln_cell_weight"], p["ln_cell_bias"], p.get("weight_peephole"), mask, batch_sizes,
    )  # fmt: skip
    return h_all, LSTMState(h_n, c_n)
