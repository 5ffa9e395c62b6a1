"""Speed suite: rnnkit against torch.nn (and JAX/Keras when installed), one table per run.

    python -m benchmarks.bench_speed                     # the whole suite (several minutes)
    python -m benchmarks.bench_speed --quick             # tiny shapes, 1 thread: a smoke test
    python -m benchmarks.bench_speed --cases lstm,gru --repeats 9 --markdown
    python -m benchmarks.bench_speed --list-cases

Cases (``--list-cases``): LSTM, bidirectional LSTM (config a only), GRU, RNN tanh and relu,
train and inference, at config a (B=32 T=128 I=128 H=256, 1 layer) and b (B=64 T=256 I=256
H=512, 2 layers); the rnnkit-only LSTM options peephole, layer_norm and recurrent_dropout
against plain nn.LSTM; a padded batch with ``lengths=`` against the same batch at full length
(and torch.nn on it packed); streaming, one call per step at B=1 (with, for reference, the step's
matrix-vector products alone as one ``torch.mv`` per step); minGRU/minLSTM against
nn.GRU at T=256 and T=4096, with their error against a float64 step loop; and the peak RSS
increase of a config-b LSTM training step.

A plain ``rnnkit.LSTM`` trains with rnnkit's kernel from 4 rows on glibc's default heap, and on
a heap that keeps freed memory (``--heap warm``; ``rnnkit.kernels.heap``) only where rnnkit's
panel kernel is built and each layer's weights fit ``LOOP_WEIGHT_BYTES``, so the LSTM training
cases add a row "rnnkit C++ kernel": the same
layer always running rnnkit's own kernel, the one its variants and padded batches run.

Every implementation of a case is measured in this one process, interleaved: after the warmup
rounds, each round runs every implementation of the case once, and the order reverses between
rounds; a row reports the median round. Peak memory is the exception: each of those rows runs in
a fresh subprocess, since a process's peak resident set size only ever grows.

Columns: tokens/s counts T*B positions per call (only the valid ones for a padded batch, one
per step when streaming); GFLOP/s counts GEMM flops only (formulas in :func:`gemm_flops`);
% peak = GFLOP/s / the measured fp32 GEMM peak (the best of torch.mm and oneDNN, fastest round,
measured before and after the cases); "vs torch.nn" = the torch.nn row's cost / this row's cost
in the same case (time; peak RSS increase for memory rows), so above 1 is better than torch.nn.
The header also says how many cores other processes kept busy during the run (from /proc/stat)
and warns when the machine was not idle.

The heap: with glibc's defaults (``--heap default``), buffers above its mmap threshold (at most
32 MiB, grown as large blocks are freed) come back as fresh pages on every call, and the top of
the heap is returned to the system when it frees; what a call pays in page faults then depends on
the process's history. torch.nn's LSTM training allocates such buffers on every call; rnnkit's
kernels reuse theirs. ``--heap warm`` reruns the suite with glibc told to keep freed memory
(``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_``, set before the process starts), the
steady state of a caching allocator: no page faults for either side. The header says which.

Optional rows: a JAX ``lax.scan`` LSTM train step (jit of value_and_grad) and a Keras 3
``keras.layers.LSTM`` train step join the LSTM train case of config a when those packages import;
they are never required. XLA and Keras' backends pick their own thread counts.
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import importlib
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit
from benchmarks.common import WARM_HEAP, OtherLoad, cpu_model, interleaved_times, rerun_on_heap


@dataclass(frozen=True)
class Shape:
    B: int
    T: int
    I: int
    H: int
    L: int = 1

    def describe(self) -> str:
        return f"B={self.B} T={self.T} I={self.I} H={self.H} L={self.L}"


CONFIGS = {
    "a": Shape(B=32, T=128, I=128, H=256, L=1),
    "b": Shape(B=64, T=256, I=256, H=512, L=2),
}
QUICK_A = Shape(B=8, T=32, I=128, H=256, L=1)  # --quick: config a at reduced T and B
STREAM_STEPS, STREAM_SIZE = 200, 256
MIN_RNN_B, MIN_RNN_H, MIN_RNN_T = 8, 256, (256, 4096)
QUICK_MIN_RNN_T = (32,)
GEMM_SHAPE = (1024, 512, 2048)  # M, K, N: an input-projection GEMM of an LSTM (T*B, I, 4H)
DEFAULT_REPEATS, QUICK_REPEATS = 7, 2
DEFAULT_WARMUP, QUICK_WARMUP = 2, 1
OTHER_LOAD_WARNING = 0.25  # cores busy with other processes above which the header warns
MEMORY_RUNS = 3  # subprocesses per implementation for the peak-memory rows (median)

GATES = {"lstm": 4, "gru": 3, "rnn": 1, "mingru": 2, "minlstm": 3}


def gemm_flops(
    kind: str,
    tokens: int,
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    bidirectional: bool = False,
    proj_size: int = 0,
    train: bool = False,
    input_grad: bool = False,
) -> int:
    """GEMM flops of one call, counted analytically; elementwise work is not counted.

    With N = T*B tokens (the valid ones for a padded batch), per layer l and direction:

        forward_l = 2 * N * G * H * (I_l + H_rec)   [+ 2 * N * H * P with an LSTM projection]

    G = gates: 4 LSTM, 3 GRU, 1 RNN. I_l = input width of layer l: I for l = 0, D * H_out above
    (D = 2 directions if bidirectional, H_out = P if projected, else H). H_rec = width of the
    state fed back through W_hh: P if projected, else H.

    minGRU (G = 2) and minLSTM (G = 3) have no recurrent GEMM: forward_l = 2 * N * G * H * I_l.

    The total sums over layers and directions. Training adds the backward GEMMs: the weight
    gradients and the gradients of each layer's input and state (2 x forward), less the input
    gradient of layer 0, 2 * N * G * H * I per direction, unless the input requires a gradient
    (input_grad). torch.nn's LSTM (oneDNN) computes that one even when nothing needs it; a
    count of the work a step needs leaves it out.
    """
    G = GATES[kind]
    D = 2 if bidirectional else 1
    out = proj_size or hidden_size
    recurrent = 0 if kind in ("mingru", "minlstm") else out
    total = 0
    for layer in range(num_layers):
        layer_in = input_size if layer == 0 else D * out
        per_direction = 2 * tokens * G * hidden_size * (layer_in + recurrent)
        if proj_size:
            per_direction += 2 * tokens * hidden_size * proj_size
        total += D * per_direction
    if not train:
        return total
    unneeded = 0 if input_grad else D * 2 * tokens * G * hidden_size * input_size
    return 3 * total - unneeded


# -- what a case is ---------------------------------------------------------------------------


@dataclass
class Impl:
    """One implementation of a case: a callable timed per round, and the work it does."""

    name: str
    run: Callable[[], object]
    tokens: int
    flops: int
    reference: bool = False  # the torch.nn row the case's ratios are taken against
    steps: int = 0  # streaming: calls per run (reports microseconds per step)
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Case:
    id: str
    configuration: str
    build: Callable[[], list[Impl]]
    finish: Callable[[dict[str, float], list[Impl]], None] | None = None
    memory_shape: Shape | None = None  # peak-RSS rows from fresh subprocesses, not timed
    memory_kind: str = "lstm"  # the layer of the peak-RSS rows: "lstm" or "gru"


def config_shapes(quick: bool) -> dict[str, tuple[int, int, int, int, int]]:
    """(B, T, I, H, L) of configs a and b by name, or of one tiny shape "quick" (for smoke
    tests of the A/B scripts)."""
    if quick:
        return {"quick": (2, 5, 6, 8, 2)}
    return {name: (s.B, s.T, s.I, s.H, s.L) for name, s in CONFIGS.items()}


def train_step(layer: nn.Module, x: torch.Tensor, **kwargs: Any) -> Callable[[], None]:
    """A training step of layer on x; x's gradient, if it requires one, is dropped first."""

    def run() -> None:
        layer.zero_grad(set_to_none=True)
        x.grad = None
        y, _ = layer(x, **kwargs)
        y.sum().backward()

    return run


