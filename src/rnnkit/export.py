"""Export a trained model to ONNX or TorchScript, checked against PyTorch before it is written.

The exported graph is the model's forward for its task, with a dynamic batch size B and a
dynamic number of time steps T:

* language model: ``tokens`` (B, T) int64, ``h0`` (L, B, H) [, ``c0`` (L, B, H) for an LSTM]
  -> ``logits`` (B, T, V), ``h_n`` (L, B, H) [, ``c_n``]. Feeding ``h_n``/``c_n`` back as the
  next call's ``h0``/``c0`` streams text chunk by chunk; zeros start a sequence.
* classification: ``tokens`` (B, T) int64, ``lengths`` (B,) int64 -> ``logits`` (B, C).
* labelling: ``tokens`` (B, T) int64, ``lengths`` (B,) int64 -> ``logits`` (B, T, C); padded
  steps hold the head's bias (their recurrent output is zero), as in PyTorch.

Every export is checked before it counts as done: the file is written to a temporary name, run
(ONNX Runtime's CPU provider, or ``torch.jit.load``) on random inputs of several (B, T) shapes
next to the PyTorch model, and moved into place with ``os.replace`` only if no output differs by
more than :data:`TOLERANCE`. Otherwise :class:`ExportCheckError` reports the differences and the
destination is left as it was.

Exporters. ONNX uses the dynamo-based ``torch.onnx.export(..., dynamo=True)``, the default in
torch 2.13. The recurrent stack is emitted as ONNX's native ``LSTM``/``GRU``/``RNN`` operators
through ``torch.onnx.ops.symbolic_multi_out`` (one node per layer, both directions in one node,
padding through ``sequence_lens``), so the graph holds standard operators only and any ONNX
runtime reads it without rnnkit. (rnnkit's C++ kernels are opaque to the exporter and its Python
time loop would unroll into a graph fixed to one T; the legacy TorchScript-based exporter, which
also maps torch.nn's layers to these operators, is deprecated in torch 2.13.)

TorchScript traces the model with its recurrent stack swapped for the equal ``torch.nn`` layer
(same weights; padded batches through ``pack_padded_sequence``, so every length must be >= 1).
TorchScript is deprecated in torch 2.13 (``torch.jit.trace``, ``save`` and ``load`` emit
DeprecationWarning) but still works: this module silences those warnings, and the tracer's
"might not generalize" warnings, while it traces and checks (the check at several shapes is what
tells whether a trace generalises); a deployment that loads the file with ``torch.jit.load``
sees the deprecation warning.

Supported: ``model.cell`` lstm, gru, rnn_tanh or rnn_relu, any number of layers, bidirectional
for classification and labelling. minGRU/minLSTM and ``model.layer_norm`` have no native
operator in either format and raise :class:`ExportError` naming the setting.
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .api import Trained
from .layers import GRU, LSTM, RNN

__all__ = [
    "CHECK_SHAPES",
    "MIN_OPSET",
    "TOLERANCE",
    "ExportCheckError",
    "ExportError",
    "ExportReport",
    "export_onnx",
    "export_torchscript",
]

TOLERANCE = 1e-4  # largest accepted |exported - PyTorch| on any float32 output
CHECK_SHAPES = ((1, 1), (2, 9), (4, 24))  # (B, T) of the random inputs the check runs
EXAMPLE_SHAPE = (2, 5)  # (B, T) the exporters trace with; the axes stay dynamic
MIN_OPSET = 18  # the dynamo-based ONNX exporter's lowest

SUPPORTED_CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")


class ExportError(ValueError):
    """A model this exporter cannot express (the message names the setting)."""


class ExportCheckError(RuntimeError):
    """The exported file's outputs differ from PyTorch's by more than the tolerance."""


@dataclass(frozen=True)
class ExportReport:
    """What was written and how closely it matches PyTorch.

    ``max_abs_diff`` is the largest |exported - PyTorch| over every output and every checked
    (B, T) shape in ``checked_shapes``; ``opset`` is the ONNX opset (None for TorchScript).
    """

    path: Path
    format: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    checked_shapes: tuple[tuple[int, int], ...]
    max_abs_diff: float
    opset: int | None = None


# -- the graph's interface -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Interface:
    """Input and output names of a task's exported forward, in call order."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def _interface(trained: Trained) -> _Interface:
    """The exported names: state fields for a language model, lengths for the others."""
    if trained.task != "language_model":
        return _Interface(("tokens", "lengths"), ("logits",))
    if isinstance(trained.model.rnn, LSTM):
        return _Interface(("tokens", "h0", "c0"), ("logits", "h_n", "c_n"))
    return _Interface(("tokens", "h0"), ("logits", "h_n"))


