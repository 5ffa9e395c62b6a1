"""minGRU and minLSTM cells (Feng et al. 2024, "Were RNNs All We Needed?", sections 3.1-3.2).

Their gates depend on x_t only, so each step is a linear recurrence in h,

    h_t = a_t ⊙ h_{t-1} + b_t,        a_t, b_t functions of x_t alone,

and a layer computes all a_t, b_t in one GEMM and solves the recurrence with a scan over time
(:func:`rnnkit.ops.scan.linear_scan`) instead of a step loop.

    minGRU:   z = σ(W_z x + b_z),  h̃ = W_h x + b_h,   a = 1 - z,  b = z ⊙ h̃
    minLSTM:  f = σ(W_f x + b_f),  i = σ(W_i x + b_i),  h̃ = W_h x + b_h,
              a = f / (f + i),  b = i / (f + i) ⊙ h̃        (the paper's normalised gates)

The candidate h̃ is the plain linear map of the paper's sequential algorithms; the scan here
works in linear space, so it needs no positivity transform of h̃.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn import functional as F

from .base import CellEquations, Linear, Params, RecurrentCell


class MinRNNState(NamedTuple):
    """State of a minGRU/minLSTM cell: h (B, H)."""

    h: Tensor


class LinearRecurrenceEquations(CellEquations):
    """Cells whose step is h_t = exp(log_a_t) ⊙ h_{t-1} + b_t with (log_a, b) from x_t alone."""

    state_type = MinRNNState
    num_projections: int

    @property
    def uses_recurrent_weights(self) -> bool:
        return False

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        G = self.num_projections * self.hidden_size
        shapes = {"weight_ih": (G, self.input_size)}
        if self.bias:
            shapes["bias_ih"] = (G,)
        return shapes

    def project_input(self, x: Tensor, p: Params, linear: Linear = F.linear) -> Tensor:
        return linear(x, p["weight_ih"], p.get("bias_ih"))  # (..., G)

    def coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        """(..., G) projected input -> (log_a, b), each (..., H)."""
        raise NotImplementedError

    def step(
        self, xp_t: Tensor, state: MinRNNState, p: Params, recurrent_mask: Tensor | None = None
    ) -> tuple[Tensor, MinRNNState]:
        log_a, b = self.coefficients(xp_t)
        h = torch.exp(log_a) * state.h + b
        return h, MinRNNState(h)


@dataclass(frozen=True)
class MinGRUEquations(LinearRecurrenceEquations):
    """minGRU: weight_ih (2H, I) rows [z; h̃], bias_ih (2H,)."""

    input_size: int
    hidden_size: int
    bias: bool = True
    num_projections = 2

    def coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        k, h_tilde = xp.chunk(2, dim=-1)
        return F.logsigmoid(-k), torch.sigmoid(k) * h_tilde  # log(1 - z), z ⊙ h̃


@dataclass(frozen=True)
class MinLSTMEquations(LinearRecurrenceEquations):
    """minLSTM: weight_ih (3H, I) rows [f; i; h̃], bias_ih (3H,)."""

    input_size: int
    hidden_size: int
    bias: bool = True
    num_projections = 3

    def coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        k_f, k_i, h_tilde = xp.chunk(3, dim=-1)
        # f / (f + i) = σ(log f - log i): stable however small f and i are.
        log_ratio = F.logsigmoid(k_f) - F.logsigmoid(k_i)
        return F.logsigmoid(log_ratio), torch.sigmoid(-log_ratio) * h_tilde


class MinGRUCell(RecurrentCell):
    """minGRU cell: ``forward(x_t, state=None) -> (h_t, MinRNNState(h))``; x_t (B, I), h_t (B, H)
    (see :class:`MinGRUEquations`)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        from ..ops.validation import check_sizes

        check_sizes(input_size, hidden_size)
        super().__init__(MinGRUEquations(input_size, hidden_size, bias), device=device, dtype=dtype)


class MinLSTMCell(RecurrentCell):
    """minLSTM cell: ``forward(x_t, state=None) -> (h_t, MinRNNState(h))``; x_t (B, I), h_t (B, H)
    (see :class:`MinLSTMEquations`)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        from ..ops.validation import check_sizes

        check_sizes(input_size, hidden_size)
        super().__init__(
            MinLSTMEquations(input_size, hidden_size, bias), device=device, dtype=dtype
        )