def inference(layer: nn.Module, x: torch.Tensor, **kwargs: Any) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            layer(x, **kwargs)

    return run


LAYER_KINDS = {
    # case kind -> (flop kind, torch.nn class, rnnkit class, constructor keywords; a callable
    # keyword's value is computed from the Shape)
    "lstm": ("lstm", nn.LSTM, rnnkit.LSTM, {}),
    "bilstm": ("lstm", nn.LSTM, rnnkit.LSTM, {"bidirectional": True}),
    "lstmp": ("lstm", nn.LSTM, rnnkit.LSTM, {"proj_size": lambda s: s.H // 2}),
    "gru": ("gru", nn.GRU, rnnkit.GRU, {}),
    "rnn_tanh": ("rnn", nn.RNN, rnnkit.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": ("rnn", nn.RNN, rnnkit.RNN, {"nonlinearity": "relu"}),
}


def layer_kwargs(kind: str, s: Shape) -> dict[str, Any]:
    """The constructor keywords of a case kind at shape s."""
    kwargs = LAYER_KINDS[kind][3]
    return {k: v(s) if callable(v) else v for k, v in kwargs.items()}


def layer_pair(
    kind: str, s: Shape, bidirectional: bool = False, dtype: torch.dtype = torch.float32,
    **ours_options: Any,
) -> tuple[nn.Module, nn.Module]:  # fmt: skip
    """(rnnkit layer, torch.nn layer) of one shape with the same weights."""
    _, torch_cls, ours_cls, _ = LAYER_KINDS[kind]
    kwargs = layer_kwargs(kind, s) | ({"bidirectional": True} if bidirectional else {})
    torch.manual_seed(0)
    theirs = torch_cls(s.I, s.H, s.L, **kwargs, dtype=dtype)
    ours = ours_cls(s.I, s.H, s.L, **kwargs, **ours_options, dtype=dtype)
    ours.load_state_dict(theirs.state_dict(), strict=not ours_options)
    return ours, theirs


OWN_KERNEL = "rnnkit C++ kernel"  # an LSTM made to run rnnkit's kernel where it runs torch's


def own_kernel(layer: nn.Module, modes: tuple[str, ...] = ("train",)) -> nn.Module:
    """A copy of an rnnkit layer that runs rnnkit's C++ kernel in ``modes`` ("train", "infer")
    even where the layer's dispatch picks torch.nn's (plain LSTM training)."""
    own = copy.deepcopy(layer)
    own.fused_beats_torch = modes
    return own


def layer_case(
    kind: str, config: str, s: Shape, mode: str, extras: bool = False, input_grad: bool = False
) -> Case:
    """A layer of one kind against torch.nn's; with input_grad (training) the input requires a
    gradient, as an embedding's output does, and the case id is ``{kind}_input_grad-...``."""
    flop_kind = LAYER_KINDS[kind][0]
    kwargs = layer_kwargs(kind, s)
    train = mode == "train"
    bidirectional = bool(kwargs.get("bidirectional"))
    proj = kwargs.get("proj_size", 0)
    tokens = s.T * s.B
    flops = gemm_flops(
        flop_kind, tokens, s.I, s.H, s.L, bidirectional, proj, train=train, input_grad=input_grad
    )
    label = f"{config} {s.describe()}{f' P={proj}' if proj else ''}"
    label += f"{' bidir' if bidirectional else ''} {mode}"
    label += ", input requires grad" if input_grad else ""

    def build() -> list[Impl]:
        ours, theirs = layer_pair(kind, s)
        if not train:
            ours.eval()
            theirs.eval()
        x = torch.randn(s.T, s.B, s.I, requires_grad=input_grad)
        make = train_step if train else inference
        impls = [
            Impl("rnnkit", make(ours, x), tokens, flops),
            Impl("torch.nn", make(theirs, x), tokens, flops, reference=True),
        ]
        if train and kind in ("lstm", "bilstm"):  # a projected LSTM runs rnnkit's kernel anyway
            impls.insert(1, Impl(OWN_KERNEL, make(own_kernel(ours), x), tokens, flops))
        if extras:
            state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
            impls += optional_lstm_rows(s, x.numpy(), state, tokens, flops)
        return impls

    name = f"{kind}_input_grad" if input_grad else kind
    return Case(f"{name}-{config}-{mode}", label, build)


def variant_case(kind: str, option: str, value: Any, s: Shape) -> Case:
    """An rnnkit-only option of an LSTM or GRU (kind) against the plain torch.nn layer of the
    same shape."""
    tokens = s.T * s.B
    flops = gemm_flops(kind, tokens, s.I, s.H, s.L, train=True)

    def build() -> list[Impl]:
        ours, theirs = layer_pair(kind, s, **{option: value})
        x = torch.randn(s.T, s.B, s.I)
        plain = f"torch.nn plain {kind.upper()}"
        return [
            Impl("rnnkit", train_step(ours, x), tokens, flops),
            Impl(plain, train_step(theirs, x), tokens, flops, reference=True),
        ]

    label = f"a {s.describe()} {option}={value} train"
    return Case(f"{kind}_{option}-a-train", label, build)


def lengths_case(s: Shape) -> Case:
    """A right-padded batch, lengths uniform in [T/4, T]: rnnkit with ``lengths=`` vs the same
    batch at full length, and torch.nn on the packed batch (its way to skip padding)."""
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(s.T // 4, s.T + 1, (s.B,), generator=generator)
    valid = int(lengths.sum())
    full = s.T * s.B

    def build() -> list[Impl]:
        ours, theirs = layer_pair("lstm", s)
        x = torch.randn(s.T, s.B, s.I)

        def packed() -> None:
            theirs.zero_grad(set_to_none=True)
            y, _ = theirs(pack_padded_sequence(x, lengths, enforce_sorted=False))
            y.data.sum().backward()

        flops = gemm_flops("lstm", valid, s.I, s.H, s.L, train=True)
        return [
            Impl("rnnkit lengths=", train_step(ours, x, lengths=lengths), valid, flops),
            Impl(  # lengths all T: the same kernel as the padded batch, on every token
                "rnnkit full length",
                train_step(ours, x, lengths=torch.full_like(lengths, s.T)),
                full,
                gemm_flops("lstm", full, s.I, s.H, s.L, train=True),
            ),
            Impl("torch.nn packed", packed, valid, flops, reference=True),
        ]

    def finish(seconds: dict[str, float], impls: list[Impl]) -> None:
        ratio = seconds["rnnkit lengths="] / seconds["rnnkit full length"]
        impls[0].note = f"time lengths/full {ratio:.2f} ({valid / full:.0%} valid)"
        impls[0].extra["lengths_over_full"] = ratio

    label = f"a {s.describe()} train, lengths U[{s.T // 4},{s.T}]"
    return Case("lstm_lengths-a-train", label, build, finish)


def streaming_case(kind: str) -> Case:
    """B=1, one call per time step with the state carried, under no_grad."""
    size, steps = STREAM_SIZE, STREAM_STEPS
    shape = Shape(B=1, T=1, I=size, H=size)
    proj = layer_kwargs(kind, shape).get("proj_size", 0)
    per_step = gemm_flops(LAYER_KINDS[kind][0], 1, size, size, proj_size=proj)

    def build() -> list[Impl]:
        ours, theirs = layer_pair(kind, shape)
        ours.eval()
        theirs.eval()
        xs = torch.randn(steps, 1, size)

        def forward_calls(layer: nn.Module) -> Callable[[], None]:
            def run() -> None:
                hx = None
                with torch.no_grad():
                    for t in range(steps):
                        _, hx = layer(xs[t : t + 1], hx)

            return run

        def step_calls() -> None:
            hx = None
            with torch.no_grad():
                for t in range(steps):
                    _, hx = ours.step(xs[t], hx)

        # The step's products alone, one library call per step: [W_ih | W_hh] @ [x_t; h] (the
        # GRU's r applies to one part afterwards; the weights read are the same).
        weights = torch.cat([theirs.weight_ih_l0, theirs.weight_hh_l0], 1).detach()
        inputs = torch.randn(steps, weights.shape[1])

        def products_only() -> None:
            for t in range(steps):
                torch.mv(weights, inputs[t])

        impls = [
            Impl("rnnkit", forward_calls(ours), steps, steps * per_step, steps=steps),
            Impl("rnnkit .step", step_calls, steps, steps * per_step, steps=steps),
            Impl("torch.nn", forward_calls(theirs), steps, steps * per_step, True, steps),
        ]
        if not proj:  # a projected LSTM has a third product
            impls.append(
                Impl("products: torch.mv", products_only, steps, steps * per_step, steps=steps)
            )
        return impls

    label = f"B=1 I={size} H={size}{f' P={proj}' if proj else ''}, {steps} calls of 1 step, no_grad"
    return Case(f"streaming-{kind}", label, build)


def relative_error(layer: nn.Module, x: torch.Tensor) -> float:
    """||y - y_ref|| / ||y_ref|| of the layer's output against its float64 reference loop."""
    with torch.no_grad():
        y, _ = layer(x)
        reference = copy.deepcopy(layer).double()
        with rnnkit.reference_implementation():
            y_ref, _ = reference(x.double())
    return float((y.double() - y_ref).norm() / y_ref.norm())


def min_rnn_case(T: int, check_error: bool) -> Case:
    B, H = MIN_RNN_B, MIN_RNN_H
    tokens = T * B

    def build() -> list[Impl]:
        torch.manual_seed(0)
        mingru, minlstm, gru = rnnkit.MinGRU(H, H), rnnkit.MinLSTM(H, H), nn.GRU(H, H)
        x = torch.randn(T, B, H)
        impls = [
            Impl("rnnkit MinGRU", train_step(mingru, x), tokens,
                 gemm_flops("mingru", tokens, H, H, train=True)),
            Impl("rnnkit MinLSTM", train_step(minlstm, x), tokens,
                 gemm_flops("minlstm", tokens, H, H, train=True)),
            Impl("torch.nn GRU", train_step(gru, x), tokens,
                 gemm_flops("gru", tokens, H, H, train=True), reference=True),
        ]  # fmt: skip
        if check_error:
            for impl, layer in zip(impls, (mingru, minlstm), strict=False):
                error = relative_error(layer, x)
                impl.note = f"rel. error vs fp64 loop {error:.1e}"
                impl.extra["rel_error"] = error
        return impls

    return Case(f"minrnn-T{T}-train", f"B={B} T={T} I={H} H={H} L=1 train", build)


def memory_case(s: Shape, kind: str) -> Case:
    label = f"b {s.describe()} train, peak RSS increase"
    return Case(f"memory-{kind}-b-train", label, lambda: [], memory_shape=s, memory_kind=kind)


def all_cases(quick: bool) -> list[Case]:
    configs = {"a": QUICK_A} if quick else CONFIGS
    a = configs["a"]
    cases = []
    for config, s in configs.items():
        for kind in LAYER_KINDS:
            if kind == "bilstm" and config != "a":
                continue
            for mode in ("train", "infer"):
                extras = kind == "lstm" and config == "a" and mode == "train"
                cases.append(layer_case(kind, config, s, mode, extras))
    for config, s in configs.items():  # the LSTM's training where its input needs a gradient
        for kind in ("lstm", "bilstm") if config == "a" else ("lstm",):
            cases.append(layer_case(kind, config, s, "train", input_grad=True))
    for option, value in (("peephole", True), ("layer_norm", True), ("recurrent_dropout", 0.25)):
        cases.append(variant_case("lstm", option, value, a))
    cases.append(variant_case("gru", "layer_norm", True, a))
    cases.append(lengths_case(a))
    cases += [streaming_case("lstm"), streaming_case("lstmp"), streaming_case("gru")]
    lengths_T = QUICK_MIN_RNN_T if quick else MIN_RNN_T
    cases += [min_rnn_case(T, check_error=T == max(lengths_T)) for T in lengths_T]
    if not quick:
        cases += [memory_case(CONFIGS["b"], kind) for kind in ("lstm", "gru")]
    return cases


def select(cases: list[Case], patterns: str | None) -> list[Case]:
    """Cases matching any comma-separated pattern: a case id, a glob, or an id's first part
    (``lstm`` selects lstm-a-train, lstm-a-infer, lstm-b-...; not bilstm or lstm_peephole)."""
    if not patterns:
        return cases
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    unknown = [p for p in wanted if not any(_matches(case.id, p) for case in cases)]
    if unknown:
        raise ValueError(
            f"no case matches {', '.join(unknown)}; cases: {', '.join(c.id for c in cases)}"
        )
    return [case for case in cases if any(_matches(case.id, p) for p in wanted)]


def _matches(case_id: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(case_id, pattern) or fnmatch.fnmatchcase(case_id, pattern + "-*")


# -- optional rows: JAX and Keras -------------------------------------------------------------

_IMPORT_FAILURES: dict[str, str] = {}


def optional_module(name: str) -> Any:
    """The module if it imports, else None (and why, in ``_IMPORT_FAILURES``)."""
    try:
        return importlib.import_module(name)
    except Exception as error:  # an optional package may fail to import in many ways
        _IMPORT_FAILURES[name] = f"{type(error).__name__}: {error}"
        return None


def installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def optional_lstm_rows(
    s: Shape, x: np.ndarray, state: dict[str, np.ndarray], tokens: int, flops: int
) -> list[Impl]:
    """JAX and Keras LSTM train steps of shape ``s`` where they import; nothing otherwise."""
    rows = []
    for name, make in (("jax", jax_lstm_train), ("keras", keras_lstm_train)):
        if optional_module(name) is None:
            why = f"{name} not importable: {_IMPORT_FAILURES[name]}" if installed(name) else ""
            print(why or f"{name} not installed", file=sys.stderr)
            continue
        try:
            row = make(s, x, state)
            row.run()  # compiles, and shows that it runs before any timing
        except Exception as error:
            print(f"{name} row skipped: {type(error).__name__}: {error}", file=sys.stderr)
            continue
        row.tokens, row.flops = tokens, flops
        rows.append(row)
    return rows


def jax_lstm_train(s: Shape, x: np.ndarray, state: dict[str, np.ndarray]) -> Impl:
    """A single-layer LSTM in ``jax.lax.scan`` with torch.nn's weights and gate order (i, f, g,
    o); the input projection is one GEMM ahead of the scan, as in torch's kernel."""
    import jax
    import jax.numpy as jnp

    if s.L != 1:
        raise ValueError("the JAX row implements one layer")
    params = (
        jnp.asarray(state["weight_ih_l0"]),
        jnp.asarray(state["weight_hh_l0"]),
        jnp.asarray(state["bias_ih_l0"] + state["bias_hh_l0"]),
    )
    xj = jnp.asarray(x)

    def loss(params: Any, x: Any) -> Any:
        w_ih, w_hh, b = params
        projected = x @ w_ih.T + b  # (T, B, 4H)

        def step(carry: Any, p_t: Any) -> Any:
            h, c = carry
            i, f, g, o = jnp.split(p_t + h @ w_hh.T, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h

        zeros = jnp.zeros((x.shape[1], w_hh.shape[1]), x.dtype)
        _, ys = jax.lax.scan(step, (zeros, zeros), projected)
        return ys.sum()

    compiled = jax.jit(jax.value_and_grad(loss))

    def run() -> None:
        jax.block_until_ready(compiled(params, xj))

    return Impl("jax lax.scan", run, 0, 0, note="jit(value_and_grad); XLA's own threads")


def keras_lstm_train(s: Shape, x: np.ndarray, state: dict[str, np.ndarray]) -> Impl:
    """``keras.layers.LSTM`` (Keras 3, whatever its backend), gradient of output.sum()."""
    import keras

    if int(keras.__version__.split(".")[0]) < 3:
        raise ValueError(f"Keras 3 needed, found {keras.__version__}")
    if s.L != 1:
        raise ValueError("the Keras row implements one layer")
    backend = keras.backend.backend()
    layer = keras.layers.LSTM(s.H, return_sequences=True)
    batch_major = np.ascontiguousarray(x.transpose(1, 0, 2))  # Keras is batch-first
    layer.build(batch_major.shape)
    if backend == "torch":
        xt = torch.from_numpy(batch_major)

        def run() -> None:
            for variable in layer.trainable_variables:
                variable.value.grad = None
            layer(xt).sum().backward()

    elif backend == "jax":
        import jax

        trainable = [v.value for v in layer.trainable_variables]
        fixed = [v.value for v in layer.non_trainable_variables]

        def loss(trainable: Any, fixed: Any, x: Any) -> Any:
            y, _ = layer.stateless_call(trainable, fixed, x)
            return y.sum()

        compiled = jax.jit(jax.value_and_grad(loss))
        xj = jax.numpy.asarray(batch_major)

        def run() -> None:
            jax.block_until_ready(compiled(trainable, fixed, xj))

    elif backend == "tensorflow":
        import tensorflow as tf

        xt = tf.constant(batch_major)

        @tf.function
        def tf_step() -> Any:
            with tf.GradientTape() as tape:
                y = tf.reduce_sum(layer(xt))
            return tape.gradient(y, layer.trainable_variables)

        def run() -> None:
            [g.numpy() for g in tf_step()]

    else:
        raise ValueError(f"no train step written for the Keras backend {backend!r}")
    return Impl(f"keras LSTM ({backend})", run, 0, 0)


# -- measuring --------------------------------------------------------------------------------


def measure_gemm_peak(repeats: int, warmup: int) -> dict[str, float]:
    """GFLOP/s of one fp32 GEMM of GEMM_SHAPE by torch.mm and, where available, by oneDNN.

    A peak is what the machine can do, so each takes its fastest round (at least 5 rounds):
    a burst of other load then lowers it less than it would a median.
    """
    M, K, N = GEMM_SHAPE
    torch.manual_seed(0)
    x, w = torch.randn(M, K), torch.randn(N, K)
    w_t = w.t().contiguous()
    out = torch.empty(M, N)
    candidates: dict[str, Callable[[], object]] = {"torch.mm": lambda: torch.mm(x, w_t, out=out)}
    onednn = onednn_linear(x, w)
    if onednn is not None:
        candidates["oneDNN"] = onednn
    times = interleaved_times(candidates, max(repeats, 5), max(warmup, 1))
    return {name: 2 * M * K * N / min(ts) / 1e9 for name, ts in times.items()}


def onednn_linear(x: torch.Tensor, w: torch.Tensor) -> Callable[[], object] | None:
    """x @ w.T through oneDNN's prepacked-weight linear (an internal torch op), or None where
    this build lacks it or it gives a different answer."""
    try:
        if not torch.backends.mkldnn.is_available():
            return None
        ops = torch.ops.mkldnn
        if not (hasattr(ops, "_linear_pointwise") and hasattr(ops, "_reorder_linear_weight")):
            return None
        packed = ops._reorder_linear_weight(w, x.shape[0])

        def run() -> torch.Tensor:
            return ops._linear_pointwise(x, packed, None, "none", [], "")

        if not torch.allclose(run(), x @ w.t(), rtol=1e-4, atol=1e-2):
            return None
        return run
    except Exception:  # internal op: any failure means "not available here"
        return None


def timed_rows(case: Case, repeats: int, warmup: int) -> list[dict[str, Any]]:
    impls = case.build()
    names = [impl.name for impl in impls]
    if len(set(names)) != len(names):
        raise ValueError(f"{case.id}: duplicate implementation names {names}")
    times = interleaved_times({impl.name: impl.run for impl in impls}, repeats, warmup)
    seconds = {name: statistics.median(ts) for name, ts in times.items()}
    if case.finish is not None:
        case.finish(seconds, impls)
    reference = next(impl for impl in impls if impl.reference)
    rows = []
    for impl in impls:
        t = seconds[impl.name]
        gflops = impl.flops / t / 1e9
        row = {
            "case": case.id,
            "configuration": case.configuration,
            "implementation": impl.name,
            "seconds": t,
            "seconds_all": times[impl.name],
            "tokens": impl.tokens,
            "tokens_per_s": impl.tokens / t,
            "gflop": impl.flops / 1e9,
            "gflops_per_s": gflops,
            "pct_peak": None,  # set once the peak is known (measured before and after)
            "ratio_vs_torch": seconds[reference.name] / t,
            "reference": impl.reference,
            "note": impl.note,
            **impl.extra,
        }
        if impl.steps:
            row["us_per_step"] = t / impl.steps * 1e6
            row["note"] = (f"{row['us_per_step']:.1f} us/step " + row["note"]).strip()
        rows.append(row)
    return rows


MEMORY_SCRIPT = """
import gc, json, sys
import torch
from benchmarks.common import peak_rss_kib as peak_kib
from torch import nn
import rnnkit

p = json.loads(sys.argv[1])
torch.set_num_threads(p["threads"])
torch.manual_seed(0)
torch_cls, rnnkit_cls = {"lstm": (nn.LSTM, rnnkit.LSTM), "gru": (nn.GRU, rnnkit.GRU)}[p["kind"]]
cls = torch_cls if p["impl"] == "torch.nn" else rnnkit_cls
layer = cls(p["I"], p["H"], p["L"])
if p["impl"] == "rnnkit C++ kernel":
    layer.fused_beats_torch = ("train",)

def step(x):
    layer.zero_grad(set_to_none=True)
    y, _ = layer(x)
    y.sum().backward()

step(torch.randn(4, p["B"], p["I"]))  # loads kernels and libraries: part of the setup
layer.zero_grad(set_to_none=True)
x = torch.randn(p["T"], p["B"], p["I"])
gc.collect()
before = peak_kib()
step(x)
after = peak_kib()
print(json.dumps({"before": before, "after": after}))
"""


def peak_rss_increase_mib(impl: str, s: Shape, kind: str = "lstm") -> float:
    """Peak RSS increase of one training step of an LSTM or GRU ("lstm", "gru") over the setup,
    in a fresh interpreter."""
    params = dict(
        impl=impl, kind=kind, threads=torch.get_num_threads(), B=s.B, T=s.T, I=s.I, H=s.H, L=s.L
    )
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, json.dumps(params)],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"memory subprocess for {impl} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return (result["after"] - result["before"]) / 1024  # KiB -> MiB


def memory_rows(case: Case) -> list[dict[str, Any]]:
    s = case.memory_shape
    assert s is not None
    # rnnkit's GRU runs rnnkit's kernel anyway
    impls = (
        ["rnnkit", OWN_KERNEL, "torch.nn"] if case.memory_kind == "lstm" else ["rnnkit", "torch.nn"]
    )
    runs: dict[str, list[float]] = {impl: [] for impl in impls}
    order = list(runs)
    for _ in range(MEMORY_RUNS):
        order.reverse()
        for impl in order:
            runs[impl].append(peak_rss_increase_mib(impl, s, case.memory_kind))
    mib = {impl: statistics.median(values) for impl, values in runs.items()}
    return [
        {
            "case": case.id,
            "configuration": case.configuration,
            "implementation": impl,
            "seconds": None,
            "tokens": None,
            "tokens_per_s": None,
            "gflop": None,
            "gflops_per_s": None,
            "pct_peak": None,
            # None when a process grew by nothing measurable (shapes far below config b's)
            "ratio_vs_torch": mib["torch.nn"] / mib[impl] if min(mib.values()) > 0 else None,
            "reference": impl == "torch.nn",
            "note": f"peak RSS +{mib[impl]:.1f} MiB (median of {MEMORY_RUNS} processes)",
            "peak_rss_increase_mib": mib[impl],
            "peak_rss_increase_mib_all": runs[impl],
        }
        for impl in runs
    ]


# -- output -----------------------------------------------------------------------------------


def versions() -> str:
    """Versions read from package metadata: nothing optional is imported for the header."""
    parts = [f"Python {platform.python_version()}", f"torch {torch.__version__}"]
    parts.append(f"rnnkit {getattr(rnnkit, '__version__', '?')}")
    parts.append(f"numpy {np.__version__}")
    for name in ("jax", "jaxlib", "keras"):
        try:
            parts.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            if name != "jaxlib":
                parts.append(f"{name} not installed")
    return ", ".join(parts)


def backend_description() -> str:
    if not hasattr(rnnkit, "backend"):
        return "rnnkit.backend() not available in this version"
    try:
        backend = rnnkit.backend
        return str(backend() if callable(backend) else backend)
    except Exception as error:
        return f"rnnkit.backend() raised {type(error).__name__}: {error}"


def header(args: argparse.Namespace, peak: dict[str, float], other: float | None) -> list[str]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    M, K, N = GEMM_SHAPE
    gemms = ", ".join(f"{name} {value:.1f}" for name, value in peak.items())
    lines = [
        "rnnkit speed suite" + (" (--quick: tiny shapes, a smoke test, not a measurement)"
                                if args.quick else ""),
        f"machine: {cpu_model()}; {os.cpu_count()} cores ({usable} usable); "
        f"torch threads: {torch.get_num_threads()}",
        f"versions: {versions()}",
        f"rnnkit backend: {backend_description()}",
        f"GEMM peak: {max(peak.values()):.1f} GFLOP/s, fp32 {M}x{K} @ {K}x{N}, fastest round "
        f"before and after the cases ({gemms})",
        f"timing: median of {args.repeats} interleaved rounds (after {args.warmup} untimed); "
        "tokens = T*B positions (valid ones with lengths), GFLOP = the GEMMs a call needs",
        "vs torch.nn = torch.nn row's time (memory rows: peak RSS increase) / this row's; "
        ">1 is better",
        f"heap: {heap_description(args.heap)}",
    ]  # fmt: skip
    if other is not None:
        lines.append(f"other processes kept {other:.2f} cores busy on average during the run")
        if other > OTHER_LOAD_WARNING:
            lines.append("WARNING: the machine was not idle: these timings are unreliable")
    return lines


def heap_description(heap: str) -> str:
    if heap == "warm":
        settings = " ".join(f"{name}={value}" for name, value in WARM_HEAP.items())
        return f"warm (glibc keeps freed memory: {settings})"
    return "glibc defaults (large buffers are fresh pages; see --heap)"


COLUMNS = (
    # title, row key, format, right-aligned
    ("case", "case", str, False),
    ("configuration", "configuration", str, False),
    ("implementation", "implementation", str, False),
    ("tokens/s", "tokens_per_s", lambda v: f"{v:,.0f}", True),
    ("GFLOP/s", "gflops_per_s", lambda v: f"{v:.2f}", True),
    ("% peak", "pct_peak", lambda v: f"{v:.1f}%", True),
    ("vs torch.nn", "ratio_vs_torch", lambda v: f"{v:.2f}x", True),
    ("note", "note", str, False),
)


def cells(row: dict[str, Any]) -> list[str]:
    return ["-" if row.get(key) is None else fmt(row[key]) for _, key, fmt, _ in COLUMNS]


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    body = [cells(row) for row in rows]
    titles = [title for title, *_ in COLUMNS]
    widths = [max(len(line[i]) for line in [titles, *body]) for i in range(len(COLUMNS))]

    def line(values: list[str]) -> str:
        padded = [
            value.rjust(width) if right else value.ljust(width)
            for value, width, (*_, right) in zip(values, widths, COLUMNS, strict=True)
        ]
        return "  ".join(padded).rstrip()

    out = [line(titles), "  ".join("-" * w for w in widths)]
    previous = None
    for row, values in zip(rows, body, strict=True):
        if previous is not None and row["case"] != previous:
            out.append("")
        previous = row["case"]
        out.append(line(values))
    return "\n".join(out)


def format_markdown(rows: Sequence[dict[str, Any]]) -> str:
    titles = [title for title, *_ in COLUMNS]
    align = ["---:" if right else "---" for *_, right in COLUMNS]
    out = ["| " + " | ".join(titles) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(v.replace("|", "\\|") for v in cells(row)) + " |" for row in rows]
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_speed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true",
        help=f"config a only at T={QUICK_A.T} B={QUICK_A.B}, {QUICK_REPEATS} repeats, minGRU/"
             f"minLSTM at T={QUICK_MIN_RNN_T[0]}, one thread unless --threads, no memory "
             "rows: a smoke test for CI",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, help=f"timed rounds (default {DEFAULT_REPEATS})")
    parser.add_argument("--warmup", type=int, help=f"untimed rounds (default {DEFAULT_WARMUP})")
    parser.add_argument("--cases", help="comma list of case ids, globs or id prefixes")
    parser.add_argument(
        "--threads", type=int, help="torch.set_num_threads for the run (default: as torch has it)"
    )
    parser.add_argument(
        "--heap", choices=("default", "warm"), default="default",
        help="glibc's default heap, or one that keeps freed memory (rerun with MALLOC_* set)",
    )  # fmt: skip
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument("--list-cases", action="store_true", help="print the case ids and exit")
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = QUICK_REPEATS if args.quick else DEFAULT_REPEATS
    if args.warmup is None:
        args.warmup = QUICK_WARMUP if args.quick else DEFAULT_WARMUP
    if args.threads is None and args.quick:
        args.threads = 1  # a smoke test: one thread is immune to other load on shared cores
    if args.repeats < 1 or args.warmup < 0 or (args.threads is not None and args.threads < 1):
        parser.error("--repeats and --threads must be >= 1, --warmup >= 0")
    try:
        args.selected = select(all_cases(args.quick), args.cases)
    except ValueError as error:
        parser.error(str(error))
    return args


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Run the suite, print its table, and return its rows (one dict per row)."""
    args = parse_args(argv)
    if rerun_on_heap("benchmarks.bench_speed", args.heap, argv):
        return []
    if args.list_cases:
        print("\n".join(f"{case.id:<30} {case.configuration}" for case in args.selected))
        return []
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = OtherLoad().start()
    try:
        print("... GEMM peak", file=sys.stderr, flush=True)
        peak = measure_gemm_peak(args.repeats, args.warmup)
        rows: list[dict[str, Any]] = []
        for case in args.selected:
            print(f"... {case.id}", file=sys.stderr, flush=True)
            if case.memory_shape is not None:
                rows += memory_rows(case)
            else:
                rows += timed_rows(case, args.repeats, args.warmup)
        print("... GEMM peak again", file=sys.stderr, flush=True)
        for name, value in measure_gemm_peak(args.repeats, args.warmup).items():
            peak[name] = max(peak.get(name, 0.0), value)
        lines = header(args, peak, load.stop())  # while the run's thread count is still set
    finally:
        torch.set_num_threads(threads)
    best = max(peak.values())
    for row in rows:
        row["peak_gflops_per_s"] = best
        if row["gflops_per_s"] is not None:
            row["pct_peak"] = 100 * row["gflops_per_s"] / best
    print("\n".join(lines))
    print()
    print(format_table(rows))
    if args.markdown:
        print()
        print(format_markdown(rows))
    return rows


if __name__ == "__main__":
    main()
