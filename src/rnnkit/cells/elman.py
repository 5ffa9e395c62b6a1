"""Elman RNN cell: h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), f in {tanh, relu, sigmoid}."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn import functional as F

from .base import CellEquations, Linear, Params, RecurrentCell, recurrent_input

NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}


class RNNState(NamedTuple):
    """State of an Elman cell: h (B, H)."""

    h: Tensor


@dataclass(frozen=True)
class ElmanEquations(CellEquations):
    """h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh).

    Parameters (torch.nn.RNNCell layout): weight_ih (H, I), weight_hh (H, H),
    bias_ih (H,), bias_hh (H,).
    """

    input_size: int
    hidden_size: int
    bias: bool = True
    nonlinearity: str = "tanh"
    state_type = RNNState

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = {
            "weight_ih": (self.hidden_size, self.input_size),
            "weight_hh": (self.hidden_size, self.hidden_size),
        }
        if self.bias:
            shapes |= {"bias_ih": (self.hidden_size,), "bias_hh": (self.hidden_size,)}
        return shapes

    def project_input(self, x: Tensor, p: Params, linear: Linear = F.linear) -> Tensor:
        return linear(x, p["weight_ih"], p.get("bias_ih"))  # (..., H)

    def step(
        self, xp_t: Tensor, state: RNNState, p: Params, recurrent_mask: Tensor | None = None
    ) -> tuple[Tensor, RNNState]:
        h_in = recurrent_input(state.h, recurrent_mask)
        h = NONLINEARITIES[self.nonlinearity](
            xp_t + F.linear(h_in, p["weight_hh"], p.get("bias_hh"))
        )
        return h, RNNState(h)


class RNNCell(RecurrentCell):
    """Elman RNN cell, drop-in for ``torch.nn.RNNCell`` (same arguments, parameters and numbers)
    plus ``nonlinearity="sigmoid"``.

    ``forward(x_t, state=None) -> (h_t, RNNState(h))``; x_t (B, I) or (I,), h_t (B, H).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        from ..ops.validation import check_nonlinearity, check_sizes

        check_sizes(input_size, hidden_size)
        check_nonlinearity(nonlinearity)
        super().__init__(
            ElmanEquations(input_size, hidden_size, bias, nonlinearity), device=device, dtype=dtype
        )
