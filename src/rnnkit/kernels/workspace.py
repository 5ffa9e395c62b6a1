"""Buffers reused across calls of a kernel.

Fresh multi-megabyte buffers cost page faults on every call (the allocator hands large blocks
back to the OS). :func:`scratch`: the backward temporaries (gate gradients and their transpose)
are consumed before the backward function returns, so one buffer per name and thread, grown as
needed, serves all layers and directions in turn. :func:`pooled`: tensors saved for backward
live until the step's backward is done, so each name keeps a few buffers and hands out one that
nothing references any more; :func:`handed_out`: so do outputs and input gradients, which the
caller drops in turn.
"""

from __future__ import annotations

import math
import threading

import torch
from torch import Tensor

_buffers: dict[tuple[str, torch.dtype, torch.device, int], Tensor] = {}


def scratch(name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """An uninitialised tensor of ``shape`` with ``like``'s dtype and device, reused per name."""
    size = math.prod(shape)
    key = (name, like.dtype, like.device, threading.get_ident())  # no sharing across threads
    buffer = _buffers.get(key)
    if buffer is None or buffer.numel() < size:
        buffer = _buffers[key] = like.new_empty(size)
    return buffer[:size].view(shape)


POOL_SIZE = 8  # buffers kept per name (a layer and direction each); beyond it, fresh tensors
_pools: dict[tuple[str, torch.dtype, torch.device, int], list[Tensor]] = {}


def _use_count(t: Tensor) -> int:
    """How many tensors share t's storage (plus the one reference this call itself makes)."""
    return torch._C._storage_Use_Count(t.untyped_storage()._cdata)


_IDLE = _use_count(torch.empty(1))  # the count of a buffer no view of which is alive


def pooled(name: str, shape: tuple[int, ...], like: Tensor, exact: bool = False) -> Tensor:
    """An uninitialised tensor of ``shape`` with ``like``'s dtype and device, carved from a
    buffer of the pool ``name`` that no tensor views any more (saved tensors of a finished
    backward, dropped outputs), or from a new one. With ``exact``, only a buffer of exactly
    its size serves (a free one of another size is replaced)."""
    size = math.prod(shape)
    pool = _pools.setdefault((name, like.dtype, like.device, threading.get_ident()), [])
    free = [k for k, buffer in enumerate(pool) if _use_count(buffer) == _IDLE]
    fits = [k for k in free if pool[k].numel() == size or not exact and pool[k].numel() > size]
    if fits:
        k = fits[0]
    elif free:  # too small (or not the exact size): replaced
        k = free[0]
        pool[k] = like.new_empty(size)
    elif len(pool) < POOL_SIZE:
        k = len(pool)
        pool.append(like.new_empty(size))
    else:
        return like.new_empty(shape)
    return pool[k][:size].view(shape)


def saved(name: str, shape: tuple[int, ...], like: Tensor, keep: bool) -> Tensor:
    """A buffer a forward pass writes what its backward reads into: from the pool ``name``
    when there will be a backward (``keep``), else a fresh one (then sized for one step by the
    caller, and dropped with the call)."""
    return pooled(name, shape, like) if keep else like.new_empty(shape)


def handed_out(name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """A buffer for a tensor a kernel hands to its caller (a layer's outputs, an input's
    gradient): from the pool ``name``, of exactly its size, so that the tensor is its buffer's
    whole storage (``torch.save`` of it writes nothing more) and the buffer serves again once
    the caller drops it. Not a view of the pool's tensor (it is set to its storage): autograd
    lets the caller modify it in place."""
    buffer = pooled(name, shape, like, exact=True)
    return like.new_empty(0).set_(buffer.untyped_storage(), 0, shape)