def _check_supported(trained: Trained, format: str) -> None:
    """Raise :class:`ExportError` naming the config setting ``format`` cannot express."""
    model_config = trained.config.model
    if model_config.cell not in SUPPORTED_CELLS:
        raise ExportError(
            f"model.cell={model_config.cell!r}: {format} export supports "
            f"{', '.join(SUPPORTED_CELLS)} (no native operator for this cell)"
        )
    if model_config.layer_norm:
        raise ExportError(
            f"model.layer_norm=true: {format} export has no operator for layer-normalised "
            "recurrent cells"
        )
    if trained.task == "labelling" and (model_config.crf or model_config.char_embedding_dim):
        setting = "model.crf=true" if model_config.crf else "model.char_embedding_dim > 0"
        raise ExportError(
            f"{setting}: {format} export covers taggers with a softmax output over word "
            "embeddings only (CRF decoding and character features are not exported)"
        )


def _random_inputs(
    trained: Trained, batch: int, steps: int, generator: torch.Generator
) -> tuple[Tensor, ...]:
    """Inputs for :func:`_interface`: random tokens, then lengths in [1, T] (one of them T) or a
    random initial state (L, B, H) per state field."""
    tokens = torch.randint(0, trained.tokenizer.vocab_size, (batch, steps), generator=generator)
    if trained.task != "language_model":
        lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
        lengths[0] = steps
        return tokens, lengths
    rnn = trained.model.rnn
    shape = (rnn.num_layers, batch, rnn.hidden_size)
    fields = 2 if isinstance(rnn, LSTM) else 1
    return (tokens, *(0.5 * torch.randn(shape, generator=generator) for _ in range(fields)))


class _LanguageModelGraph(nn.Module):
    """A language model with flat tensors in and out: tokens (B, T), h0 (L, B, H)
    [, c0 (L, B, H)] -> (logits (B, T, V), h_n (L, B, H) [, c_n (L, B, H)])."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        logits, final = self.model(tokens, state[0] if len(state) == 1 else state)
        return (logits, *(final if isinstance(final, tuple) else (final,)))


def _task_graph(model: nn.Module, task: str) -> nn.Module:
    """The module, in eval mode, whose positional inputs and outputs are :func:`_interface`'s."""
    return (_LanguageModelGraph(model) if task == "language_model" else model).eval()


