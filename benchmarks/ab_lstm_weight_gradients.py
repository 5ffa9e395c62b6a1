"""A/B of the LSTM kernels' weight gradients, interleaved in one process: the current
``weight_gradients`` (input^T @ gate gradients, the gate gradients read where they lie) against
the previous method (a transposed copy of each block of gate gradients, then
gate_gradients^T @ input), on rnnkit's C++ LSTM kernel and the layer-norm LSTM kernel.

Run: ``python -m benchmarks.ab_lstm_weight_gradients [--rounds 15]``. Prints ms per training
step (median over rounds; each round runs both methods, in alternating order) and the largest
difference between the two methods' weight gradients.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import torch
from torch import Tensor

import rnnkit
from benchmarks.bench_speed import own_kernel, train_step
from rnnkit.kernels import gemm
from rnnkit.kernels import lstm as lstm_kernel
from rnnkit.kernels import lstm_ln as lstm_ln_kernel


def transposed_copy_method(d_rows: Tensor, inputs: list[Any], batch: int) -> list[Tensor]:
    """The previous weight gradients: each block of gate gradients transposed into a buffer,
    then d_rows^T @ input per input (same blocks as the current method)."""
    N, G = d_rows.shape
    block = max(batch, lstm_kernel.CHUNK_BYTES // (G * d_rows.element_size()) // batch * batch)
    sums: list[Tensor | None] = [None] * len(inputs)
    for n0 in range(0, N, block):
        n1 = min(N, n0 + block)
        d_t = gemm.transpose(d_rows[n0:n1], "ab.d_t")  # (G, n)
        for k, rows_of in enumerate(inputs):
            part = gemm.linear(d_t, gemm.transpose(rows_of(n0, n1).contiguous(), f"ab.in{k}_t"))
            sums[k] = part if sums[k] is None else sums[k].add_(part)
    return sums


METHODS = {"current": lstm_kernel.weight_gradients, "transposed copy": transposed_copy_method}


def use(method: Any) -> None:
    lstm_kernel.weight_gradients = method
    lstm_ln_kernel.weight_gradients = method


def compare(label: str, layer: torch.nn.Module, x: Tensor, rounds: int) -> None:
    run = train_step(layer, x)
    times: dict[str, list[float]] = {name: [] for name in METHODS}
    grads = {}
    try:
        for r in range(rounds + 1):  # round 0 warms up
            for name in list(METHODS)[:: 1 if r % 2 == 0 else -1]:
                use(METHODS[name])
                run()  # untimed: the buffers of this method come back warm
                started = time.perf_counter()
                run()
                if r:
                    times[name].append(time.perf_counter() - started)
                grads[name] = [p.grad.clone() for p in layer.parameters()]
    finally:
        use(METHODS["current"])
    now, before = (1e3 * statistics.median(times[name]) for name in METHODS)
    diff = max(
        ((a - b).abs().max() / b.abs().max()).item() for a, b in zip(*grads.values(), strict=True)
    )
    print(
        f"{label}: current {now:.1f} ms, transposed copy {before:.1f} ms per training step "
        f"(ratio {before / now:.2f}x; median of {rounds}); largest relative gradient "
        f"difference {diff:.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    heap = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, heap settings {heap}")
    for config, (B, T, I, H, L), rounds in (
        ("a", (32, 128, 128, 256, 1), args.rounds),
        ("b", (64, 256, 256, 512, 2), max(3, args.rounds // 3)),
    ):
        torch.manual_seed(0)
        x = torch.randn(T, B, I)
        shape = f"config {config} B={B} T={T} I={I} H={H} L={L}"
        compare(f"LSTM (C++ kernel), {shape}", own_kernel(rnnkit.LSTM(I, H, L)), x, rounds)
        compare(f"LSTM layer_norm, {shape}", rnnkit.LSTM(I, H, L, layer_norm=True), x, rounds)


if __name__ == "__main__":
    main()
