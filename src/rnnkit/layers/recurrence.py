"""The time loop: one cell, one direction, a whole (possibly padded) sequence.

This is the only place that iterates over time. It hoists the input projection out of the loop
(one GEMM for all steps), applies the masking rule of :mod:`rnnkit.ops.masking`, runs a reverse
direction on the reversed valid prefix, and for cells whose gates see x_t only (minGRU/minLSTM)
replaces the loop by a scan.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..cells.base import CellEquations, Params
from ..cells.mingru import LinearRecurrenceEquations
from ..kernels import fused_direction
from ..kernels.gemm import linear_autograd
from ..kernels.minrnn import fused_min_rnn, linear_recurrence
from ..ops.masking import reverse_valid_prefix, zero_padded_steps


def run_direction(
    equations: CellEquations,
    params: Params,
    x: Tensor,
    state: Any,
    *,
    lengths: Tensor | None = None,
    valid: Tensor | None = None,
    reverse: bool = False,
    recurrent_mask: Tensor | None = None,
    use_fast: bool = False,
) -> tuple[Tensor, Any]:
    """Run ``equations`` over x (T, B, I) from ``state`` -> (outputs (T, B, H_out), final state).

    ``lengths`` (B,) and ``valid`` (T, B) describe a right-padded batch (both or neither).
    ``use_fast`` allows the fused C++ kernels (:mod:`rnnkit.kernels`) and solves minGRU/minLSTM
    recurrences with a scan over time (:func:`rnnkit.kernels.minrnn.linear_recurrence`); without
    it the plain step loop runs.
    """
    if reverse:
        x = reverse_valid_prefix(x, lengths)
    fused = (
        fused_direction(equations, params, x, state, lengths, recurrent_mask) if use_fast else None
    )
    if fused is not None:
        outputs, state = fused
        return (reverse_valid_prefix(outputs, lengths) if reverse else outputs), state
    if use_fast and isinstance(equations, LinearRecurrenceEquations):
        xp = equations.project_input(x, params, linear_autograd)  # (T, B, G)
        outputs, state = _scan(equations, xp, state, valid)
    else:
        xp = equations.project_input(x, params)  # (T, B, G)
        outputs, state = _loop(equations, params, xp, state, valid, recurrent_mask)
    if reverse:
        outputs = reverse_valid_prefix(outputs, lengths)
    return outputs, state


def _loop(
    equations: CellEquations,
    params: Params,
    xp: Tensor,
    state: Any,
    valid: Tensor | None,
    recurrent_mask: Tensor | None,
) -> tuple[Tensor, Any]:
    outputs = []
    for t, xp_t in enumerate(xp.unbind(0)):  # unbind: O(T) backward, unlike xp[t]
        y, new_state = equations.step(xp_t, state, params, recurrent_mask)
        if valid is not None:
            keep = valid[t].unsqueeze(-1)  # (B, 1)
            new_state = type(state)(
                *(torch.where(keep, n, o) for n, o in zip(new_state, state, strict=True))
            )
        state = new_state
        outputs.append(y)
    stacked = torch.stack(outputs)  # (T, B, H_out)
    return (stacked if valid is None else zero_padded_steps(stacked, valid)), state


def _scan(
    equations: LinearRecurrenceEquations, xp: Tensor, state: Any, valid: Tensor | None
) -> tuple[Tensor, Any]:
    h = fused_min_rnn(equations, xp, state.h, valid)  # gates and scan in one C++ pass
    if h is not None:
        return (h if valid is None else zero_padded_steps(h, valid)), type(state)(h[-1])
    log_a, b = equations.coefficients(xp)  # (T, B, H) each
    if valid is not None:
        keep = valid.unsqueeze(-1)  # (T, B, 1): a padded step is h_t = 1 * h_{t-1} + 0
        log_a = torch.where(keep, log_a, torch.zeros((), dtype=log_a.dtype, device=log_a.device))
        b = torch.where(keep, b, torch.zeros((), dtype=b.dtype, device=b.device))
    h = linear_recurrence(log_a, b, state.h)  # (T, B, H)
    final = type(state)(h[-1])
    return (h if valid is None else zero_padded_steps(h, valid)), final
