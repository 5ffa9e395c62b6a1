"""GRU cell in torch.nn's formulation (reset gate applied to W_hn h + b_hn), optional layer norm.

    r = σ(W_ir x + b_ir + W_hr h + b_hr)
    z = σ(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
    h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}

With ``layer_norm=True`` the input and recurrent pre-activations are each normalised per gate
(learned gain) before their biases are added, as in Ba et al. (2016).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn import functional as F

from .base import CellEquations, Linear, Params, RecurrentCell, gate_layer_norm, recurrent_input


class GRUState(NamedTuple):
    """State of a GRU cell: h (B, H)."""

    h: Tensor


@dataclass(frozen=True)
class GRUEquations(CellEquations):
    """GRU step equations (see the module docstring).

    Parameters: weight_ih (3H, I), weight_hh (3H, H), bias_ih (3H,), bias_hh (3H,)
    [ln_ih_weight (3H,), ln_hh_weight (3H,)]; gate order r, z, n as in torch.nn.
    """

    input_size: int
    hidden_size: int
    bias: bool = True
    layer_norm: bool = False
    state_type = GRUState

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        G = 3 * self.hidden_size
        shapes = {"weight_ih": (G, self.input_size), "weight_hh": (G, self.hidden_size)}
        if self.bias:
            shapes |= {"bias_ih": (G,), "bias_hh": (G,)}
        if self.layer_norm:
            shapes |= {"ln_ih_weight": (G,), "ln_hh_weight": (G,)}
        return shapes

    def apply_init_rules(self, params: Params) -> None:
        if self.layer_norm:
            with torch.no_grad():
                params["ln_ih_weight"].fill_(1.0)
                params["ln_hh_weight"].fill_(1.0)

    def _affine(self, x: Tensor, p: Params, kind: str, linear: Linear = F.linear) -> Tensor:
        """W_{kind} x + b_{kind}, layer-normalised per gate when asked; kind is 'ih' or 'hh'."""
        weight, bias = p[f"weight_{kind}"], p.get(f"bias_{kind}")
        if not self.layer_norm:
            return linear(x, weight, bias)
        pre = gate_layer_norm(linear(x, weight, None), p[f"ln_{kind}_weight"], 3)
        return pre if bias is None else pre + bias

    def project_input(self, x: Tensor, p: Params, linear: Linear = F.linear) -> Tensor:
        return self._affine(x, p, "ih", linear)  # (..., 3H)

    def step(
        self, xp_t: Tensor, state: GRUState, p: Params, recurrent_mask: Tensor | None = None
    ) -> tuple[Tensor, GRUState]:
        hh = self._affine(recurrent_input(state.h, recurrent_mask), p, "hh")
        x_r, x_z, x_n = xp_t.chunk(3, dim=-1)
        h_r, h_z, h_n = hh.chunk(3, dim=-1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = n + z * (state.h - n)  # (1 - z) n + z h, one op fewer
        return h, GRUState(h)


class GRUCell(RecurrentCell):
    """GRU cell, drop-in for ``torch.nn.GRUCell`` (same arguments, parameters and numbers),
    with keyword-only ``layer_norm``.

    ``forward(x_t, state=None) -> (h_t, GRUState(h))``; x_t (B, I) or (I,), h_t (B, H).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        layer_norm: bool = False,
    ) -> None:
        from ..ops.validation import check_sizes

        check_sizes(input_size, hidden_size)
        super().__init__(
            GRUEquations(input_size, hidden_size, bias, layer_norm), device=device, dtype=dtype
        )
