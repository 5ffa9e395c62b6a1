"""Fused GRU direction: one input-projection GEMM, the C++ time loop, hand-written BPTT, and
the weight gradients as one GEMM each over all time steps.

With layer normalisation the input side, LN(W_ih x) g_ih + b_ih for all steps, is a few tensor
operations that autograd differentiates (:meth:`GRUEquations.project_input`); the C++ loop
normalises the recurrent side of each step and differentiates it (LayerNormGRUFunction)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ..cells.gru import GRUEquations, GRUState
from . import gemm, lstm
from .build import load_extension
from .workspace import handed_out, saved, scratch


class GRUFunction(torch.autograd.Function):
    """(x (T, B, I), h0 (B, H), weights..., mask, batch_sizes) -> (h_all (T, B, H), h_n).

    The batch is sorted by decreasing length and ``batch_sizes[t]`` rows are active at step t
    (all B when ``batch_sizes`` is empty). ``mask`` (B, H), if given, drops out h_{t-1} where it
    enters ``w_hh`` (not in the z interpolation).
    """

    @staticmethod
    def forward(ctx: Any, x, h0, w_ih, w_hh, b_ih, b_hh, mask, batch_sizes, keep):
        ext = load_extension("gru")
        T, B, I = x.shape
        H = w_hh.shape[1]
        bias = b_hn = None
        if b_ih is not None:
            # b_hr, b_hz add to the pre-activations like b_ih; b_hn sits inside r * (...).
            bias = torch.cat([b_ih[: 2 * H] + b_hh[: 2 * H], b_ih[2 * H :]])
            b_hn = b_hh[2 * H :].contiguous()
        mask = None if mask is None else mask.contiguous()
        # read by the loop only: in the buffer of backward's d_xp (same shape, no extra memory)
        xp = gemm.linear_scratch(x.reshape(T * B, I), w_ih, bias, "gru.d_xp").view(T, B, 3 * H)
        h0 = h0.contiguous()
        # keep: what backward needs, only when there will be one
        gates = saved("gru.gates", (T if keep else 1, B, 4 * H), xp, keep)
        h_all, gates, h_n = ext.gru_forward(
            xp, h0, w_hh, gemm.pack(w_hh, B), b_hn, mask, batch_sizes, keep, gates,
            handed_out("gru.h_all", (T, B, H), xp),
        )  # fmt: skip
        ctx.save_for_backward(x, h0, w_ih, w_hh, mask, h_all, gates)
        ctx.batch_sizes, ctx.has_bias = batch_sizes, b_ih is not None
        return h_all, h_n

    @staticmethod
    @once_differentiable  # the C++ backward is not itself differentiable: say so, not 0
    def backward(ctx: Any, d_h_all, d_h_n):
        x, h0, w_ih, w_hh, mask, h_all, gates = ctx.saved_tensors
        ext = load_extension("gru")
        T, B, I = x.shape
        H = w_hh.shape[1]
        transposed = transposes_operands(gates)
        d_xp = scratch("gru.d_xp", (T, B, 3 * H), gates)
        d_hn = scratch("gru.rows_h", (T * B, H), gates)  # d_hh's n part, where not transposed
        none = gates.new_empty(0)
        d_t = scratch("gru.d_t", (4 * H, T * B), gates) if transposed else none
        h_prev_t = scratch("gru.h_prev_t", (H, T * B), gates) if transposed else none
        (d_h0,) = ext.gru_backward(
            d_h_all.contiguous(), d_h_n.contiguous(), gates, h_all, h0, w_hh,
            gemm.pack(w_hh.t(), B), mask, ctx.batch_sizes, d_xp, d_t, h_prev_t, d_hn,
        )  # fmt: skip
        d_p = d_xp.view(T * B, 3 * H)
        d_x = None
        if ctx.needs_input_grad[0]:
            d_x = gemm.linear_into_buffer(d_p, w_ih.t(), None, "gru.d_x", handed_out)
            d_x = d_x.view(T, B, I)
        # Weight gradients summed over all steps, one GEMM per operand.
        x_rows = x.reshape(T * B, I)
        if transposed:
            # d_t (4H, T*B) = [d_hh_n; d_r; d_z; d_n]^T: rows [H, 4H) are d_xp^T, rows [0, 3H)
            # are d_hh^T with its n block first (its r, z blocks equal d_xp's).
            d_w_ih = gemm.linear(d_t[H:], gemm.transpose(x_rows, "gru.x_t"))  # (3H, I)
            d_w_hh_nrz = gemm.linear(d_t[: 3 * H], h_prev_t)  # (3H, H), rows n, r, z
            d_w_hh = torch.cat([d_w_hh_nrz[H:], d_w_hh_nrz[:H]])
        else:
            h_prev = previous_states(h0, h_all, mask)
            d_w_ih = gemm.rows_t_matmul([x_rows], d_p, "gru.x_t").t().contiguous()
            d_w_hh = torch.cat([  # rows r, z (d_hh's equal d_xp's), n
                gemm.rows_t_matmul(h_prev, d_p[:, : 2 * H], "gru.h_prev_t").t(),
                gemm.rows_t_matmul(h_prev, d_hn, "gru.h_prev_t").t(),
            ])  # fmt: skip
        d_b_ih = d_b_hh = None
        if ctx.has_bias:
            d_b_ih = d_p.sum(0)
            d_b_hh = torch.cat([d_b_ih[: 2 * H], (d_t[:H].sum(1) if transposed else d_hn.sum(0))])
        return d_x, d_h0, d_w_ih, d_w_hh, d_b_ih, d_b_hh, None, None, None


def transposes_operands(t: Tensor) -> bool:
    """Whether the GRU's backward has the C++ loop write the weight gradients' operands
    transposed, for GEMMs that take no transposed operand (oneDNN's), rather than reading them
    where they lie (ATen, MKL): on an AVX2 CPU at config b, training steps as fast (0.99x on a
    warm heap) and a peak RSS of +486 instead of +679 MiB, without the transposes' 160 MiB of
    buffers (``python -m benchmarks.ab_gru_weight_gradients [--memory]``)."""
    return gemm.use_onednn(t)


def previous_states(h0: Tensor, h_all: Tensor, mask: Tensor | None) -> list[Tensor]:
    """h_{t-1} of every step as the recurrent weights saw it: row blocks that make the (T*B, H)
    matrix [h0; h_all[:-1]] * mask one after another (:func:`.lstm.previous_states`'s blocks;
    views of h0 and h_all where there is no mask, else one masked copy in a scratch buffer)."""
    T, B, H = h_all.shape
    h_in = None
    if mask is not None:
        h_in = scratch("gru.h_prev", (T, B, H), h_all)
        torch.mul(h0, mask, out=h_in[0])
        torch.mul(h_all[:-1], mask, out=h_in[1:])
        h_in = h_in.view(T * B, H)
    return lstm.previous_states(h0, h_all, h_in)(0, T * B)


class LayerNormGRUFunction(torch.autograd.Function):
    """(xp (T, B, 3H): the normalised input side LN(W_ih x) g_ih + b_ih, with b_hr and b_hz
    added; h0 (B, H); w_hh (3H, H); g_hh (3H); b_hn (H) or None; mask, batch_sizes, keep)
    -> (h_all (T, B, H), h_n). Each step: hh = LN(W_hh h_in) g_hh per gate block, then
    GRUFunction's gate math (b_hn inside r * (...))."""

    @staticmethod
    def forward(ctx: Any, xp, h0, w_hh, g_hh, b_hn, mask, batch_sizes, keep):
        ext = load_extension("gru")
        T, B, G = xp.shape
        S = T if keep else 1  # steps the buffers hold
        gates = saved("gru.gates", (S, B, 4 * G // 3), xp, keep)
        hh_hat = saved("gru_ln.hh_hat", (S, B, G), xp, keep)
        rstd = saved("gru_ln.rstd", (S, B, 3), xp, keep)
        mask = None if mask is None else mask.contiguous()
        h0 = h0.contiguous()
        h_all, gates, h_n = ext.gru_forward(
            xp.contiguous(), h0, w_hh, gemm.pack(w_hh, B), b_hn, mask, batch_sizes, keep, gates,
            handed_out("gru.h_all", (T, B, G // 3), xp), g_hh, hh_hat, rstd,
        )  # fmt: skip
        if keep:
            ctx.save_for_backward(h0, w_hh, g_hh, mask, h_all, gates, hh_hat, rstd)
        ctx.batch_sizes, ctx.has_bias = batch_sizes, b_hn is not None
        return h_all, h_n

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, d_h_all, d_h_n):
        h0, w_hh, g_hh, mask, h_all, gates, hh_hat, rstd = ctx.saved_tensors
        ext = load_extension("gru")
        T, B, H = h_all.shape
        d_xp = gates.new_empty(T, B, 3 * H)  # autograd takes it on: not a reused buffer
        d_hh_raw = scratch("gru_ln.d_hh_raw", (T, B, 3 * H), gates)
        h_prev_t = scratch("gru.h_prev_t", (H, T * B), gates)
        d_h0, d_g_hh, d_b_hn = ext.gru_backward(
            d_h_all.contiguous(), d_h_n.contiguous(), gates, h_all, h0, w_hh,
            gemm.pack(w_hh.t(), B), mask, ctx.batch_sizes, d_xp, gates.new_empty(0), h_prev_t,
            scratch("gru.rows_h", (T * B, H), gates), g_hh, hh_hat, rstd, d_hh_raw,
        )  # fmt: skip
        d_w_hh = gemm.linear(gemm.transpose(d_hh_raw.view(T * B, 3 * H), "gru_ln.d_t"), h_prev_t)
        d_b_hn = d_b_hn if ctx.has_bias else None
        return d_xp, d_h0, d_w_hh, d_g_hh, d_b_hn, None, None, None


def applies(equations: Any) -> bool:
    return isinstance(equations, GRUEquations)


def run(
    equations: GRUEquations, p: Any, x: Tensor, state: GRUState, mask: Tensor | None,
    batch_sizes: list[int],
) -> tuple[Tensor, GRUState]:  # fmt: skip
    if equations.layer_norm:
        return run_layer_norm(equations, p, x, state, mask, batch_sizes)
    h_all, h_n = GRUFunction.apply(
        x, state.h, p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"), mask,
        batch_sizes, torch.is_grad_enabled(),
    )  # fmt: skip
    return h_all, GRUState(h_n)


def run_layer_norm(
    equations: GRUEquations, p: Any, x: Tensor, state: GRUState, mask: Tensor | None,
    batch_sizes: list[int],
) -> tuple[Tensor, GRUState]:  # fmt: skip
    """The layer-normalised GRU: the input side through autograd, the loop in C++."""
    H = equations.hidden_size
    b_hn = None
    if "bias_ih" in p:  # b_hr, b_hz add to the pre-activations as b_ih does; b_hn sits in r*()
        b_ih, b_hh = p["bias_ih"], p["bias_hh"]
        p = {**p, "bias_ih": torch.cat([b_ih[: 2 * H] + b_hh[: 2 * H], b_ih[2 * H :]])}
        b_hn = b_hh[2 * H :]
    xp = equations.project_input(x, p, gemm.linear_autograd)  # (T, B, 3H), biases folded in
    h_all, h_n = LayerNormGRUFunction.apply(
        xp, state.h, p["weight_hh"], p["ln_hh_weight"], b_hn, mask, batch_sizes,
        torch.is_grad_enabled(),
    )  # fmt: skip
    return h_all, GRUState(h_n)
