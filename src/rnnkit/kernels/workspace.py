"""Buffers reused across calls of a kernel.

Fresh multi-megabyte buffers cost page faults on every call (the allocator hands large blocks
back to the OS). :func:`scratch`: the backward temporaries (gate gradients and their transpose)
are consumed before the backward function returns, so one buffer per name and thread, grown as
needed, serves all layers and directions in turn. :func:`pooled`: tensors saved for backward
live until the step's backward is done, so each name keeps a few buffers and hands out one that
nothing references any more.
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


def pooled(name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """An uninitialised tensor of ``shape`` with ``like``'s dtype and device, carved from a
    buffer of the pool ``name`` that no tensor views any more (saved tensors of a finished
    backward, dropped outputs), or from a new one."""
    size = math.prod(shape)
    pool = _pools.setdefault((name, like.dtype, like.device, threading.get_ident()), [])
    free = [k for k, buffer in enumerate(pool) if _use_count(buffer) == _IDLE]
    big_enough = [k for k in free if pool[k].numel() >= size]
    if big_enough:
        k = big_enough[0]
    elif free:  # too small: replaced by a larger one
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
