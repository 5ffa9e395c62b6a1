"""Stacking and bidirectionality, composed from :func:`run_direction`.

Layer k reads the concatenated outputs of both directions of layer k-1; dropout is applied
between layers (not after the last), as in torch.nn; recurrent dropout samples one mask per
sequence, layer and direction, shared across time steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from ..cells.base import CellEquations, Params
from ..ops.masking import valid_mask
from .recurrence import run_direction


def run_stack(
    equations: Sequence[CellEquations],
    params: Callable[[int, int], Params],
    x: Tensor,
    states: Sequence[Sequence[Any]],
    *,
    lengths: Tensor | None,
    dropout: float,
    recurrent_dropout: float,
    training: bool,
    use_fast: bool,
) -> tuple[Tensor, list[list[Any]]]:
    """x (T, B, I) -> (outputs (T, B, D*H_out), final states [layer][direction]).

    ``params(k, d)`` gives the parameters of layer k, direction d (0 forward, 1 reverse);
    ``states[k][d]`` is the initial state of that layer and direction.
    """
    valid = None if lengths is None else valid_mask(lengths, x.shape[0])  # (T, B)
    finals: list[list[Any]] = []
    layer_input = x
    for k, cell in enumerate(equations):
        outputs, layer_finals = [], []
        for d, state in enumerate(states[k]):
            mask = None
            if training and recurrent_dropout > 0 and cell.uses_recurrent_weights:
                mask = _variational_mask(state.h, recurrent_dropout)
            y, final = run_direction(
                cell,
                params(k, d),
                layer_input,
                state,
                lengths=lengths,
                valid=valid,
                reverse=d == 1,
                recurrent_mask=mask,
                use_fast=use_fast,
            )
            outputs.append(y)
            layer_finals.append(final)
        layer_input = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-1)
        if training and dropout > 0 and k < len(equations) - 1:
            layer_input = F.dropout(layer_input, dropout, training=True)
        finals.append(layer_finals)
    return layer_input, finals


def _variational_mask(h: Tensor, p: float) -> Tensor:
    """One (B, H) inverted-dropout mask per sequence, reused at every time step."""
    return torch.empty_like(h).bernoulli_(1.0 - p) / (1.0 - p)
