"""What every rnnkit sequence layer shares: flat torch-style parameters, the forward contract
(``hx``, ``lengths``, PackedSequence, batch_first, unbatched input) and streaming.

Parameters are stored flat under torch.nn's names (``weight_ih_l{k}[_reverse]``), so that
torch.nn state_dicts load unchanged; the cell equations of layer k read them through
:meth:`RecurrentLayerMixin.layer_parameters`.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ..cells.base import CellEquations
from ..kernels.stream import stream_step
from ..ops.validation import (
    check_cell_input,
    check_layer_hx,
    check_lengths,
    check_packed_input,
    check_sequence_input,
)
from .dispatch import reference_forced
from .stack import run_stack


class RecurrentLayerMixin:
    """Mixed into an ``nn.Module`` that has ``num_layers``, ``bidirectional``, ``batch_first``,
    ``dropout`` and ``hidden_size``; ``_init_recurrence`` sets up the rest.

    Hidden state ``hx`` and the returned ``h_n`` follow torch.nn: (D*L, B, H_out), plus
    ``c_n`` (D*L, B, H) for LSTMs; they are never batch-first.
    """

    num_layers: int
    bidirectional: bool
    batch_first: bool
    dropout: float
    training: bool

    def _init_recurrence(
        self,
        equations: list[CellEquations],
        recurrent_dropout: float,
        device: torch.device | str | None,
        dtype: torch.dtype | None,
    ) -> None:
        """Keep the per-layer equations; register (and initialise) parameters torch lacks."""
        self._equations = tuple(equations)
        self._state_widths = equations[0].state_sizes()  # width of each hx field
        self.recurrent_dropout = float(recurrent_dropout)
        for k, cell in enumerate(equations):
            bound = 1.0 / math.sqrt(cell.hidden_size)
            for d in range(self._num_directions):
                for name, shape in cell.parameter_shapes().items():
                    full_name = _flat_name(name, k, d)
                    if hasattr(self, full_name):
                        continue
                    weight = torch.empty(shape, device=device, dtype=dtype).uniform_(-bound, bound)
                    self.register_parameter(full_name, nn.Parameter(weight))  # type: ignore[attr-defined]
        self._apply_init_rules()

    @property
    def _num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _apply_init_rules(self) -> None:
        for k, cell in enumerate(getattr(self, "_equations", ())):
            for d in range(self._num_directions):
                cell.apply_init_rules(self.layer_parameters(k, d))

    def layer_parameters(self, layer: int, direction: int) -> dict[str, Tensor]:
        """The parameters of one layer and direction under the cell's names (``weight_ih``, ...)."""
        cell = self._equations[layer]
        return {
            name: getattr(self, _flat_name(name, layer, direction))
            for name in cell.parameter_shapes()
        }

    def _torch_kernel_applies(self, input: Tensor, batch_size: int) -> bool:
        """True when torch.nn's own kernel computes this layer (no rnnkit-only option) and is
        the faster for this input, a batch of batch_size rows."""
        return False

    def _torch_kernel(self, input: Tensor, hx: Any) -> tuple[Tensor, Any]:
        """Batched input (layout as ``batch_first``) -> (output, h_n) from torch.nn's kernel."""
        raise NotImplementedError

    def _torch_kernel_context(self, input: Tensor) -> AbstractContextManager[Any]:
        """The settings torch.nn's kernel runs under for this input (none by default)."""
        return nullcontext()

    def forward(
        self, input: Tensor | PackedSequence, hx: Any = None, *, lengths: Tensor | None = None
    ) -> tuple[Tensor | PackedSequence, Any]:
        """Run the layer over a sequence.

        Args:
            input: (T, B, I), (B, T, I) if ``batch_first``, unbatched (T, I), or a PackedSequence.
            hx: initial state in torch.nn's layout (see the class docstring); zeros if None.
            lengths: (B,) integer tensor of valid lengths of a right-padded batch, any order and
                device, values in [0, T]. Padded steps carry the state and output zeros; the
                reverse direction reads only the valid prefix; ``h_n`` is the state at each
                sequence's last valid step (the initial state for a zero-length sequence).

        Returns:
            (output, h_n) — output (T, B, D*H_out) (batch-first if asked, or a PackedSequence
            for a PackedSequence input), h_n as ``hx``.
        """
        if lengths is None and not reference_forced():
            # one step without autograd: one C++ call, if it fits (else validated below)
            streamed = stream_step(self, input, hx, 1 if self.batch_first else 0)
            if streamed is not None:
                return streamed
        owner = type(self).__name__
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError(
                    f"{owner}: a PackedSequence carries its own lengths; got lengths too"
                )
            dtype = self._parameter_dtype()
            check_packed_input(input, self._equations[0].input_size, owner, dtype)
            self._check_hx(hx, int(input.batch_sizes[0]), dtype)
            if self._torch_kernel_applies(input.data, int(input.batch_sizes[0])):
                with self._torch_kernel_context(input.data):
                    return super().forward(input, hx)  # type: ignore[misc]
            return self._forward_packed(input, hx)
        dtype = self._parameter_dtype()
        check_sequence_input(input, self._equations[0].input_size, owner, self.batch_first, dtype)
        batch = None if input.dim() == 2 else input.shape[0 if self.batch_first else 1]
        self._check_hx(hx, batch, dtype)
        rows = 1 if batch is None else batch
        use_torch_kernel = lengths is None and self._torch_kernel_applies(input, rows)
        if use_torch_kernel and input.device.type != "cpu":
            return super().forward(input, hx)  # type: ignore[misc]  # keeps cuDNN's flattening
        unbatched = batch is None
        batch_dim = 0 if self.batch_first else 1
        if unbatched:
            input = input.unsqueeze(batch_dim)
            hx = None if hx is None else _map_hx(hx, lambda t: t.unsqueeze(1))
        if use_torch_kernel:
            with self._torch_kernel_context(input):
                output, h_n = self._torch_kernel(input, hx)
        else:
            x = input.transpose(0, 1) if self.batch_first else input  # (T, B, I)
            if lengths is not None:
                lengths = check_lengths(lengths, x.shape[1], x.shape[0], owner).to(x.device)
            output, h_n = self._forward_time_major(x, hx, lengths)
            output = output.transpose(0, 1) if self.batch_first else output
        if unbatched:
            return output.squeeze(batch_dim), _map_hx(h_n, lambda t: t.squeeze(1))
        return output, h_n

    def step(self, x_t: Tensor, hx: Any = None) -> tuple[Tensor, Any]:
        """Advance a unidirectional layer by one time step: x_t (B, I) -> (y_t (B, H_out), h_n).

        Streaming is ``forward`` on a chunk with the carried ``hx``; running chunks one after
        another gives the same outputs and state as the whole sequence at once. Without autograd,
        LSTM and GRU steps run as one C++ call with weights laid out once.
        """
        if not reference_forced():
            streamed = stream_step(self, x_t, hx)  # the whole step in one C++ call, if it fits
            if streamed is not None:
                return streamed
        if self.bidirectional:
            raise ValueError(
                f"{type(self).__name__}.step: a bidirectional layer needs the whole sequence; "
                "got bidirectional=True"
            )
        dtype = self._parameter_dtype()
        check_cell_input(
            x_t, self._equations[0].input_size, f"{type(self).__name__}.step", dtype
        )  # fmt: skip
        time_dim = 1 if self.batch_first else 0
        chunk = x_t.unsqueeze(time_dim if x_t.dim() == 2 else 0)
        y, hx = self(chunk, hx)
        return y.squeeze(time_dim if x_t.dim() == 2 else 0), hx

    # -- internals -------------------------------------------------------------------------

    def _forward_time_major(self, x: Tensor, hx: Any, lengths: Tensor | None) -> tuple[Tensor, Any]:
        """x (T, B, I) -> (output (T, B, D*H_out), h_n in torch layout)."""
        states = self._split_hx(hx, x)
        output, finals = run_stack(
            self._equations,
            self.layer_parameters,
            x,
            states,
            lengths=lengths,
            dropout=self.dropout,
            recurrent_dropout=self.recurrent_dropout,
            training=self.training,
            use_fast=not reference_forced(),
        )
        return output, self._join_states(finals)

    def _forward_packed(self, packed: PackedSequence, hx: Any) -> tuple[PackedSequence, Any]:
        padded, lengths = pad_packed_sequence(packed)  # (T, B, I), original batch order
        output, h_n = self._forward_time_major(padded, hx, lengths.to(padded.device))
        order = packed.sorted_indices
        if order is not None:
            output, lengths = output.index_select(1, order), lengths.index_select(0, order.cpu())
        data = pack_padded_sequence(output, lengths, enforce_sorted=True).data
        return PackedSequence(
            data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
        ), h_n

    def _state_shapes(self, batch_size: int | None) -> tuple[tuple[int, ...], ...]:
        """Expected shape of each hx field: (D*L, B, width), or (D*L, width) when unbatched."""
        rows = self.num_layers * self._num_directions
        batch = () if batch_size is None else (batch_size,)
        return tuple((rows, *batch, width) for width in self._state_widths)

    def _parameter_dtype(self) -> torch.dtype | None:
        """The dtype input and hx must have; None under autocast, which casts inside the ops."""
        weight = self._parameters["weight_ih_l0"]  # type: ignore[attr-defined]
        kind = weight.device.type
        autocast = torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind)
        return None if autocast else weight.dtype

    def _check_hx(self, hx: Any, batch_size: int | None, dtype: torch.dtype | None) -> None:
        """Check hx against (D*L, B, width) per field, or (D*L, width) if batch_size is None."""
        if hx is None:
            return
        fields = self._equations[0].state_type._fields
        shapes = self._state_shapes(batch_size)
        check_layer_hx(hx, fields, shapes, dtype, type(self).__name__)

    def _split_hx(self, hx: Any, x: Tensor) -> list[list[Any]]:
        """torch-layout hx -> initial state per [layer][direction] (zeros if hx is None)."""
        D = self._num_directions
        cells = self._equations
        if hx is None:
            return [
                [
                    cells[k].initial_state(x.shape[1], device=x.device, dtype=x.dtype)
                    for _ in range(D)
                ]
                for k in range(self.num_layers)
            ]
        fields = (hx,) if isinstance(hx, Tensor) else tuple(hx)
        state_type = cells[0].state_type
        return [
            [state_type(*(f[k * D + d] for f in fields)) for d in range(D)]
            for k in range(self.num_layers)
        ]

    def _join_states(self, finals: list[list[Any]]) -> Any:
        """Final states per [layer][direction] -> torch layout (a tensor, or a tuple for LSTM)."""
        flat = [state for layer in finals for state in layer]
        fields = tuple(torch.stack(list(column)) for column in zip(*flat, strict=True))
        return fields[0] if len(fields) == 1 else fields


def _flat_name(name: str, layer: int, direction: int) -> str:
    return f"{name}_l{layer}{'_reverse' if direction == 1 else ''}"


def _map_hx(hx: Any, fn: Any) -> Any:
    return fn(hx) if isinstance(hx, Tensor) else tuple(fn(t) for t in hx)
