"""The GEMMs of the fused kernels. The big ones (all time steps at once) go through oneDNN where
the CPU has AVX-512 (on AMD CPUs torch.mm runs MKL's AVX2 path there, and oneDNN had about twice
its throughput), else ATen (torch.mm: MKL), which on an AVX2 CPU (AMD Zen 3) was 3-27% faster
than oneDNN at the kernels' shapes. The recurrent ones (a step's few rows, inside the C++ loops)
take their weight from :func:`pack`: in panels for rnnkit's own AVX-512 or AVX2 kernel
(``csrc/panel_gemm.h``) where it is built, else oneDNN-reordered (where the big GEMMs use
oneDNN), else plain.

``torch.ops.mkldnn._linear_pointwise`` and ``_reorder_linear_weight`` are internal torch ops:
they are used only behind :func:`rnnkit.kernels.build.onednn_available`, only for float32 CPU
tensors, and the tests check both routes against each other.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from .build import cpu_has_avx512, load_extension, onednn_available
from .workspace import pooled, scratch


def onednn_applies(t: Tensor) -> bool:
    """oneDNN's GEMMs can take t: float32, on the CPU, in a torch build that has them."""
    return t.dtype == torch.float32 and t.device.type == "cpu" and onednn_available()


def use_onednn(t: Tensor) -> bool:
    """Whether the kernels' big GEMMs on t run on oneDNN (where it applies and the CPU has
    AVX-512: ``python -m benchmarks.ab_big_gemms``) rather than ATen."""
    return onednn_applies(t) and cpu_has_avx512()


# Batch sizes up to which the loops get panels: there the panel kernel is 1.01-3.7x oneDNN per
# call (python -m benchmarks.ab_recurrent_gemm), at 256 rows 0.98-1.08x.
PANEL_MAX_ROWS = 128
# Output columns per panel: pack_panels' (P, K, PANEL_WIDTH) layout (kPanelWidth in the header).
PANEL_WIDTH = 32


def panels_available(t: Tensor) -> bool:
    """Whether rnnkit's panel GEMM is built (an AVX-512 or AVX2 build, see :func:`panel_isa`)
    and applies to t (float32, CPU).
    Every kernel is built with the same flags; the "lstm" extension, which also holds the
    shared transpose, answers for all of them."""
    if t.dtype != torch.float32 or t.device.type != "cpu":
        return False
    ext = load_extension("lstm")
    return ext is not None and ext.panel_gemm


def panel_isa() -> str:
    """The instructions the panel kernel of this build uses: "AVX-512", "AVX2" or "" (none)."""
    ext = load_extension("lstm")
    return {"avx512": "AVX-512", "avx2": "AVX2"}.get(ext.panel_isa if ext else "", "")


