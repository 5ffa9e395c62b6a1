"""``rnnkit.RNN``, ``rnnkit.LSTM``, ``rnnkit.GRU``: drop-in replacements for the torch.nn layers.

Each subclasses its torch.nn counterpart, so constructor signature, defaults, parameter names,
initialisation (same draws under the same seed), state_dict layout and ``isinstance`` checks are
torch.nn's. Whenever no rnnkit-only option is active, ``forward`` runs torch.nn's fused kernel or
rnnkit's, whichever was measured faster for the call (``_fused_is_faster``); otherwise rnnkit's
time loop (:mod:`rnnkit.layers.recurrence`) runs the same equations.

rnnkit-only, keyword-only options: ``forward(..., lengths=...)`` for padded batches,
``recurrent_dropout`` (variational), ``nonlinearity="sigmoid"`` (RNN), ``peephole``,
``layer_norm`` and ``forget_bias`` (LSTM), ``layer_norm`` (GRU).

Shapes (letter legend in :mod:`rnnkit.cells.base`): input (T, B, I) or (B, T, I) with
``batch_first``; output (T, B, D*H_out); h_n (D*L, B, H_out); c_n (D*L, B, H). H_out is
``proj_size`` for a projected LSTM, else ``hidden_size``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import torch
from torch import _VF, Tensor, nn

from ..cells.elman import ElmanEquations
from ..cells.gru import GRUEquations
from ..cells.lstm import LSTMEquations
from ..kernels import fused_available
from ..kernels import lstm as lstm_kernel
from ..kernels.gemm import panels_available
from ..kernels.heap import glibc_default_heap
from ..ops.validation import (
    check_nonlinearity,
    check_num_layers,
    check_probability,
    check_proj_size,
    check_sizes,
)
from .base import RecurrentLayerMixin
from .dispatch import reference_forced

Device = torch.device | str | None


def _check_layer_args(
    input_size: int, hidden_size: int, num_layers: int, dropout: float, recurrent_dropout: float
) -> None:
    check_sizes(input_size, hidden_size)
    check_num_layers(num_layers)
    check_probability("dropout", dropout)
    check_probability("recurrent_dropout", recurrent_dropout)


def onednn_lacks_autocast_lstm(input: Tensor) -> bool:
    """Whether torch.nn's LSTM would fail on this input for want of a oneDNN kernel: under CPU
    autocast to a lower precision it asks oneDNN for an LSTM in that dtype, which oneDNN has
    only where the CPU has the instructions for it; elsewhere (an AVX2 CPU, torch 2.13) the
    call raises "could not create a primitive descriptor for the LSTM forward propagation
    primitive". LSTMs whose parameters are in those dtypes, and torch.nn's RNN and GRU, run.
    Found out once per dtype by trying a one-unit LSTM (:func:`_torch_lstm_autocasts`)."""
    if input.device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
        return False
    return not _torch_lstm_autocasts(torch.get_autocast_dtype("cpu"))


@functools.cache
def _torch_lstm_autocasts(dtype: torch.dtype) -> bool:
    """torch.nn's LSTM runs on the CPU under autocast to dtype (its oneDNN kernel exists)."""
    try:
        with torch.autocast("cpu", dtype=dtype), torch.no_grad():
            nn.LSTM(1, 1)(torch.zeros(1, 1, 1))
    except RuntimeError:
        return False
    return True


@contextmanager
def _onednn_disabled():
    """torch's ATen kernels instead of oneDNN's inside the block."""
    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = enabled


