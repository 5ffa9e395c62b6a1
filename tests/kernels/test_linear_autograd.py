"""gemm.linear_autograd on its ATen path (forced, so that any CPU runs it): F.linear's numbers
and gradients, with outputs of POOL_MIN_BYTES or more written into reused buffers of a pool."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from rnnkit.kernels import gemm


@pytest.fixture
def on_aten(monkeypatch):
    monkeypatch.setattr(gemm, "use_onednn", lambda t: False)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("pool_min_bytes", [0, gemm.POOL_MIN_BYTES])
def test_output_and_gradients_match_f_linear(on_aten, monkeypatch, bias, pool_min_bytes):
    monkeypatch.setattr(gemm, "POOL_MIN_BYTES", pool_min_bytes)  # 0: every output pooled
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, 7, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(4, 7, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, generator=g, requires_grad=True) if bias else None
    d_y = torch.randn(5, 3, 4, dtype=torch.float64, generator=g)
    inputs = [t for t in (x, w, b) if t is not None]
    y = gemm.linear_autograd(x, w, b)
    grads = torch.autograd.grad(y, inputs, d_y)
    y_ref = F.linear(x, w, b)
    grads_ref = torch.autograd.grad(y_ref, inputs, d_y)
    assert y.shape == (5, 3, 4)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    for got, expected in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_a_dropped_output_is_reused_and_a_held_one_is_not(on_aten, monkeypatch):
    monkeypatch.setattr(gemm, "POOL_MIN_BYTES", 0)
    x, w = torch.randn(6, 5), torch.randn(3, 5)
    first = gemm.linear_autograd(x, w)
    address = first.data_ptr()
    del first
    second = gemm.linear_autograd(x, w)
    assert second.data_ptr() == address  # the pool's buffer, free again
    third = gemm.linear_autograd(x, w)
    assert third.data_ptr() != second.data_ptr()  # second still holds its buffer
    torch.testing.assert_close(second, x @ w.t())
    torch.testing.assert_close(third, x @ w.t())


def test_only_outputs_of_pool_min_bytes_or_more_come_from_the_pool(on_aten, monkeypatch):
    shapes = []
    real = gemm.pooled
    monkeypatch.setattr(gemm, "pooled", lambda name, shape, like: shapes.append(shape) or real(
        name, shape, like))  # fmt: skip
    monkeypatch.setattr(gemm, "POOL_MIN_BYTES", 6 * 3 * 4)  # a float32 (6, 3) output
    gemm.linear_autograd(torch.randn(5, 5), torch.randn(3, 5))  # 60 bytes: a fresh tensor
    gemm.linear_autograd(torch.randn(6, 5), torch.randn(3, 5))  # 72 bytes: pooled
    assert shapes == [(6, 3)]
