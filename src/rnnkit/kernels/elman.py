"""Fused Elman RNN direction (tanh, relu, sigmoid): one input-projection GEMM, the C++ time loop,
hand-written BPTT, and the weight gradients as one GEMM each over all time steps."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..cells.elman import ElmanEquations, RNNState
from . import gemm
from .build import load_extension
from .workspace import handed_out, saved, scratch

ACTIVATIONS = {"tanh": 0, "relu": 1, "sigmoid": 2}  # the codes of csrc/elman.cpp


class ElmanFunction(torch.autograd.Function):
    """(x (T, B, I), h0 (B, H), weights...) -> (h_all (T, B, H), h_n).

    The batch is sorted by decreasing length and ``batch_sizes[t]`` rows are active at step t
    (all B when ``batch_sizes`` is empty).
    """

    @staticmethod
    def forward(ctx: Any, x, h0, w_ih, w_hh, b_ih, b_hh, mask, batch_sizes, activation, keep):
        ext = load_extension("elman")
        T, B, I = x.shape
        bias = None if b_ih is None else b_ih + b_hh
        xp = gemm.linear_scratch(x.reshape(T * B, I), w_ih, bias, "elman.xp").view(T, B, -1)
        mask = None if mask is None else mask.contiguous()
        H = w_hh.shape[0]
        # keep: what backward needs, only when there will be one
        h_all, h_n, h_prev_t = ext.elman_forward(
            xp, h0.contiguous(), w_hh, gemm.pack(w_hh, B), mask, batch_sizes, activation, keep,
            handed_out("elman.h_all", (T, B, H), xp),
            saved("elman.h_prev_t", (H if keep else 0, T * B), xp, keep),
        )  # fmt: skip
        ctx.save_for_backward(x, w_ih, w_hh, mask, h_all, h_prev_t)
        ctx.batch_sizes, ctx.activation, ctx.has_bias = batch_sizes, activation, b_ih is not None
        return h_all, h_n

    @staticmethod
    def backward(ctx: Any, d_h_all, d_h_n):
        x, w_ih, w_hh, mask, h_all, h_prev_t = ctx.saved_tensors
        ext = load_extension("elman")
        T, B, I = x.shape
        H = h_all.shape[2]
        d_pre, d_pre_t, d_h0 = ext.elman_backward(
            d_h_all.contiguous(), d_h_n.contiguous(), h_all, w_hh, gemm.pack(w_hh.t(), B), mask,
            ctx.batch_sizes, ctx.activation, scratch("elman.d_pre", (T, B, H), h_all),
            scratch("elman.d_pre_t", (H, T * B), h_all),
        )  # fmt: skip
        d_p = d_pre.view(T * B, H)
        needs = ctx.needs_input_grad
        d_x = None
        if needs[0]:
            d_x = gemm.linear_into_buffer(d_p, w_ih.t(), None, "elman.d_x", handed_out)
            d_x = d_x.view(T, B, I)
        d_w_ih = gemm.linear(d_pre_t, x.reshape(T * B, I).t()) if needs[2] else None  # (H, I)
        d_w_hh = gemm.linear(d_pre_t, h_prev_t) if needs[3] else None  # (H, H)
        d_b = d_p.sum(0) if ctx.has_bias else None
        return d_x, d_h0, d_w_ih, d_w_hh, d_b, d_b, None, None, None, None


def applies(equations: Any) -> bool:
    return isinstance(equations, ElmanEquations) and equations.nonlinearity in ACTIVATIONS


def run(
    equations: ElmanEquations, p: Any, x: Tensor, state: RNNState, mask: Tensor | None,
    batch_sizes: list[int],
) -> tuple[Tensor, RNNState]:  # fmt: skip
    h_all, h_n = ElmanFunction.apply(
        x, state.h, p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"), mask,
        batch_sizes, ACTIVATIONS[equations.nonlinearity], torch.is_grad_enabled(),
    )  # fmt: skip
    return h_all, RNNState(h_n)