class _TorchCompatible(RecurrentLayerMixin):
    """The rule for handing a forward pass to torch.nn's own kernel."""

    def _rnnkit_only_options(self) -> bool:
        """True when the layer uses an option torch.nn lacks (fixed at construction)."""
        raise NotImplementedError

    # Where rnnkit's fused C++ kernel beats torch.nn's on plain configurations ("train": with
    # autograd, "infer": without), as measured by benchmarks/bench_speed.py; set per class.
    fused_beats_torch: tuple[str, ...] = ()

    def _fused_is_faster(self, mode: str, input: Tensor, batch_size: int) -> bool:
        """Whether rnnkit's fused kernel beats torch.nn's for a plain call in ``mode`` on this
        input (a batch of batch_size rows)."""
        return mode in self.fused_beats_torch

    @classmethod
    def kernel_choice(cls) -> str:
        """Which kernel plain calls of this layer run, for :func:`rnnkit.backend`."""
        ours = [mode for mode in ("train", "infer") if mode in cls.fused_beats_torch]
        theirs = [mode for mode in ("train", "infer") if mode not in ours]
        parts = [f"rnnkit's kernel to {' and '.join(ours)}"] if ours else []
        parts += [f"torch.nn's to {' and '.join(theirs)}"] if theirs else []
        return ", ".join(parts)

    def _torch_kernel_applies(self, input: Tensor, batch_size: int) -> bool:
        dropping_recurrent = self.training and self.recurrent_dropout > 0
        if reference_forced() or dropping_recurrent or self._rnnkit_only_options():
            return False
        mode = "train" if torch.is_grad_enabled() else "infer"
        faster = self._fused_is_faster(mode, input, batch_size)
        return not (faster and fused_available(self._equations[0], input))

    def _torch_kernel(self, input: Tensor, hx: Any) -> tuple[Tensor, Any]:
        # The call torch.nn's forward makes, without its per-call Python bookkeeping (hx is
        # already checked); weights are read by name so functional_call and weight swaps work.
        if hx is None:
            batch = input.shape[0 if self.batch_first else 1]
            fields = tuple(input.new_zeros(shape) for shape in self._state_shapes(batch))
            hx = fields[0] if len(fields) == 1 else fields
        params = self._parameters  # read per call: functional_call swaps entries here
        weights = [params[name] for name in self._flat_weights_names]
        result = self._kernel()(
            input, hx, weights, self.bias, self.num_layers, float(self.dropout), self.training,
            self.bidirectional, self.batch_first,
        )  # fmt: skip
        return result[0], (result[1] if len(result) == 2 else tuple(result[1:]))

    def _kernel(self) -> Callable[..., Any]:
        """torch's fused op for this layer (``torch._VF.lstm`` and friends)."""
        raise NotImplementedError

    def _layer_input_size(self, k: int, input_size: int, output_size: int) -> int:
        return input_size if k == 0 else output_size * self._num_directions

    def extra_repr(self) -> str:
        s = super().extra_repr()  # type: ignore[misc]
        if self.recurrent_dropout:
            s += f", recurrent_dropout={self.recurrent_dropout}"
        return s


class RNN(_TorchCompatible, nn.RNN):
    """Elman RNN layer, drop-in for ``torch.nn.RNN``: h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)

    Extras: ``nonlinearity="sigmoid"``, keyword-only ``recurrent_dropout``, and
    ``forward(input, hx=None, *, lengths=None)``.
    """

    fused_beats_torch = ("train", "infer")  # measured: benchmarks/bench_speed.py

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Device = None,
        dtype: torch.dtype | None = None,
        *,
        recurrent_dropout: float = 0.0,
    ) -> None:
        _check_layer_args(input_size, hidden_size, num_layers, dropout, recurrent_dropout)
        check_nonlinearity(nonlinearity)
        torch_nonlinearity = nonlinearity if nonlinearity in ("tanh", "relu") else "tanh"
        nn.RNN.__init__(
            self, input_size, hidden_size, num_layers, nonlinearity=torch_nonlinearity, bias=bias,
            batch_first=batch_first, dropout=dropout, bidirectional=bidirectional, device=device,
            dtype=dtype,
        )  # fmt: skip
        self.nonlinearity = nonlinearity
        equations = [
            ElmanEquations(self._layer_input_size(k, input_size, hidden_size), hidden_size, bias,
                           nonlinearity)
            for k in range(num_layers)
        ]  # fmt: skip
        self._init_recurrence(equations, recurrent_dropout, device, dtype)

    def _rnnkit_only_options(self) -> bool:
        return self.nonlinearity == "sigmoid"

    def _kernel(self) -> Callable[..., Any]:
        return _VF.rnn_relu if self.nonlinearity == "relu" else _VF.rnn_tanh

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s + (f", nonlinearity={self.nonlinearity!r}" if self.nonlinearity != "tanh" else "")


