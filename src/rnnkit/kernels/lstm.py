"""Fused LSTM direction: the C++ time loop and hand-written BPTT, the input projection inside
each step's GEMM (or one GEMM over all steps before the loop where the panel kernel is not
built or the weights exceed ``LOOP_WEIGHT_BYTES``), and the weight gradients as one GEMM each
over all time steps."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..cells.lstm import LSTMEquations, LSTMState
from . import gemm
from .build import l2_cache_bytes, load_extension
from .workspace import handed_out, saved, scratch


def active_rows(batch_sizes: list[int], batch: int, device: torch.device) -> Tensor | None:
    """Indices into the (T*B) rows of a sorted batch of the rows that are active, step after
    step (the PackedSequence order); None when every row is active."""
    if not batch_sizes:
        return None
    steps = torch.arange(len(batch_sizes)).repeat_interleave(torch.tensor(batch_sizes))
    counts = torch.tensor(batch_sizes)
    starts = torch.cumsum(counts, 0) - counts  # first packed row of each step
    within = torch.arange(int(counts.sum())) - starts.repeat_interleave(counts)
    return (steps * batch + within).to(device)


CHUNK_BYTES = 16 << 20  # bytes of gate gradients per block of rows in the weight gradients


def previous_states(h0: Tensor, h_all: Tensor, h_in: Tensor | None):
    """h_{t-1} of rows [n0, n1), as the recurrent weights saw it: a function
    (n0, n1) -> blocks of rows [(n_k, R)] that make it one after another (R: the width of h,
    the projection's with one). ``h_in`` (N, R), if
    the forward loop wrote it (with a mask or lengths), holds exactly those rows; otherwise they
    are slices of h0 and h_all (no copy of the whole shifted sequence)."""
    if h_in is not None:
        return lambda n0, n1: [h_in[n0:n1]]
    B, H = h0.shape
    flat = h_all.view(-1, H)

    def rows_of(n0: int, n1: int) -> list[Tensor]:  # n0, n1: multiples of B
        if n0 > 0:
            return [flat[n0 - B : n1 - B]]
        return [h0, flat[: n1 - B]]

    return rows_of


def weight_gradients(
    d_rows: Tensor, inputs: list[Any], widths: list[int], batch: int
) -> list[Tensor]:
    """d_rows (N, G) and inputs [f(n0, n1) -> blocks of rows making (n1 - n0, K_k)], K_k =
    widths[k] -> [sum over rows of d_row^T input_row: (G, K_k)], the weight gradients summed
    over all steps (zeros when N = 0: no sequence had a step).

    Computed as inputs^T @ d_rows (sum K_k, G), which reads d_rows where it lies, split by
    input and transposed at the end (small), in blocks of rows (about ``CHUNK_BYTES`` of d_rows
    each, a whole number of steps). Several inputs are first copied side by side into one
    reused buffer (n, sum K_k) (:func:`joined_rows`), so one product covers them all: whole
    LSTM training steps took 0.94-0.98x the time of one product per input at configs a and b
    (``python -m benchmarks.ab_lstm_weight_gradients``, two runs on AMD Zen 3, warm heap).
    Only the inputs are transposed, for oneDNN (:func:`gemm.rows_t_matmul`), a block at a time
    into a reused buffer: the memory for this stays at one block instead of a transposed copy
    of all inputs.
    """
    N, G = d_rows.shape
    block = max(batch, CHUNK_BYTES // (G * d_rows.element_size()) // batch * batch)
    total = d_rows.new_zeros(sum(widths), G) if N == 0 else None
    for n0 in range(0, N, block):
        n1 = min(N, n0 + block)
        if len(inputs) == 1:
            rows = inputs[0](n0, n1)
        else:
            rows = [joined_rows(inputs, widths, n0, n1, d_rows)]
        part = gemm.rows_t_matmul(rows, d_rows[n0:n1], "lstm.inputs_t")  # (sum K_k, G)
        total = part if total is None else total.add_(part)
    return [gemm.transpose(part) for part in total.split(widths)]


def joined_rows(inputs: list[Any], widths: list[int], n0: int, n1: int, like: Tensor) -> Tensor:
    """Rows [n0, n1) of every input side by side, (n1 - n0, sum widths), in a reused buffer of
    like's dtype and device (valid until the next call)."""
    joined = scratch("lstm.inputs", (n1 - n0, sum(widths)), like)
    column = 0
    for rows_of, width in zip(inputs, widths, strict=True):
        row = 0
        for block in rows_of(n0, n1):
            joined[row : row + block.shape[0], column : column + width] = block
            row += block.shape[0]
        column += width
    return joined


def weight_gradient(d_rows: Tensor, rows: Tensor, batch: int) -> Tensor:
    """d_rows (N, G) and one input's rows (N, K) -> sum over rows of d_row^T row: (G, K)."""
    return weight_gradients(d_rows, [lambda n0, n1: [rows[n0:n1]]], [rows.shape[1]], batch)[0]


# Rows per thread from which the LSTM loops split the batch between the threads for the whole
# sequence (each thread its own rows' recurrent GEMM and gate math, no synchronisation between
# steps) instead of sharing every step: with 4 rows per thread whole training steps were
# 1.13-1.16x faster, with 2 rows 0.87-1.08x, and 0.80-0.92x with the projection in the loop
# (python -m benchmarks.ab_lstm_loops, 2 threads).
SPLIT_MIN_ROWS = 4
# Bytes of weights the LSTM loops may read at every step for row splits or the projection in
# the loop: W_hh's panels, plus W_ih when the loop projects the input (a row split reads all of
# them each step, shared steps their share of the columns): 8 times a core's L2 cache. On AMD
# Zen 5 (1 MiB of L2 per core), up to 8 MiB (H=512, I=512) both were as fast or faster;
# beyond, slower: split steps projecting in the loop took 1.11x the time of shared steps
# projecting before it at H=768, I=768 (18 MiB) and 1.20x at H=1024, I=512 (24 MiB) in
# training, warm heap. On Zen 3 (512 KiB of L2 per core) config b's 6 MiB per layer trained
# at 0.97-0.98x with them, and rnnkit's kernel lost to torch.nn's there on a warm heap
# (0.81-1.01x), against 1.02-1.13x at config a's 1.5 MiB (python -m benchmarks.ab_lstm_loops,
# python -m benchmarks.bench_speed --heap warm).
LOOP_WEIGHT_BYTES = 8 * l2_cache_bytes()


def weight_bytes(*weights: Tensor | None) -> int:
    """Bytes the given tensors hold (None holds none)."""
    return sum(w.numel() * w.element_size() for w in weights if w is not None)


def panel_bytes(weight: Tensor) -> int:
    """Bytes of weight (N, K) as :func:`gemm.pack` lays it out in panels: N rounded up to whole
    panels of ``gemm.PANEL_WIDTH`` columns."""
    rows = -(-weight.shape[0] // gemm.PANEL_WIDTH) * gemm.PANEL_WIDTH
    return rows * weight.shape[1] * weight.element_size()


def fits_loop(w_hh: Tensor, w_ih: Tensor | None) -> bool:
    """Whether W_hh (4H, H) in panels plus W_ih, if given, fit ``LOOP_WEIGHT_BYTES``: the rule
    of :func:`row_splits` and :func:`projects_in_loop`, from the weights before packing."""
    return panel_bytes(w_hh) + weight_bytes(w_ih) <= LOOP_WEIGHT_BYTES


def row_splits(batch_size: int, packed: Tensor | None, *others: Tensor | None) -> int:
    """How many row splits the LSTM loops run side by side for a batch of batch_size rows, a
    recurrent weight from :func:`gemm.pack` and the other weights the loop reads every step (W_ih
    if it projects the input, W_hr's panels with a projection): every thread one split where
    the panel kernel runs, each gets ``SPLIT_MIN_ROWS`` rows or more and the weights fit
    ``LOOP_WEIGHT_BYTES``, else 1 (every step shared)."""
    threads = torch.get_num_threads()
    if packed is None or packed.dim() != 3 or threads < 2:
        return 1
    if weight_bytes(packed, *others) > LOOP_WEIGHT_BYTES:
        return 1
    return threads if batch_size >= SPLIT_MIN_ROWS * threads else 1


def projects_in_loop(packed: Tensor | None, w_ih: Tensor, hr_packed: Tensor | None = None) -> bool:
    """Whether the C++ loop computes each step's input projection itself, x_t W_ih^T in the same
    panel-kernel GEMM as h_{t-1} W_hh^T, instead of one GEMM over all steps before the loop
    (whose (N, 4H) result is written out and read back): wherever the recurrent weight is in
    panels (``packed``, from :func:`gemm.pack`) and the weights (with W_hr's panels, if given)
    fit ``LOOP_WEIGHT_BYTES``, whatever the batch size, so that a row's numbers do not depend on
    how many rows share its batch (one process or several under DDP give the same weights).
    From 8 rows, whole training steps 1.00-1.27x; at 4 rows 0.91-1.03x (``python -m
    benchmarks.ab_lstm_loops``)."""
    if packed is None or packed.dim() != 3:
        return False
    return weight_bytes(packed, w_ih, hr_packed) <= LOOP_WEIGHT_BYTES


def loop_plan(
    batch_size: int, w_hh: Tensor, w_ih: Tensor, w_hr: Tensor | None
) -> tuple[Tensor | None, Tensor | None, Tensor | None, int]:
    """How the forward loop runs a batch of batch_size rows: (W_hh as :func:`gemm.pack` lays it
    out, W_ih's panels where the loop projects the input (None: one GEMM before the loop), W_hr
    laid out likewise (None without a projection), row splits)."""
    packed = gemm.pack(w_hh, batch_size)
    hr_packed = None if w_hr is None else gemm.pack(w_hr, batch_size)
    project = projects_in_loop(packed, w_ih, hr_packed)
    ih_packed = gemm.pack(w_ih, batch_size) if project else None
    splits = row_splits(batch_size, packed, w_ih if project else None, hr_packed)
    return packed, ih_packed, hr_packed, splits


class LSTMFunction(torch.autograd.Function):
    """(x (T, B, I), h0 (B, R), c0 (B, H), weights...) -> (h_all (T, B, R), h_n, c_n); R is the
    projection's size P with W_hr (P, H), else H.

    The batch is sorted by decreasing length and ``batch_sizes[t]`` rows are active at step t
    (all B when ``batch_sizes`` is empty). Only active rows are projected, kept for backward and
    differentiated: the work follows the valid tokens.
    """

    @staticmethod
    def forward(
        ctx: Any, x, h0, c0, w_ih, w_hh, b_ih, b_hh, peephole, w_hr, mask, batch_sizes, keep
    ):
        # keep: what backward needs, only when there will be one (autograd on)
        ext = load_extension("lstm")
        T, B, I = x.shape
        rows = active_rows(batch_sizes, B, x.device)
        x_rows = x.reshape(T * B, I)
        if rows is not None:
            x_rows = x_rows.index_select(0, rows)  # (N, I)
        bias = None if b_ih is None else b_ih + b_hh
        H, R = c0.shape[1], h0.shape[1]
        packed, ih_packed, hr_packed, splits = loop_plan(B, w_hh, w_ih, w_hr)
        if ih_packed is not None:  # xp: the biases alone; the loop projects x_rows
            xp = bias if bias is not None else x.new_zeros(4 * H)
            x_rows = x_rows.contiguous()
        else:
            # (N, 4H), read by the loop only: in the buffer of backward's gate gradients (same
            # shape), so it costs no memory beyond what a training step holds anyway
            xp = gemm.linear_scratch(x_rows, w_ih, bias, "lstm.d_gates")
        N = x_rows.shape[0]
        S, K = (T, N) if keep else (1, B)  # steps and rows the buffers hold
        c_all = saved("lstm.c_all", (S, B, H), xp, keep)
        gates = saved("lstm.gates", (K, 4 * H), xp, keep)
        # each step's GEMM input, kept for the weight gradient where it is not a slice of h_all
        h_in = None if mask is None and rows is None else saved("lstm.h_in", (K, R), xp, keep)
        # with a projection, o * tanh(c_t) of each row, which W_hr's weight gradient reads
        h_pre = None if w_hr is None else saved("lstm.h_pre", (K, H), xp, keep)
        h_all, c_all, gates, h_n, c_n = ext.lstm_forward(
            xp, h0.contiguous(), c0.contiguous(), w_hh, packed, peephole, mask, batch_sizes,
            handed_out("lstm.h_all", (T, B, R), xp), c_all, gates, h_in, keep, splits,
            x_rows if ih_packed is not None else None, ih_packed, w_hr, hr_packed, h_pre,
        )  # fmt: skip
        if keep:
            ctx.save_for_backward(
                x_rows, rows, h0, c0, w_ih, w_hh, peephole, w_hr, mask, h_all, c_all, gates,
                h_in, h_pre,
            )  # fmt: skip
        ctx.batch_sizes, ctx.has_bias, ctx.x_shape = batch_sizes, b_ih is not None, x.shape
        return h_all, h_n, c_n

    @staticmethod
    def backward(ctx: Any, d_h_all, d_h_n, d_c_n):
        (x_rows, rows, h0, c0, w_ih, w_hh, peephole, w_hr, mask, h_all, c_all, gates, h_in,
         h_pre) = ctx.saved_tensors  # fmt: skip
        ext = load_extension("lstm")
        T, B, I = ctx.x_shape
        N, R = gates.shape[0], h0.shape[1]
        packed = gemm.pack(w_hh.t(), B)
        hr_packed = None if w_hr is None else gemm.pack(w_hr.t(), B)
        d_r = None if w_hr is None else scratch("lstm.d_r", (N, R), gates)
        # d_b: d_gates summed over rows in the loop (None without biases); b_ih, b_hh share it
        d_gates, d_h0, d_c0, d_peephole, d_b = ext.lstm_backward(
            d_h_all.contiguous(), d_h_n.contiguous(), d_c_n.contiguous(), gates, c_all,
            c0.contiguous(), w_hh, packed, peephole, mask, ctx.batch_sizes,
            scratch("lstm.d_gates", (N, gates.shape[1]), gates), ctx.has_bias,
            row_splits(B, packed, hr_packed), w_hr, hr_packed, d_r,
        )  # fmt: skip
        d_x = None
        if ctx.needs_input_grad[0]:
            if rows is None:  # (N, I) = (T * B, I)
                d_x_rows = gemm.linear_into_buffer(d_gates, w_ih.t(), None, "lstm.d_x", handed_out)
            else:
                d_x_rows = gemm.linear(d_gates, w_ih.t())  # (N, I)
                d_x_rows = d_x_rows.new_zeros(T * B, I).index_copy_(0, rows, d_x_rows)
            d_x = d_x_rows.view(T, B, I)
        d_w_ih, d_w_hh = weight_gradients(
            d_gates, [lambda n0, n1: [x_rows[n0:n1]], previous_states(h0, h_all, h_in)],
            [I, R], B,
        )  # fmt: skip
        d_w_hr = None
        if w_hr is not None and ctx.needs_input_grad[8]:
            d_w_hr = weight_gradient(d_r, h_pre, B)
        return d_x, d_h0, d_c0, d_w_ih, d_w_hh, d_b, d_b, d_peephole, d_w_hr, None, None, None


def applies(equations: Any) -> bool:
    return isinstance(equations, LSTMEquations) and not equations.layer_norm


def run(
    equations: LSTMEquations, p: Any, x: Tensor, state: LSTMState, mask: Tensor | None,
    batch_sizes: list[int],
) -> tuple[Tensor, LSTMState]:  # fmt: skip
    h_all, h_n, c_n = LSTMFunction.apply(
        x, state.h, state.c, p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"),
        p.get("weight_peephole"), p.get("weight_hr"), mask, batch_sizes, torch.is_grad_enabled(),
    )  # fmt: skip
    return h_all, LSTMState(h_n, c_n)
