"""Reused kernel buffers: a pooled buffer is handed out again only once nothing views it, and a
kernel's saved tensors from the pool survive until their backward is done."""

import threading

import pytest
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


LAYERS = {
    "lstm": lambda: rnnkit.LSTM(5, 7, peephole=True, dtype=torch.float64),  # rnnkit's kernel
    "gru": lambda: rnnkit.GRU(5, 7, dtype=torch.float64),
    "gru_layer_norm": lambda: rnnkit.GRU(5, 7, layer_norm=True, dtype=torch.float64),
    "elman": lambda: rnnkit.RNN(5, 7, dtype=torch.float64),
}


@pytest.mark.parametrize("kind", LAYERS)
def test_interleaved_graphs_keep_their_saved_tensors(kind):
    """Two forward passes before either backward: the second must not reuse the first's saved
    gates (and the LSTM's cell states)."""
    require_kernel(kind.split("_")[0])
    layer = LAYERS[kind]()
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


def test_gru_training_steps_reuse_the_kept_gates(monkeypatch):
    """Each training step's gates go into the buffer the last step's backward released: one
    buffer in the pool, not a fresh tensor (and its page faults) per step."""
    require_kernel("gru")
    monkeypatch.setattr(workspace, "_pools", {})
    addresses = []

    def spy(name, shape, like, keep):
        buffer = workspace.saved(name, shape, like, keep)
        addresses.append((name, buffer.data_ptr()))
        return buffer

    monkeypatch.setattr(rnnkit.kernels.gru, "saved", spy)
    layer = rnnkit.GRU(5, 7)
    x = torch.randn(6, 3, 5)
    for _ in range(3):
        y, _ = layer(x)
        y.sum().backward()
    pool = workspace._pools[("gru.gates", x.dtype, x.device, threading.get_ident())]
    assert len(pool) == 1 and addresses == [("gru.gates", pool[0].data_ptr())] * 3


def test_a_handed_out_buffer_is_its_whole_storage_and_not_a_view(monkeypatch):
    """Outputs from the pool: exactly their size (torch.save writes no more than the tensor),
    no view (autograd lets the caller change them in place), reused once dropped."""
    monkeypatch.setattr(workspace, "_pools", {})
    like = torch.empty(0)
    first = workspace.handed_out("out", (2, 3), like)
    address = first.data_ptr()
    assert first.untyped_storage().nbytes() == 6 * 4 and first._base is None
    held = workspace.handed_out("out", (3, 2), like)  # first is alive: another buffer
    assert held.data_ptr() != address
    del first
    assert workspace.handed_out("out", (3, 2), like).data_ptr() == address  # free again
    bigger = workspace.handed_out("out", (4, 5), like)  # the free one is replaced, not cut
    assert bigger.untyped_storage().nbytes() == 20 * 4
    del bigger
    assert workspace.handed_out("out", (2, 3), like).untyped_storage().nbytes() == 6 * 4


@pytest.mark.parametrize("kind", ["gru", "gru_layer_norm", "lstm", "elman"])
def test_outputs_alive_together_do_not_share_buffers(kind):
    """Two calls' outputs held at once are two tensors with the same numbers; one changed in
    place leaves the other and the next call's alone."""
    require_kernel(kind.split("_")[0])
    layer = LAYERS[kind]()
    x = torch.randn(6, 3, 5, dtype=torch.float64)
    with torch.no_grad():
        y1, _ = layer(x)
        y2, _ = layer(x)
        assert y1.data_ptr() != y2.data_ptr() and torch.equal(y1, y2)
        want = y2.clone()
        y1.zero_()
        y3, _ = layer(x)
    assert torch.equal(y2, want) and torch.equal(y3, want)
