"""Masking for right-padded batches: the one rule, written once.

A batch of B sequences padded to T steps comes with ``lengths`` (B,). Step t of sequence b is
valid when t < lengths[b]. Through padded steps the state is carried unchanged and the output is
zero; a reverse direction reverses only each sequence's valid prefix; so the final state is the
state at each sequence's last valid step (or the initial state for a zero-length sequence).
"""

from __future__ import annotations

import torch
from torch import Tensor


def valid_mask(lengths: Tensor, num_steps: int) -> Tensor:
    """(B,) lengths -> (T, B) bool, True where step t of sequence b is real data.

    >>> valid_mask(torch.tensor([2, 0, 3]), 3).int().T.tolist()
    [[1, 1, 0], [0, 0, 0], [1, 1, 1]]
    """
    steps = torch.arange(num_steps, device=lengths.device).unsqueeze(1)  # (T, 1)
    return steps < lengths.unsqueeze(0)


def reverse_valid_prefix(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence's first ``lengths[b]`` steps along dim 0, leaving padding in place.

    x (T, B, ...) -> (T, B, ...). It is its own inverse. Without lengths, a plain flip.

    >>> x = torch.tensor([[1, 1], [2, 2], [3, 0]])  # (T=3, B=2): lengths 3 and 2
    >>> reverse_valid_prefix(x, torch.tensor([3, 2])).T.tolist()
    [[3, 2, 1], [2, 1, 0]]
    """
    if lengths is None:
        return x.flip(0)
    num_steps = x.shape[0]
    steps = torch.arange(num_steps, device=x.device).unsqueeze(1)  # (T, 1)
    lengths = lengths.unsqueeze(0)  # (1, B)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)  # (T, B)
    index = index.reshape(*index.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(0, index)


def zero_padded_steps(y: Tensor, valid: Tensor) -> Tensor:
    """y (T, B, ...) with the padded steps (valid (T, B) False) set to zero."""
    mask = valid.reshape(*valid.shape, *([1] * (y.dim() - 2)))
    return torch.where(mask, y, torch.zeros((), dtype=y.dtype, device=y.device))
