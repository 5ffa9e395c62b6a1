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

    # isinstance first: an unhashable value (a list, say) must not fail the ``in`` lookup.
    if not isinstance(nonlinearity, str) or nonlinearity not in NONLINEARITIES:
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


def check_floating(
    name: str, x: Any, owner: str | None = None, dtype: torch.dtype | None = None
) -> None:
    """x must be a floating-point tensor; of ``dtype`` (the parameters' dtype) if given."""
    prefix = f"{owner}: " if owner else ""
    if not isinstance(x, Tensor):
        raise TypeError(f"{prefix}{name} must be a torch.Tensor; got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{prefix}{name} must be a floating-point tensor (e.g. float32); got dtype {x.dtype}. "
            "Integer token ids go through an embedding first."
        )
    if dtype is not None and x.dtype != dtype:
        raise TypeError(
            f"{prefix}expected {name} of dtype {dtype} like the parameters; got {x.dtype} "
            f"(convert the input with .to({dtype}) or the module with .to({x.dtype}))"
        )


def check_cell_input(
    x_t: Any, input_size: int, owner: str, dtype: torch.dtype | None = None
) -> bool:
    """Validate a cell's (B, I) or (I,) input; return True when it is unbatched."""
    check_floating("x_t", x_t, owner, dtype)
    if x_t.dim() not in (1, 2) or x_t.shape[-1] != input_size:
        raise ValueError(
            f"{owner}: expected x_t of shape (B, {input_size}) or ({input_size},); "
            f"got {tuple(x_t.shape)}"
        )
    return x_t.dim() == 1


def check_state(
    state: Any,
    equations: CellEquations,
    batch_size: int | None,
    owner: str,
    dtype: torch.dtype | None = None,
) -> Any:
    """Validate a cell state and return it as the cell's ``state_type``.

    Each field must have shape (batch_size, width), or (width,) when ``batch_size`` is None (an
    unbatched x_t), and dtype ``dtype`` if given. A bare tensor is accepted for single-field
    states, any tuple of the right length for the others.
    """
    state_type = equations.state_type
    fields = state_type._fields
    if isinstance(state, Tensor) and len(fields) == 1:
        state = (state,)
    if not isinstance(state, tuple) or len(state) != len(fields):
        got = f"a tuple of {len(state)}" if isinstance(state, tuple) else type(state).__name__
        bare = " (or a bare tensor)" if len(fields) == 1 else ""
        raise TypeError(
            f"{owner}: expected state as {state_type.__name__}({', '.join(fields)}), "
            f"a tuple of {len(fields)} tensor(s){bare}; got {got}"
        )
    batch = () if batch_size is None else (batch_size,)
    for field, tensor, width in zip(fields, state, equations.state_sizes(), strict=True):
        expected = (*batch, width)
        if not isinstance(tensor, Tensor):
            raise TypeError(
                f"{owner}: expected state.{field} as a torch.Tensor of shape {expected}; "
                f"got {type(tensor).__name__}"
            )
        if tuple(tensor.shape) != expected:
            raise ValueError(
                f"{owner}: expected state.{field} of shape {expected}; got {tuple(tensor.shape)}"
            )
        if dtype is not None and tensor.dtype != dtype:
            raise TypeError(
                f"{owner}: expected state.{field} of dtype {dtype} like x_t; got {tensor.dtype}"
            )
    return state_type(*state)


def check_sequence_input(
    x: Any, input_size: int, owner: str, batch_first: bool, dtype: torch.dtype | None = None
) -> None:
    check_floating("input", x, owner, dtype)
    layout = "(B, T, H_in)" if batch_first else "(T, B, H_in)"
    if x.dim() not in (2, 3) or x.shape[-1] != input_size:
        raise ValueError(
            f"{owner}: expected input of shape {layout} or (T, H_in) with H_in={input_size}; "
            f"got {tuple(x.shape)}"
        )
    if x.shape[0 if x.dim() == 2 or not batch_first else 1] == 0:
        raise ValueError(
            f"{owner}: expected input with at least one time step (T >= 1); "
            f"got T=0 in shape {tuple(x.shape)}"
        )


def check_packed_input(
    packed: Any, input_size: int, owner: str, dtype: torch.dtype | None = None
) -> None:
    """Validate the data of a PackedSequence input: (N, H_in) floating point."""
    data = packed.data
    check_floating("input (PackedSequence data)", data, owner, dtype)
    if data.dim() != 2 or data.shape[-1] != input_size:
        raise ValueError(
            f"{owner}: expected PackedSequence data of shape (N, H_in) with H_in={input_size}; "
            f"got {tuple(data.shape)}"
        )


def check_layer_hx(
    hx: Any,
    fields: tuple[str, ...],
    shapes: tuple[tuple[int, ...], ...],
    dtype: torch.dtype | None,
    owner: str,
) -> None:
    """Validate a layer's hx in torch.nn's layout: one tensor for a single-field state, else a
    tuple with one tensor per field (``(h_0, c_0)`` for LSTMs) of the given shapes."""
    if hx is None:
        return
    if len(fields) == 1:
        tensors = (hx,)
    else:
        if not isinstance(hx, tuple) or len(hx) != len(fields):
            got = f"a tuple of {len(hx)}" if isinstance(hx, tuple) else type(hx).__name__
            raise TypeError(
                f"{owner}: expected hx as a tuple ({', '.join(f'{n}_0' for n in fields)}) of "
                f"{len(fields)} tensors; got {got}"
            )
        tensors = hx
    for name, tensor, shape in zip(fields, tensors, shapes, strict=True):
        check_hidden(f"hx ({name}_0)", tensor, shape, owner, dtype)


def check_hidden(
    name: str, hx: Any, expected: tuple[int, ...], owner: str, dtype: torch.dtype | None
) -> None:
    if not isinstance(hx, Tensor):
        raise TypeError(f"{owner}: {name} must be a torch.Tensor; got {type(hx).__name__}")
    if tuple(hx.shape) != expected:
        raise ValueError(f"{owner}: expected {name} of shape {expected}; got {tuple(hx.shape)}")
    if dtype is not None and hx.dtype != dtype:
        raise TypeError(
            f"{owner}: expected {name} of dtype {dtype} like the parameters; got {hx.dtype}"
        )


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
