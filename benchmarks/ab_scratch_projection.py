"""A/B of where the fused LSTM, GRU and RNN kernels write their input projection (x W_ih^T + b
for all steps, read by the forward loop only), interleaved in one process: a reused scratch
buffer (:func:`rnnkit.kernels.gemm.linear_scratch`, rnnkit's way on ATen) against a fresh tensor
per call, on a heap of either kind.

Run: ``python -m benchmarks.ab_scratch_projection [--heap default|warm] [--repeats 7]
[--quick]``. Prints ms per training step (forward, ``sum().backward()``) and per inference call,
median of interleaved rounds, for rnnkit's kernels at configs a and b (the LSTM's loop projects
the input itself where its weights fit ``LOOP_WEIGHT_BYTES``, as at config a: both ways are the
same there), with the size of the projection and the largest difference between the two ways'
outputs and gradients.
"""

from __future__ import annotations

import torch

import rnnkit
from benchmarks.bench_speed import config_shapes, inference, own_kernel, train_step
from benchmarks.common import (
    ab_parser,
    ab_start,
    interleaved_medians,
    largest_relative_difference,
    outputs_and_gradients,
    patched,
)
from rnnkit.kernels import gemm

KERNELS = {"lstm": (rnnkit.LSTM, 4), "gru": (rnnkit.GRU, 3), "rnn": (rnnkit.RNN, 1)}


def fresh(fn):
    """fn with the kernels' input projections in fresh tensors."""
    return patched(fn, gemm, linear_scratch=lambda x, w, b, name: gemm.linear(x, w, b))


def main(argv: list[str] | None = None) -> None:
    parser = ab_parser(__doc__, repeats=7)
    args = parser.parse_args(argv)
    if not ab_start("benchmarks.ab_scratch_projection", args, argv):
        return
    print(f"median of {args.repeats} interleaved rounds, ms; x: fresh's time / scratch's")
    for config, (B, T, I, H, L) in config_shapes(args.quick).items():
        x = torch.randn(T, B, I, generator=torch.Generator().manual_seed(0))
        for kind, (cls, gates) in KERNELS.items():
            layer = own_kernel(cls(I, H, L), ("train", "infer"))
            scratch, other = (outputs_and_gradients(layer, x, way) for way in (lambda f: f, fresh))
            same = largest_relative_difference(other, scratch)
            size = T * B * gates * H * x.element_size() / 2**20
            for mode, make in (("train", train_step), ("infer", inference)):
                step = make(layer, x)
                m = interleaved_medians({"scratch": step, "fresh": fresh(step)}, args.repeats)
                ms = {name: f"{1e3 * seconds:8.1f}" for name, seconds in m.items()}
                print(
                    f"{config:<6} {kind:<5} {mode}  projection {size:6.1f} MiB  scratch "
                    f"{ms['scratch']}  fresh {ms['fresh']}  {m['fresh'] / m['scratch']:.2f}x  "
                    f"(outputs, gradients within {same:.1e})"
                )


if __name__ == "__main__":
    main()