class LSTM(_TorchCompatible, nn.LSTM):
    """LSTM layer, drop-in for ``torch.nn.LSTM`` (gates i, f, g, o; ``proj_size``).

    Extras (keyword-only): ``peephole`` (Gers & Schmidhuber), ``layer_norm`` (Ba et al.),
    ``forget_bias`` (initial forget-gate bias), ``recurrent_dropout``, and
    ``forward(input, hx=None, *, lengths=None)``. Equations in :mod:`rnnkit.cells.lstm`.
    """

    # Plain LSTM training runs rnnkit's kernel from TRAIN_MIN_ROWS rows, where it is faster:
    # with glibc's default heap (rnnkit.kernels.heap; torch.nn's pays page faults for fresh
    # buffers on every call) 0.98-1.84x torch.nn's; on a heap that keeps freed memory where
    # rnnkit's panel kernel is built and each layer's W_ih and W_hh fit the loops'
    # LOOP_WEIGHT_BYTES (rnnkit.kernels.lstm: 8 L2 caches), 0.99-1.24x (AVX-512, Zen 5, 8 MiB)
    # and 0.99-1.37x (AVX2, Zen 3, 4 MiB). Beyond those weights, there, 1.00-1.04x and
    # 0.91-1.02x; at 1 and 2 rows 0.80-0.99x and 0.89-0.91x (python -m
    # benchmarks.sweep_kernels --heap default|warm). Without the panel kernel torch.nn's stays
    # on that heap: rnnkit's loops would run oneDNN per step, 0.48-1.11x (AVX2 emulated on Zen
    # 5, before the AVX2 panel kernel existed).
    # An input that requires a gradient (an embedding's output, say) changes this: torch.nn's
    # LSTM computes the input's gradient whether or not it is needed, rnnkit's kernel only when
    # it is, one more GEMM. Then on glibc's default heap rnnkit's was 1.04-1.51x from 32 rows
    # (0.93-0.98x at H = 1024) and 0.79-0.96x below; on a heap that keeps freed memory
    # 0.76-0.98x at H >= 256, 1.06-1.18x only at H <= 128 (python -m benchmarks.sweep_kernels
    # --input-grad --heap default|warm; AVX2, Zen 3). So with such an input rnnkit's kernel
    # trains from TRAIN_MIN_ROWS_INPUT_GRAD rows on the default heap, and torch.nn's elsewhere.
    TRAIN_MIN_ROWS = 4
    TRAIN_MIN_ROWS_INPUT_GRAD = 32
    default_heap = glibc_default_heap()  # read once, at import
    # A projected LSTM (proj_size) has no oneDNN kernel in torch.nn, whose general one runs
    # instead. Over 21 shapes, in float32 on an AVX-512 build, rnnkit's trained 2.2-6.8x as fast
    # and inferred 1.6-5.1x as fast on both heaps (1.2-4.3x and 1.3-3.6x with AVX2). Without a
    # panel kernel (float64, or a build with neither) it trained 0.83-2.2x as fast, mostly
    # faster, but inferred at 0.40-1.7x, mostly slower (python -m
    # benchmarks.sweep_kernels --kind lstmp --mode train|infer [--dtype float64];
    # benchmarks/results/sweep-lstmp.txt). On short sequences a call's fixed cost decides
    # (--short --heap warm|default, B = 1, 8, 32): rnnkit's trained faster from 8 steps
    # (1.37-1.99x warm, 0.93-1.84x default; below 4 steps 0.23-0.98x but 1.21x at B=32, T=2
    # warm) and inferred faster from 16 tokens (1.03-3.01x; below, 0.50-1.03x). One-step calls
    # without autograd run the C++ streaming step before this rule is asked (kernels/stream.py).
    PROJ_TRAIN_MIN_STEPS = 8
    PROJ_INFER_MIN_TOKENS = 16

    def _fused_is_faster(self, mode: str, input: Tensor, batch_size: int) -> bool:
        if mode in self.fused_beats_torch:
            return True
        if self.proj_size:
            tokens = input.numel() // input.shape[-1]  # T * B (a PackedSequence's: N)
            if mode == "train":
                return tokens >= self.PROJ_TRAIN_MIN_STEPS * batch_size
            return panels_available(input) and tokens >= self.PROJ_INFER_MIN_TOKENS
        if mode != "train" or batch_size < self.TRAIN_MIN_ROWS:
            return False
        if input.requires_grad:
            return self.default_heap and batch_size >= self.TRAIN_MIN_ROWS_INPUT_GRAD
        return self.default_heap or (panels_available(input) and self._loop_weights_fit())

    def _torch_kernel_context(self, input: Tensor) -> AbstractContextManager[Any]:
        # torch.nn's LSTM under autocast on a CPU oneDNN has no such LSTM for: its ATen kernel.
        return _onednn_disabled() if onednn_lacks_autocast_lstm(input) else nullcontext()

    def _loop_weights_fit(self) -> bool:
        """Whether every layer's W_ih and W_hh (one direction) fit ``LOOP_WEIGHT_BYTES``, as the
        loops count them (:func:`rnnkit.kernels.lstm.fits_loop`)."""
        return all(
            lstm_kernel.fits_loop(p["weight_hh"], p["weight_ih"])
            for p in (self.layer_parameters(k, 0) for k in range(self.num_layers))
        )

    @classmethod
    def kernel_choice(cls) -> str:
        projected = (
            f"with proj_size, rnnkit's kernel to train from {cls.PROJ_TRAIN_MIN_STEPS} steps, and "
            f"to infer from {cls.PROJ_INFER_MIN_TOKENS} tokens where the panel kernel is built "
            "(float32)"
        )
        if cls.default_heap:
            why = "glibc's default heap"
        elif panels_available(torch.zeros(1)):
            why = (
                "a heap that keeps freed memory, rnnkit's panel kernel built; each layer's "
                f"W_ih and W_hh within {lstm_kernel.LOOP_WEIGHT_BYTES >> 20} MiB"
            )
        else:
            return (
                "torch.nn's to train and infer (a heap that keeps freed memory, no panel "
                f"kernel); {projected}"
            )
        input_grad = (
            f"from {cls.TRAIN_MIN_ROWS_INPUT_GRAD} rows" if cls.default_heap else "torch.nn's"
        )
        return (
            f"rnnkit's kernel to train from {cls.TRAIN_MIN_ROWS} rows ({why}), else torch.nn's "
            f"(an input that requires a gradient: {input_grad}); torch.nn's to infer; {projected}"
        )

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Device = None,
        dtype: torch.dtype | None = None,
        *,
        peephole: bool = False,
        layer_norm: bool = False,
        forget_bias: float | None = None,
        recurrent_dropout: float = 0.0,
    ) -> None:
        _check_layer_args(input_size, hidden_size, num_layers, dropout, recurrent_dropout)
        check_proj_size(proj_size, hidden_size)
        nn.LSTM.__init__(
            self, input_size, hidden_size, num_layers, bias=bias, batch_first=batch_first,
            dropout=dropout, bidirectional=bidirectional, proj_size=proj_size, device=device,
            dtype=dtype,
        )  # fmt: skip
        self.peephole, self.layer_norm, self.forget_bias = peephole, layer_norm, forget_bias
        output_size = proj_size or hidden_size
        equations = [
            LSTMEquations(self._layer_input_size(k, input_size, output_size), hidden_size, bias,
                          proj_size, peephole, layer_norm, forget_bias)
            for k in range(num_layers)
        ]  # fmt: skip
        self._init_recurrence(equations, recurrent_dropout, device, dtype)

    def _rnnkit_only_options(self) -> bool:
        return self.peephole or self.layer_norm

    def _kernel(self) -> Callable[..., Any]:
        return _VF.lstm

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self._apply_init_rules()

    def extra_repr(self) -> str:
        s = super().extra_repr()
        for name in ("peephole", "layer_norm"):
            if getattr(self, name):
                s += f", {name}=True"
        if self.forget_bias is not None:
            s += f", forget_bias={self.forget_bias}"
        return s


