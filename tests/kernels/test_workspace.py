"""Reused kernel buffers: a pooled buffer is handed out again only once nothing views it, and a
kernel's saved tensors from the pool survive until their backward is done."""

import threading

import torch

import rnnkit
from rnnkit.kernels import workspace
from tests.helpers import assert_close, require_kernel


def test_a_pooled_buffer_is_reused_only_when_nothing_views_it(monkeypatch):
    monkeypatch.setattr(workspace, "_pools", {})
    like = torch.empty(0)
    a = workspace.pooled("t", (2, 3), like)
    b = workspace.pooled("t", (2, 3), like)  # a is alive: another buffer
    assert a.data_ptr() != b.data_ptr()
    a_ptr = a.data_ptr()
    del a
    c = workspace.pooled("t", (3, 2), like)  # a's buffer, free again
    assert c.data_ptr() == a_ptr and c.shape == (3, 2)
    saved = c[1:]  # a view keeps the buffer busy
    del c
    d = workspace.pooled("t", (1, 6), like)
    assert d.data_ptr() not in (a_ptr, b.data_ptr())
    del saved, d
    big = workspace.pooled("t", (100,), like)  # no free buffer is big enough: one is replaced
    assert big.shape == (100,)
    assert len(workspace._pools[("t", like.dtype, like.device, threading.get_ident())]) == 3


def test_a_full_pool_hands_out_fresh_tensors(monkeypatch):
    monkeypatch.setattr(workspace, "_pools", {})
    monkeypatch.setattr(workspace, "POOL_SIZE", 2)
    like = torch.empty(0)
    held = [workspace.pooled("t", (4,), like) for _ in range(3)]
    assert len({t.data_ptr() for t in held}) == 3
    assert len(workspace._pools[("t", like.dtype, like.device, threading.get_ident())]) == 2


def test_interleaved_lstm_graphs_keep_their_saved_tensors():
    """Two forward passes before either backward: the second must not reuse the first's saved
    gates and cell states."""
    require_kernel("lstm")
    layer = rnnkit.LSTM(5, 7, peephole=True, dtype=torch.float64)  # peepholes: rnnkit's kernel
    x1, x2 = (torch.randn(6, 3, 5, dtype=torch.float64, requires_grad=True) for _ in range(2))

    def grads(x):
        y, _ = layer(x)
        return torch.autograd.grad(y.square().sum(), x)[0]

    want1, want2 = grads(x1), grads(x2)
    y1, _ = layer(x1)
    y2, _ = layer(x2)
    got2 = torch.autograd.grad(y2.square().sum(), x2)[0]
    got1 = torch.autograd.grad(y1.square().sum(), x1)[0]
    assert_close(got1, want1, 1e-12)
    assert_close(got2, want2, 1e-12)
