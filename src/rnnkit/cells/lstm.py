"""LSTM cell: torch.nn's gates (i, f, g, o), plus peepholes, layer normalisation and projection.

    i = σ(W_ii x + b_ii + W_hi h + b_hi [+ w_ci ⊙ c_{t-1}])
    f = σ(W_if x + b_if + W_hf h + b_hf [+ w_cf ⊙ c_{t-1}])
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)
    c_t = f ⊙ c_{t-1} + i ⊙ g
    o = σ(W_io x + b_io + W_ho h + b_ho [+ w_co ⊙ c_t])
    h_t = o ⊙ tanh(c_t)                  (layer_norm: o ⊙ tanh(LN(c_t)))
    h_t = W_hr h_t                       (proj_size > 0)

Peepholes follow Gers & Schmidhuber (2000): diagonal weights, i and f see c_{t-1}, o sees c_t.
Layer normalisation follows Ba et al. (2016): the input and recurrent pre-activations are
normalised separately (each gate's block on its own, with a learned gain), then the biases are
added; the cell state is normalised (gain and bias) before the output tanh, while the carried
c_t stays unnormalised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn import functional as F

from .base import CellEquations, Linear, Params, RecurrentCell, gate_layer_norm, recurrent_input


class LSTMState(NamedTuple):
    """State of an LSTM cell: h (B, P or H) and c (B, H)."""

    h: Tensor
    c: Tensor


@dataclass(frozen=True)
class LSTMEquations(CellEquations):
    """LSTM step equations (see the module docstring).

    Parameters: weight_ih (4H, I), weight_hh (4H, P or H), bias_ih (4H,), bias_hh (4H,)
    [weight_hr (P, H)] [weight_peephole (3, H): rows c->i, c->f, c->o]
    [ln_ih_weight (4H,), ln_hh_weight (4H,), ln_cell_weight (H,), ln_cell_bias (H,)].
    """

    input_size: int
    hidden_size: int
    bias: bool = True
    proj_size: int = 0
    peephole: bool = False
    layer_norm: bool = False
    forget_bias: float | None = None
    state_type = LSTMState

    @property
    def output_size(self) -> int:
        return self.proj_size or self.hidden_size

    def state_sizes(self) -> tuple[int, ...]:
        return (self.output_size, self.hidden_size)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        H, G = self.hidden_size, 4 * self.hidden_size
        shapes = {"weight_ih": (G, self.input_size), "weight_hh": (G, self.output_size)}
        if self.bias:
            shapes |= {"bias_ih": (G,), "bias_hh": (G,)}
        if self.proj_size:
            shapes["weight_hr"] = (self.proj_size, H)
        if self.peephole:
            shapes["weight_peephole"] = (3, H)
        if self.layer_norm:
            shapes |= {
                "ln_ih_weight": (G,),
                "ln_hh_weight": (G,),
                "ln_cell_weight": (H,),
                "ln_cell_bias": (H,),
            }
        return shapes

    def apply_init_rules(self, params: Params) -> None:
        with torch.no_grad():
            if self.layer_norm:
                for name in ("ln_ih_weight", "ln_hh_weight", "ln_cell_weight"):
                    params[name].fill_(1.0)
                params["ln_cell_bias"].zero_()
            if self.forget_bias is not None and self.bias:
                # Jozefowicz et al. (2015): a positive forget bias lets gradients flow early on.
                forget = slice(self.hidden_size, 2 * self.hidden_size)
                params["bias_ih"][forget] = self.forget_bias
                params["bias_hh"][forget] = 0.0

    def project_input(self, x: Tensor, p: Params, linear: Linear = F.linear) -> Tensor:
        if not self.layer_norm:
            return linear(x, p["weight_ih"], p.get("bias_ih"))  # (..., 4H)
        pre = gate_layer_norm(linear(x, p["weight_ih"], None), p["ln_ih_weight"], 4)
        return pre if "bias_ih" not in p else pre + p["bias_ih"]

    def step(
        self, xp_t: Tensor, state: LSTMState, p: Params, recurrent_mask: Tensor | None = None
    ) -> tuple[Tensor, LSTMState]:
        h_in = recurrent_input(state.h, recurrent_mask)
        if self.layer_norm:
            hh = gate_layer_norm(F.linear(h_in, p["weight_hh"]), p["ln_hh_weight"], 4)
            hh = hh if "bias_hh" not in p else hh + p["bias_hh"]
        else:
            hh = F.linear(h_in, p["weight_hh"], p.get("bias_hh"))
        i, f, g, o = (xp_t + hh).chunk(4, dim=-1)  # each (B, H)
        if self.peephole:
            w_ci, w_cf, w_co = p["weight_peephole"]
            i = i + w_ci * state.c
            f = f + w_cf * state.c
        c = torch.sigmoid(f) * state.c + torch.sigmoid(i) * torch.tanh(g)
        if self.peephole:
            o = o + w_co * c
        c_out = c
        if self.layer_norm:
            c_out = F.layer_norm(c, c.shape[-1:], p["ln_cell_weight"], p["ln_cell_bias"])
        h = torch.sigmoid(o) * torch.tanh(c_out)
        if self.proj_size:
            h = F.linear(h, p["weight_hr"])  # (B, P)
        return h, LSTMState(h, c)


class LSTMCell(RecurrentCell):
    """LSTM cell, drop-in for ``torch.nn.LSTMCell`` (same arguments, parameters and numbers),
    with keyword-only extras ``proj_size``, ``peephole``, ``layer_norm`` and ``forget_bias``.

    ``forward(x_t, state=None) -> (h_t, LSTMState(h, c))``; x_t (B, I) or (I,),
    h_t (B, P or H), c (B, H).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        proj_size: int = 0,
        peephole: bool = False,
        layer_norm: bool = False,
        forget_bias: float | None = None,
    ) -> None:
        from ..ops.validation import check_proj_size, check_sizes

        check_sizes(input_size, hidden_size)
        check_proj_size(proj_size, hidden_size)
        equations = LSTMEquations(
            input_size, hidden_size, bias, proj_size, peephole, layer_norm, forget_bias
        )
        super().__init__(equations, device=device, dtype=dtype)