class GRU(_TorchCompatible, nn.GRU):
    """GRU layer, drop-in for ``torch.nn.GRU`` (gates r, z, n; reset applied to W_hn h + b_hn).

    Extras (keyword-only): ``layer_norm``, ``recurrent_dropout``, and
    ``forward(input, hx=None, *, lengths=None)``. Equations in :mod:`rnnkit.cells.gru`.
    """

    fused_beats_torch = ("train", "infer")  # measured: benchmarks/bench_speed.py

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Device = None,
        dtype: torch.dtype | None = None,
        *,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
    ) -> None:
        _check_layer_args(input_size, hidden_size, num_layers, dropout, recurrent_dropout)
        nn.GRU.__init__(
            self, input_size, hidden_size, num_layers, bias=bias, batch_first=batch_first,
            dropout=dropout, bidirectional=bidirectional, device=device, dtype=dtype,
        )  # fmt: skip
        self.layer_norm = layer_norm
        equations = [
            GRUEquations(self._layer_input_size(k, input_size, hidden_size), hidden_size, bias,
                         layer_norm)
            for k in range(num_layers)
        ]  # fmt: skip
        self._init_recurrence(equations, recurrent_dropout, device, dtype)

    def _rnnkit_only_options(self) -> bool:
        return self.layer_norm

    def _kernel(self) -> Callable[..., Any]:
        return _VF.gru

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self._apply_init_rules()

    def extra_repr(self) -> str:
        return super().extra_repr() + (", layer_norm=True" if self.layer_norm else "")