def _with_recurrent(model: nn.Module, recurrent: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode whose ``rnn`` is ``recurrent``."""
    copied = copy.deepcopy(model).eval()
    copied.rnn = recurrent
    return copied


def _prepare(
    trained: Trained, format: str, stand_in: Callable[[nn.Module], nn.Module]
) -> tuple[_Interface, nn.Module, tuple[Tensor, ...]]:
    """Check the model can be exported; -> (interface, graph to export, example inputs), the
    graph being the task graph with the recurrent stack replaced by ``stand_in(model.rnn)``."""
    _check_supported(trained, format)
    graph = _task_graph(_with_recurrent(trained.model, stand_in(trained.model.rnn)), trained.task)
    example = _random_inputs(trained, *EXAMPLE_SHAPE, torch.Generator().manual_seed(0))
    return _interface(trained), graph, example


# -- the check and the atomic move ---------------------------------------------------------------


def _compare_with_pytorch(
    trained: Trained,
    run_exported: Callable[[tuple[Tensor, ...]], Sequence[Tensor]],
    names: Sequence[str],
) -> float:
    """Max |exported - PyTorch| over :data:`CHECK_SHAPES`; raise above :data:`TOLERANCE`."""
    reference = _task_graph(copy.deepcopy(trained.model).eval(), trained.task)
    generator = torch.Generator().manual_seed(0)
    diffs: list[tuple[str, int, int, float]] = []
    for batch, steps in CHECK_SHAPES:
        inputs = _random_inputs(trained, batch, steps, generator)
        with torch.no_grad():
            expected = reference(*inputs)
        expected = expected if isinstance(expected, tuple) else (expected,)
        actual = run_exported(inputs)
        for name, want, got in zip(names, expected, actual, strict=True):
            if tuple(got.shape) != tuple(want.shape):
                raise ExportCheckError(
                    f"{name} at B={batch}, T={steps}: the exported model gives shape "
                    f"{tuple(got.shape)}, PyTorch {tuple(want.shape)}"
                )
            diffs.append((name, batch, steps, float((got - want).abs().max())))
    worst = max(diff for *_, diff in diffs)
    if not worst <= TOLERANCE:  # also catches NaN
        details = ", ".join(f"{n} at B={b}, T={t}: {d:.3g}" for n, b, t, d in diffs)
        raise ExportCheckError(
            f"the exported model differs from PyTorch: max |diff| {worst:.3g} > {TOLERANCE:g} "
            f"({details})"
        )
    return worst


def _report(
    path: Path,
    format: str,
    interface: _Interface,
    worst: float,
    checked: bool,
    opset: int | None = None,
) -> ExportReport:
    shapes = CHECK_SHAPES if checked else ()
    return ExportReport(path, format, interface.inputs, interface.outputs, shapes, worst, opset)


@contextmanager
def _temporary_beside(path: Path) -> Iterator[Path]:
    """A temporary file name in ``path``'s directory, moved onto ``path`` if the block succeeds
    and removed if it raises."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


# -- ONNX ----------------------------------------------------------------------------------------

# ONNX orders the gate blocks of W, R and B differently from torch.nn: i,o,f,c / z,r,h / -.
_ONNX_GATE_ORDER = {LSTM: (0, 3, 1, 2), GRU: (1, 0, 2), RNN: (0,)}
_ONNX_OP = {LSTM: "LSTM", GRU: "GRU", RNN: "RNN"}


def _onnx_weights(
    layer: LSTM | GRU | RNN, k: int, gates: Sequence[int]
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Layer k's parameters in ONNX's layout: W (D, G*H, I), R (D, G*H, H), B (D, 2*G*H) or
    None without biases; ``gates`` picks torch.nn's gate blocks in ONNX's order."""
    suffixes = ("", "_reverse") if layer.bidirectional else ("",)

    def stacked(name: str) -> Tensor:
        per_direction = []
        for suffix in suffixes:
            blocks = getattr(layer, f"{name}_l{k}{suffix}").detach().chunk(len(gates), dim=0)
            per_direction.append(torch.cat([blocks[g] for g in gates], dim=0))
        return torch.stack(per_direction)

    bias = torch.cat([stacked("bias_ih"), stacked("bias_hh")], dim=-1) if layer.bias else None
    return stacked("weight_ih"), stacked("weight_hh"), bias


class _OnnxRecurrent(nn.Module):
    """Stand-in for an rnnkit LSTM/GRU/RNN inside ``torch.onnx.export``: one native ONNX
    LSTM/GRU/RNN node per layer, padded batches through ``sequence_lens``.

    Same call as the layer: ``(x (B, T, I) if batch_first else (T, B, I), hx=None, *,
    lengths=None) -> (output (B, T, D*H) or (T, B, D*H), h_n (L*D, B, H) [or (h_n, c_n)])``.
    Outside an ONNX export the nodes are placeholders (``torch.onnx.ops.symbolic_multi_out``
    returns zeros in eager mode), so this module is for exporting only.
    """

    def __init__(self, layer: LSTM | GRU | RNN) -> None:
        super().__init__()
        kind = next(k for k in _ONNX_OP if isinstance(layer, k))
        self.op, self.num_states = _ONNX_OP[kind], (2 if kind is LSTM else 1)
        self.num_layers, self.hidden_size = layer.num_layers, layer.hidden_size
        self.directions, self.batch_first = (2 if layer.bidirectional else 1), layer.batch_first
        self.attrs: dict[str, Any] = {
            "hidden_size": layer.hidden_size,
            "direction": "bidirectional" if layer.bidirectional else "forward",
        }
        if kind is GRU:
            self.attrs["linear_before_reset"] = (
                1  # torch.nn's GRU: n = tanh(.. + r * (W_hn h + b_hn))
            )
        if kind is RNN:
            self.attrs["activations"] = [layer.nonlinearity.capitalize()] * self.directions
        for k in range(layer.num_layers):
            W, R, B = _onnx_weights(layer, k, _ONNX_GATE_ORDER[kind])
            self.register_buffer(f"W{k}", W)
            self.register_buffer(f"R{k}", R)
            self.register_buffer(f"B{k}", B)  # None (an omitted input) without biases

    def forward(
        self, x: Tensor, hx: Any = None, *, lengths: Tensor | None = None
    ) -> tuple[Tensor, Any]:
        x = x.transpose(0, 1) if self.batch_first else x  # (T, B, I)
        steps, batch = x.shape[0], x.shape[1]
        sequence_lens = None if lengths is None else lengths.to(torch.int32)
        fields = () if hx is None else ((hx,) if isinstance(hx, Tensor) else tuple(hx))
        D, H = self.directions, self.hidden_size
        finals: list[list[Tensor]] = [[] for _ in range(self.num_states)]
        for k in range(self.num_layers):
            initial = [f[k * D : (k + 1) * D] for f in fields] or [None] * self.num_states
            weights = [getattr(self, f"{name}{k}") for name in ("W", "R", "B")]
            y, *states = torch.onnx.ops.symbolic_multi_out(
                self.op,
                [x, *weights, sequence_lens, *initial],
                self.attrs,
                dtypes=[x.dtype] * (1 + self.num_states),
                shapes=[[steps, D, batch, H]] + [[D, batch, H]] * self.num_states,
            )  # y (T, D, B, H), each state (D, B, H)
            x = y.permute(0, 2, 1, 3).reshape(steps, batch, D * H)  # (T, B, D*H)
            for collected, state in zip(finals, states, strict=True):
                collected.append(state)
        output = x.transpose(0, 1) if self.batch_first else x
        h_n = tuple(torch.cat(collected, dim=0) for collected in finals)  # (L*D, B, H) each
        return output, (h_n[0] if len(h_n) == 1 else h_n)


def _onnx_dynamic_shapes(names: Sequence[str]) -> tuple[Any, ...]:
    """Dynamic batch and time axes, named ``batch`` and ``time``, for ``_task_graph``'s
    positional inputs (a language model's state fields come as one ``*state`` tuple)."""
    batch, time = torch.export.Dim("batch"), torch.export.Dim("time")
    axes = {
        "tokens": {0: batch, 1: time},
        "lengths": {0: batch},
        "h0": {1: batch},
        "c0": {1: batch},
    }
    shapes = tuple(axes[name] for name in names)
    return shapes if "lengths" in names else (shapes[0], shapes[1:])


@contextmanager
def _onnx_exporter_quiet() -> Iterator[None]:
    """Silence what torch 2.13's exporter says that no caller can act on: a deprecation inside
    torch.export, a note that the shared batch axis is named once, and a log line per
    torchvision operator when torchvision is not installed."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore",
                message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                category=FutureWarning,
            )
            warnings.filterwarnings(
                "ignore",
                message=r"# The axis name: \w+ will not be used, since it shares",
                category=UserWarning,
            )
            yield
    finally:
        registration.setLevel(level)


def export_onnx(
    trained: Trained, path: str | Path, *, opset: int | None = None, check: bool = True
) -> ExportReport:
    """Write ``trained``'s forward as an ONNX model at ``path`` (inputs and outputs in the module
    docstring), after checking it with ONNX Runtime's CPU provider against PyTorch.

    ``opset`` defaults to the exporter's (20 in torch 2.13); the exporter writes
    :data:`MIN_OPSET` or later. With ``check=False`` the file is written unchecked and the
    report's ``max_abs_diff`` is NaN.
    """
    import onnxruntime

    if opset is not None and opset < MIN_OPSET:
        raise ExportError(
            f"opset: the ONNX exporter writes opset {MIN_OPSET} or later, got {opset}"
        )
    interface, graph, example = _prepare(trained, "ONNX", _OnnxRecurrent)
    path = Path(path)
    with _temporary_beside(path) as temp:
        with _onnx_exporter_quiet():
            program = torch.onnx.export(
                graph,
                example,
                dynamo=True,
                input_names=list(interface.inputs),
                output_names=list(interface.outputs),
                dynamic_shapes=_onnx_dynamic_shapes(interface.inputs),
                opset_version=opset,
                verbose=False,
            )
        program.save(temp, external_data=False)
        worst = float("nan")
        if check:
            session = onnxruntime.InferenceSession(str(temp), providers=["CPUExecutionProvider"])

            def run(inputs: tuple[Tensor, ...]) -> list[Tensor]:
                feed = {n: t.numpy() for n, t in zip(interface.inputs, inputs, strict=True)}
                return [torch.from_numpy(a) for a in session.run(list(interface.outputs), feed)]

            worst = _compare_with_pytorch(trained, run, interface.outputs)
    opset_written = program.model.opset_imports[""]
    return _report(path, "onnx", interface, worst, check, opset_written)


# -- TorchScript ---------------------------------------------------------------------------------


@contextmanager
def _tracing_quiet() -> Iterator[None]:
    """Silence torch 2.13's TorchScript deprecation warnings (trace, save, load) and the
    tracer's warnings that a Python value may not generalise: the check at several (B, T)
    shapes is what tells whether the trace does."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning
        )
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


class _TorchRecurrent(nn.Module):
    """Stand-in for an rnnkit LSTM/GRU/RNN when tracing: the equal ``torch.nn`` layer (same
    weights), a padded batch going through ``pack_padded_sequence`` (lengths >= 1).

    Same call as the layer: ``(x, hx=None, *, lengths=None) -> (output, h_n)``.
    """

    def __init__(self, layer: LSTM | GRU | RNN) -> None:
        super().__init__()
        options = dict(
            num_layers=layer.num_layers,
            bias=layer.bias,
            batch_first=layer.batch_first,
            bidirectional=layer.bidirectional,
        )
        if isinstance(layer, RNN):
            self.rnn: nn.RNNBase = nn.RNN(
                layer.input_size, layer.hidden_size, nonlinearity=layer.nonlinearity, **options
            )
        else:
            torch_layer = nn.LSTM if isinstance(layer, LSTM) else nn.GRU
            self.rnn = torch_layer(layer.input_size, layer.hidden_size, **options)
        self.rnn.load_state_dict(layer.state_dict())

    def forward(
        self, x: Tensor, hx: Any = None, *, lengths: Tensor | None = None
    ) -> tuple[Tensor, Any]:
        if lengths is None:
            return self.rnn(x, hx)
        first = self.rnn.batch_first
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=first, enforce_sorted=False)
        output, h_n = self.rnn(packed, hx)
        steps = x.shape[1 if first else 0]
        padded, _ = pad_packed_sequence(output, batch_first=first, total_length=steps)
        return padded, h_n


def export_torchscript(trained: Trained, path: str | Path, check: bool = True) -> ExportReport:
    """Write ``trained``'s forward as a traced TorchScript module at ``path`` (inputs and outputs
    in the module docstring; load it with ``torch.jit.load``), after checking the file as loaded
    back against PyTorch. With ``check=False`` it is written unchecked (``max_abs_diff`` NaN).

    TorchScript is deprecated in torch 2.13 but still works; see the module docstring.
    """
    interface, graph, example = _prepare(trained, "TorchScript", _TorchRecurrent)
    path = Path(path)
    with _temporary_beside(path) as temp, _tracing_quiet(), torch.no_grad():
        torch.jit.trace(graph, example, check_trace=False).save(str(temp))
        worst = float("nan")
        if check:
            loaded = torch.jit.load(str(temp))

            def run(inputs: tuple[Tensor, ...]) -> Sequence[Tensor]:
                outputs = loaded(*inputs)
                return outputs if isinstance(outputs, tuple) else (outputs,)

            worst = _compare_with_pytorch(trained, run, interface.outputs)
    return _report(path, "torchscript", interface, worst, check)
