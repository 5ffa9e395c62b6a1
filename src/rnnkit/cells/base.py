"""The cell contract: step equations over an explicit parameter mapping, and a module owning them.

A cell is split in two so that one set of equations serves both a standalone cell module
(parameters ``weight_ih``, ...) and a torch.nn-compatible layer (parameters ``weight_ih_l0``, ...):

* :class:`CellEquations` holds the step equations and the shapes of the parameters they use.
  ``project_input`` is the part that depends on ``x_t`` alone (one GEMM for all time steps);
  ``step`` is the recurrence.
* :class:`RecurrentCell` is an ``nn.Module`` that owns those parameters and runs one step.

Letter legend used in every docstring of the package: T time steps, B batch, I input size,
H hidden size, P projection size, G gates x H (the width of a fused gate pre-activation),
L layers, D directions (1 or 2).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

Params = Mapping[str, Tensor]
Linear = Callable[[Tensor, Tensor, Tensor | None], Tensor]  # F.linear's signature
State = TypeVar("State", bound=tuple)


class CellEquations:
    """Step equations of one recurrent cell, independent of who owns the parameters.

    Subclasses set ``state_type`` (a NamedTuple of (B, ·) tensors) and define
    ``parameter_shapes``, ``project_input`` and ``step``.
    """

    state_type: type[NamedTuple]
    input_size: int
    hidden_size: int
    bias: bool

    @property
    def output_size(self) -> int:
        """Width of ``h_t``, the output of one step."""
        return self.hidden_size

    @property
    def uses_recurrent_weights(self) -> bool:
        """False for cells whose gates see x_t only (minGRU/minLSTM): no recurrent dropout."""
        return True

    def state_sizes(self) -> tuple[int, ...]:
        """Width of each state field, in ``state_type`` order (``h`` first)."""
        return (self.output_size,)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        raise NotImplementedError

    def reset_parameters(self, params: Params) -> None:
        """torch.nn's initialisation, every parameter ~ U(-1/sqrt(H), 1/sqrt(H)), then the
        cell's own rules (:meth:`apply_init_rules`)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for tensor in params.values():
                tensor.uniform_(-bound, bound)
        self.apply_init_rules(params)

    def apply_init_rules(self, params: Params) -> None:
        """Initialisation that differs from the uniform default (layer-norm gains, forget bias)."""

    def initial_state(
        self,
        batch_size: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Any:
        """The zero state: each field of shape (B, width)."""
        return self.state_type(
            *(torch.zeros(batch_size, n, device=device, dtype=dtype) for n in self.state_sizes())
        )

    def project_input(self, x: Tensor, p: Params, linear: Linear = F.linear) -> Tensor:
        """(..., I) -> (..., G): everything that depends on x_t alone. ``linear`` is the GEMM
        to use (``F.linear``'s signature); the fused kernels pass a faster one."""
        raise NotImplementedError

    def step(
        self, xp_t: Tensor, state: Any, p: Params, recurrent_mask: Tensor | None = None
    ) -> tuple[Tensor, Any]:
        """One step: (B, G) projected input and the previous state -> ((B, H_out), new state).

        ``recurrent_mask`` (B, H_out), if given, multiplies ``h_{t-1}`` where it enters the
        recurrent weights (variational recurrent dropout, Gal & Ghahramani 2016).
        """
        raise NotImplementedError


def recurrent_input(h: Tensor, recurrent_mask: Tensor | None) -> Tensor:
    """h_{t-1} as the recurrent weights see it: dropped out by a per-sequence mask, if any."""
    return h if recurrent_mask is None else h * recurrent_mask


def gate_layer_norm(pre: Tensor, gain: Tensor, num_gates: int) -> Tensor:
    """Normalise each gate's block of a fused (..., num_gates*H) pre-activation separately."""
    shape = pre.shape
    blocks = pre.reshape(*shape[:-1], num_gates, shape[-1] // num_gates)
    normed = nn.functional.layer_norm(blocks, blocks.shape[-1:])
    return normed.reshape(shape) * gain


class RecurrentCell(nn.Module):
    """A module that owns the parameters of one :class:`CellEquations` and runs one step.

    ``forward(x_t, state=None) -> (h_t, state)`` with ``x_t`` of shape (B, I) or (I,).
    """

    def __init__(
        self,
        equations: CellEquations,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.equations = equations
        for name, shape in equations.parameter_shapes().items():
            self.register_parameter(
                name, nn.Parameter(torch.empty(shape, device=device, dtype=dtype))
            )
        self.reset_parameters()

    @property
    def input_size(self) -> int:
        return self.equations.input_size

    @property
    def hidden_size(self) -> int:
        return self.equations.hidden_size

    def parameters_by_name(self) -> dict[str, Tensor]:
        return {name: getattr(self, name) for name in self.equations.parameter_shapes()}

    def reset_parameters(self) -> None:
        self.equations.reset_parameters(self.parameters_by_name())

    def initial_state(
        self,
        batch_size: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Any:
        """The zero state for ``batch_size`` sequences, on the parameters' device and dtype."""
        reference = next(self.parameters())
        return self.equations.initial_state(
            batch_size, device=device or reference.device, dtype=dtype or reference.dtype
        )

    def forward(self, x_t: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        from ..ops.validation import check_cell_input, check_state

        owner = type(self).__name__
        dtype = self.weight_ih.dtype
        unbatched = check_cell_input(x_t, self.input_size, owner, dtype)
        if state is not None:  # checked before any reshaping: (B, width), or (width,) unbatched
            batch_size = None if unbatched else x_t.shape[0]
            state = check_state(state, self.equations, batch_size, owner, dtype)
        if unbatched:
            x_t = x_t.unsqueeze(0)
            state = None if state is None else type(state)(*(s.unsqueeze(0) for s in state))
        if state is None:
            state = self.initial_state(x_t.shape[0], device=x_t.device, dtype=x_t.dtype)
        p = self.parameters_by_name()
        h, new_state = self.equations.step(self.equations.project_input(x_t, p), state, p)
        if unbatched:
            return h.squeeze(0), type(new_state)(*(s.squeeze(0) for s in new_state))
        return h, new_state

    def extra_repr(self) -> str:
        return repr(self.equations)
