"""The big GEMMs of the fused kernels, through oneDNN where it is available (about twice
torch.mm's throughput in float32 on AMD CPUs, where torch.mm runs MKL's AVX2 path), else ATen.

``torch.ops.mkldnn._linear_pointwise`` and ``_reorder_linear_weight`` are internal torch ops:
they are used only behind :func:`rnnkit.kernels.build.onednn_available`, only for float32 CPU
tensors, and the tests check both routes against each other.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from .build import onednn_available


def use_onednn(t: Tensor) -> bool:
    return t.dtype == torch.float32 and t.device.type == "cpu" and onednn_available()


def pack(weight: Tensor, batch_size: int) -> Tensor | None:
    """weight (N, K) reordered once for repeated ``x @ weight^T`` with x of ~batch_size rows;
    None where oneDNN does not apply."""
    if not use_onednn(weight):
        return None
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous(), batch_size)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x (M, K) @ weight (N, K)^T + bias -> (M, N)."""
    if use_onednn(x):
        return torch.ops.mkldnn._linear_pointwise(
            x.contiguous(), weight.contiguous(), bias, "none", [], ""
        )
    return F.linear(x, weight, bias)
