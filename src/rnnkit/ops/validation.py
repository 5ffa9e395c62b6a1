"""Checks at the edges of the public API, each raising a message that says what was expected and
what came instead."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..cells.base import CellEquations


def check_sizes(input_size: Any, hidden_size: Any) -> None:
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive int; got {value!r}")


def check_num_layers(num_layers: Any) -> None:
    if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers <= 0:
        raise ValueError(f"num_layers must be a positive int; got {num_layers!r}")


def check_probability(name: str, p: Any) -> None:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1); got {p!r}")


def check_nonlinearity(nonlinearity: Any) -> None:
    from ..cells.elman import NONLINEARITIES

    if nonlinearity not in NONLINEARITIES:
        raise ValueError(
            f"nonlinearity must be one of {sorted(NONLINEARITIES)}; got {nonlinearity!r}"
        )


def check_proj_size(proj_size: Any, hidden_size: int) -> None:
    if not isinstance(proj_size, int) or isinstance(proj_size, bool) or proj_size < 0:
        raise ValueError(f"proj_size must be a non-negative int; got {proj_size!r}")
    if proj_size >= hidden_size:
        raise ValueError(
            f"proj_size must be smaller than hidden_size ({hidden_size}); got {proj_size}"
        )


def check_floating(name: str, x: Any) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor (e.g. float32); got dtype {x.dtype}. "
            "Integer token ids go through an embedding first."
        )


def check_cell_input(x_t: Any, input_size: int, owner: str) -> bool:
    """Validate a cell's (B, I) or (I,) input; return True when it is unbatched."""
    check_floating("x_t", x_t)
    if x_t.dim() not in (1, 2) or x_t.shape[-1] != input_size:
        raise ValueError(
            f"{owner}: expected x_t of shape (B, {input_size}) or ({input_size},); "
            f"got {tuple(x_t.shape)}"
        )
    return x_t.dim() == 1


def check_state(state: Any, equations: CellEquations, batch_size: int, owner: str) -> Any:
    """Validate a cell state; a bare tensor is accepted for single-field states."""
    state_type = equations.state_type
    if isinstance(state, Tensor) and len(state_type._fields) == 1:
        state = state_type(state)
    if not isinstance(state, tuple) or len(state) != len(state_type._fields):
        raise TypeError(
            f"{owner}: expected state as {state_type.__name__}{state_type._fields}; "
            f"got {type(state).__name__}"
        )
    state = state_type(*state)
    for field, tensor, width in zip(
        state_type._fields, state, equations.state_sizes(), strict=True
    ):
        if not isinstance(tensor, Tensor) or tuple(tensor.shape) != (batch_size, width):
            got = tuple(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
            raise ValueError(
                f"{owner}: expected state.{field} of shape ({batch_size}, {width}); got {got}"
            )
    return state


def check_sequence_input(x: Any, input_size: int, owner: str, batch_first: bool) -> None:
    check_floating("input", x)
    layout = "(B, T, H_in)" if batch_first else "(T, B, H_in)"
    if x.dim() not in (2, 3) or x.shape[-1] != input_size:
        raise ValueError(
            f"{owner}: expected input of shape {layout} or (T, H_in) with H_in={input_size}; "
            f"got {tuple(x.shape)}"
        )
    if x.shape[0 if x.dim() == 2 or not batch_first else 1] == 0:
        raise ValueError(f"{owner}: input has no time steps (T=0); got shape {tuple(x.shape)}")


def check_hidden(
    name: str, hx: Any, expected: tuple[int, ...], owner: str, dtype: torch.dtype
) -> None:
    if not isinstance(hx, Tensor):
        raise TypeError(f"{owner}: {name} must be a torch.Tensor; got {type(hx).__name__}")
    if tuple(hx.shape) != expected:
        raise ValueError(f"{owner}: expected {name} of shape {expected}; got {tuple(hx.shape)}")
    if hx.dtype != dtype:
        raise TypeError(f"{owner}: expected {name} of dtype {dtype} like the input; got {hx.dtype}")


def check_lengths(lengths: Any, batch_size: int, num_steps: int, owner: str) -> Tensor:
    """Validate per-sequence lengths; zero-length sequences are allowed (their output is all
    padding and their final state is the initial state)."""
    if not isinstance(lengths, Tensor):
        raise TypeError(
            f"{owner}: lengths must be a 1-D integer torch.Tensor; got {type(lengths).__name__}"
        )
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise TypeError(f"{owner}: lengths must have an integer dtype; got {lengths.dtype}")
    if lengths.dim() != 1 or lengths.shape[0] != batch_size:
        raise ValueError(
            f"{owner}: expected lengths of shape ({batch_size},), one per sequence; "
            f"got {tuple(lengths.shape)}"
        )
    low, high = int(lengths.min()), int(lengths.max())  # one host sync per batch
    if low < 0 or high > num_steps:
        raise ValueError(
            f"{owner}: lengths must lie in [0, T={num_steps}]; got values from {low} to {high}"
        )
    return lengths.long()
