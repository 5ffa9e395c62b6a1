"""Scratch buffers reused across calls of a kernel's backward pass.

Fresh multi-megabyte buffers cost page faults on every call (the allocator hands large blocks
back to the OS); the backward temporaries (gate gradients and their transpose) are consumed
before the backward function returns, so one buffer per name and thread, grown as needed,
serves all layers and directions in turn.
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
