"""``rnnkit.MinGRU`` and ``rnnkit.MinLSTM``: stacked, optionally bidirectional layers of the
minimal RNNs of Feng et al. (2024), trained with a scan over time.

Same forward contract as the torch-compatible layers: ``forward(input, hx=None, *, lengths=None)
-> (output, h_n)`` with output (T, B, D*H) and h_n (D*L, B, H). Parameters are named
``weight_ih_l{k}[_reverse]`` and ``bias_ih_l{k}[_reverse]``; there are no recurrent weights.
Inside :func:`rnnkit.reference_implementation` the step loop runs instead of the scan.
"""

from __future__ import annotations

import torch
from torch import nn

from ..cells.mingru import LinearRecurrenceEquations, MinGRUEquations, MinLSTMEquations
from ..ops.validation import check_num_layers, check_probability, check_sizes
from .base import RecurrentLayerMixin


class _MinRNN(RecurrentLayerMixin, nn.Module):
    equations_type: type[LinearRecurrenceEquations]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        check_sizes(input_size, hidden_size)
        check_num_layers(num_layers)
        check_probability("dropout", dropout)
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional = bidirectional
        width = hidden_size * self._num_directions
        equations = [
            self.equations_type(input_size if k == 0 else width, hidden_size, bias)
            for k in range(num_layers)
        ]
        self._init_recurrence(equations, 0.0, device, dtype)

    def reset_parameters(self) -> None:
        for k, cell in enumerate(self._equations):
            for d in range(self._num_directions):
                cell.reset_parameters(self.layer_parameters(k, d))

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False)):  # fmt: skip
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        return s


class MinGRU(_MinRNN):
    """Stacked minGRU layer: z = σ(W_z x + b_z), h̃ = W_h x + b_h,
    h_t = (1 - z) ⊙ h_{t-1} + z ⊙ h̃."""

    equations_type = MinGRUEquations


class MinLSTM(_MinRNN):
    """Stacked minLSTM layer: normalised gates f' = f/(f+i), i' = i/(f+i);
    h_t = f' ⊙ h_{t-1} + i' ⊙ h̃."""

    equations_type = MinLSTMEquations
