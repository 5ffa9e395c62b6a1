"""A/B of the input projection the minGRU/minLSTM scan and the layer-norm GRU kernel run through
autograd (:func:`rnnkit.kernels.gemm.linear_autograd`), interleaved in one process: rnnkit's
rule (outputs of ``POOL_MIN_BYTES`` or more written into a reused buffer of the pool
``linear.y``), every output pooled, and a fresh tensor per call (plain ``F.linear``), on a heap
of either kind.

Run: ``python -m benchmarks.ab_pooled_linear [--heap default|warm] [--repeats 7] [--quick]``.
Prints ms per training step (forward, ``sum().backward()``), median of interleaved rounds, for
MinGRU and MinLSTM (B=8, I=H=256, T=256 and 4096, the speed suite's shapes) and the layer-norm
GRU at configs a and b, with the size of the projection's output, and the largest difference of
the outputs and gradients between the three.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

import rnnkit
from benchmarks.bench_speed import CONFIGS, train_step
from benchmarks.common import (
    ab_parser,
    ab_start,
    interleaved_medians,
    largest_relative_difference,
    outputs_and_gradients,
    patched,
)
from rnnkit.kernels import gemm
from rnnkit.layers import recurrence

Run = Callable[[], object]


def fresh_output(fn: Run) -> Run:
    """fn with the projection through plain ``F.linear`` (a fresh output every call)."""
    return patched(
        patched(fn, recurrence, linear_autograd=F.linear), gemm, linear_autograd=F.linear
    )


def pooled_output(fn: Run) -> Run:
    """fn with every output of the projection from the pool, whatever its size."""
    return patched(fn, gemm, POOL_MIN_BYTES=0)


WAYS: dict[str, Callable[[Run], Run]] = {
    "rule": lambda fn: fn, "pooled": pooled_output, "fresh": fresh_output,
}  # fmt: skip


def cases(quick: bool) -> list[tuple[str, torch.nn.Module, torch.Tensor]]:
    """(label, layer, input (T, B, I)) for every case."""
    g = torch.Generator().manual_seed(0)
    if quick:
        x = torch.randn(5, 2, 6, generator=g)
        return [("quick MinGRU", rnnkit.MinGRU(6, 4), x),
                ("quick MinLSTM", rnnkit.MinLSTM(6, 4), x),
                ("quick LN-GRU", rnnkit.GRU(6, 4, layer_norm=True), x)]  # fmt: skip
    found = []
    for T in (256, 4096):
        x = torch.randn(T, 8, 256, generator=g)
        found += [(f"MinGRU T={T}", rnnkit.MinGRU(256, 256), x),
                  (f"MinLSTM T={T}", rnnkit.MinLSTM(256, 256), x)]  # fmt: skip
    for name, s in CONFIGS.items():
        layer = rnnkit.GRU(s.I, s.H, s.L, layer_norm=True)
        found.append((f"LN-GRU {name}", layer, torch.randn(s.T, s.B, s.I, generator=g)))
    return found


def main(argv: list[str] | None = None) -> None:
    parser = ab_parser(__doc__, repeats=7)
    args = parser.parse_args(argv)
    if not ab_start("benchmarks.ab_pooled_linear", args, argv):
        return
    print(f"pool from {gemm.POOL_MIN_BYTES / 2**20:.0f} MiB (rule)")
    print(f"median of {args.repeats} interleaved rounds, ms per step (x: time / the rule's)")
    for label, layer, x in cases(args.quick):
        results = [outputs_and_gradients(layer, x, way) for way in WAYS.values()]
        same = max(largest_relative_difference(other, results[0]) for other in results[1:])
        step = train_step(layer, x)
        m = interleaved_medians({name: way(step) for name, way in WAYS.items()}, args.repeats)
        size = x.shape[0] * x.shape[1] * layer.weight_ih_l0.shape[0] * x.element_size()
        times = "  ".join(
            f"{name} {1e3 * m[name]:7.1f} ({m[name] / m['rule']:.2f}x)" for name in WAYS
        )
        print(
            f"{label:<14} output {size / 2**20:5.1f} MiB  {times}  "
            f"(outputs, gradients within {same:.1e})"
        )


if __name__ == "__main__":
    main()