def pack(weight: Tensor, batch_size: int) -> Tensor | None:
    """weight (N, K) (any strides: ``w.t()`` is fine) laid out once for repeated ``x @ weight^T``
    inside a C++ loop, x of about batch_size rows: (P, K, 32) panels for the panel kernel where
    it applies, else a oneDNN reordered weight, else None (the loops use ATen)."""
    weight = weight.detach()
    if batch_size <= PANEL_MAX_ROWS and panels_available(weight):
        return load_extension("lstm").pack_panels(weight)  # reads any strides
    if not use_onednn(weight):
        return None
    return torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), batch_size)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x (M, K) @ weight (N, K)^T + bias -> (M, N)."""
    if use_onednn(x):
        return torch.ops.mkldnn._linear_pointwise(
            x.contiguous(), weight.contiguous(), bias, "none", [], ""
        )
    return F.linear(x, weight, bias)


def linear_into(x: Tensor, weight: Tensor, bias: Tensor | None, out: Tensor) -> Tensor:
    """x (M, K) @ weight (N, K)^T + bias written into out (M, N) with ATen; returns out."""
    if bias is None:
        return torch.mm(x, weight.t(), out=out)
    return torch.addmm(bias, x, weight.t(), out=out)


def linear_scratch(x: Tensor, weight: Tensor, bias: Tensor | None, name: str) -> Tensor:
    """:func:`linear` into the reused scratch buffer ``name`` on ATen (valid until the next call
    with that name: for a product the caller has consumed before it returns, such as a
    kernel's input projection read by its forward loop); oneDNN returns a tensor of its own."""
    return linear_into_buffer(x, weight, bias, name, scratch)


def linear_into_buffer(
    x: Tensor, weight: Tensor, bias: Tensor | None, name: str, buffer: Callable[..., Tensor]
) -> Tensor:
    """:func:`linear` into ``buffer(name, (M, N), x)`` (a :mod:`.workspace` function) on ATen;
    oneDNN returns a tensor of its own."""
    if use_onednn(x):
        return linear(x, weight, bias)
    return linear_into(x, weight, bias, buffer(name, (x.shape[0], weight.shape[0]), x))


def rows_t_matmul(blocks: list[Tensor], d: Tensor, name: str) -> Tensor:
    """blocks [(n_k, K)], which make (n, K) one after another, and d (n, G) -> (K, G), the sum
    over rows of row^T d_row; d is read where it lies (the LSTM weight gradients' gate
    gradients are never transposed: ``python -m benchmarks.ab_lstm_weight_gradients``).
    oneDNN takes no transposed first operand, so the blocks are transposed into the reused
    scratch buffer ``name`` first (and d passed as the transposed view of a weight); ATen
    (MKL) reads their transposed views in place, one product per block."""
    if use_onednn(d):
        rows_t = transpose(blocks, name)  # (K, n)
        return torch.ops.mkldnn._linear_pointwise(rows_t, d.t(), None, "none", [], "")
    out, n0 = None, 0
    for block in blocks:
        part = d[n0 : n0 + block.shape[0]]
        out = torch.mm(block.t(), part) if out is None else out.addmm_(block.t(), part)
        n0 += block.shape[0]
    return out


def transpose(rows: Tensor | list[Tensor], name: str | None = None) -> Tensor:
    """(R, C) -> (C, R) contiguous, with the C++ tiled transpose when it is built; into the
    reused scratch buffer ``name`` if given (the result is then valid until the next call
    with that name). A list of (R_k, C) blocks is the matrix they make one after another
    along the rows, transposed without concatenating them first."""
    from .workspace import scratch

    blocks = [rows] if isinstance(rows, Tensor) else rows
    ext = load_extension("lstm")
    if ext is None:
        return torch.cat(blocks).t().contiguous()
    shape = (blocks[0].shape[1], sum(block.shape[0] for block in blocks))
    out = blocks[0].new_empty(shape) if name is None else scratch(name, shape, blocks[0])
    column = 0
    for block in blocks:
        ext.transpose(block, out, column)
        column += block.shape[0]
    return out


# From this size on, _Linear's output comes from a pool: glibc serves every allocation of 32 MiB
# or more (its largest mmap threshold) with fresh pages, faulted in on each call; smaller ones it
# recycles from its free lists once its threshold has adapted, often still in cache, and there a
# pooled buffer was no faster (``python -m benchmarks.ab_pooled_linear``: fresh outputs took
# 0.93-1.14x a pooled one's time below 32 MiB, 1.07-1.19x at 64 and 96 MiB on glibc's default
# heap).
POOL_MIN_BYTES = 32 << 20


class _Linear(torch.autograd.Function):
    """y = x @ w^T + b on 2-D CPU x: oneDNN's GEMMs both ways where they apply, else ATen's, with
    y of ``POOL_MIN_BYTES`` or more written into a buffer of the pool ``linear.y`` that nothing
    views any more. y is saved by the kernels that read it (minGRU/minLSTM, the layer-norm GRU)
    and never written in place."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        shape = (x.shape[0], weight.shape[0])
        if use_onednn(x) or math.prod(shape) * x.element_size() < POOL_MIN_BYTES:
            return linear(x, weight, bias)
        return linear_into(x, weight, bias, pooled("linear.y", shape, x))

    @staticmethod
    def backward(ctx, d_y: Tensor):
        x, weight = ctx.saved_tensors
        d_y = d_y.contiguous()
        d_x = linear(d_y, weight.t()) if ctx.needs_input_grad[0] else None
        d_w = rows_t_matmul([d_y], x, "linear.d_y_t") if ctx.needs_input_grad[1] else None
        d_b = d_y.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return d_x, d_w, d_b


def linear_autograd(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear`` through :class:`_Linear` on the CPU (outside autocast): x (..., K)."""
    if x.device.type != "cpu" or torch.is_autocast_enabled("cpu"):
        return F.linear(x, weight, bias)
    y = _Linear.apply(x.reshape(-1, x.shape[-1]), weight, bias)
    return y.view(*x.shape[:-1], weight.shape[0])
