"""A/B of the LSTM kernels' weight gradients, interleaved in one process: the current
``weight_gradients`` (one product inputs^T @ gate gradients over the inputs joined side by
side, each block of [x | h_{t-1}] copied into one buffer, the gate gradients read where they
lie) against the two methods before it: one product per input (no copy of the inputs), and a
transposed copy of each block of gate gradients, then gate_gradients^T @ input; on rnnkit's C++
LSTM kernel and the layer-norm LSTM kernel (whose weight_gradients has one input, h_{t-1}, so
only the transposed copy differs there).

Run: ``python -m benchmarks.ab_lstm_weight_gradients [--rounds 15] [--quick]``. Prints ms per
training step (median over rounds; each round runs every method, in an order that alternates)
and the largest difference between each method's weight gradients and the current one's.
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
from benchmarks.common import largest_relative_difference
from rnnkit.kernels import gemm
from rnnkit.kernels import lstm as lstm_kernel
from rnnkit.kernels import lstm_ln as lstm_ln_kernel


def row_blocks(N: int, G: int, batch: int, itemsize: int) -> list[tuple[int, int]]:
    """The blocks of rows [n0, n1) ``weight_gradients`` takes (``CHUNK_BYTES`` of d each)."""
    block = max(batch, lstm_kernel.CHUNK_BYTES // (G * itemsize) // batch * batch)
    return [(n0, min(N, n0 + block)) for n0 in range(0, N, block)]


def transposed_copy_method(
    d_rows: Tensor, inputs: list[Any], widths: list[int], batch: int
) -> list[Tensor]:
    """The previous weight gradients: each block of gate gradients transposed into a buffer,
    then d_rows^T @ input per input (same blocks as the current method)."""
    N, G = d_rows.shape
    sums = [d_rows.new_zeros(G, K) for K in widths]
    for n0, n1 in row_blocks(N, G, batch, d_rows.element_size()):
        d_t = gemm.transpose(d_rows[n0:n1], "ab.d_t")  # (G, n)
        for k, rows_of in enumerate(inputs):
            sums[k].add_(gemm.linear(d_t, gemm.transpose(rows_of(n0, n1), f"ab.in{k}_t")))
    return sums


def per_input_method(
    d_rows: Tensor, inputs: list[Any], widths: list[int], batch: int
) -> list[Tensor]:
    """The previous weight gradients: input^T @ d_rows, one product per input (the blocks of
    h_{t-1} read where they lie, with no copy), each transposed at the end."""
    N, G = d_rows.shape
    sums = [d_rows.new_zeros(K, G) for K in widths]
    for n0, n1 in row_blocks(N, G, batch, d_rows.element_size()):
        for k, rows_of in enumerate(inputs):
            sums[k].add_(gemm.rows_t_matmul(rows_of(n0, n1), d_rows[n0:n1], f"ab.in{k}_t"))
    return [gemm.transpose(s) for s in sums]


METHODS = {
    "current": lstm_kernel.weight_gradients,
    "one product per input": per_input_method,
    "transposed copy": transposed_copy_method,
}


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
    now = 1e3 * statistics.median(times["current"])
    parts = [f"current {now:.1f} ms"]
    for name in list(METHODS)[1:]:
        ms = 1e3 * statistics.median(times[name])
        diff = largest_relative_difference(grads[name], grads["current"])
        parts.append(f"{name} {ms:.1f} ms ({ms / now:.2f}x the time; gradients within {diff:.1e})")
    print(f"{label}: {', '.join(parts)}; median of {rounds}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, a smoke test")
    args = parser.parse_args(argv)
    heap = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, heap settings {heap}")
    configs = (
        [("quick", (4, 5, 3, 8, 2), args.rounds)]
        if args.quick
        else [
            ("a", (32, 128, 128, 256, 1), args.rounds),
            ("b", (64, 256, 256, 512, 2), max(3, args.rounds // 3)),
        ]
    )
    for config, (B, T, I, H, L), rounds in configs:
        torch.manual_seed(0)
        x = torch.randn(T, B, I)
        shape = f"config {config} B={B} T={T} I={I} H={H} L={L}"
        compare(f"LSTM (C++ kernel), {shape}", own_kernel(rnnkit.LSTM(I, H, L)), x, rounds)
        compare(f"LSTM layer_norm, {shape}", rnnkit.LSTM(I, H, L, layer_norm=True), x, rounds)


if __name__ == "__main__":
    main()
