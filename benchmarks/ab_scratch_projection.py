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

import argparse
import os

import torch

import rnnkit
from benchmarks.bench_speed import CONFIGS, inference, own_kernel, train_step
from benchmarks.common import (
    interleaved_medians,
    largest_relative_difference,
    machine_description,
    outputs_and_gradients,
    patched,
    rerun_on_heap,
)
from rnnkit.kernels import gemm

KERNELS = {"lstm": (rnnkit.LSTM, 4), "gru": (rnnkit.GRU, 3), "rnn": (rnnkit.RNN, 1)}


def fresh(fn):
    """fn with the kernels' input projections in fresh tensors."""
    return patched(fn, gemm, linear_scratch=lambda x, w, b, name: gemm.linear(x, w, b))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heap", choices=("default", "warm"), default="default")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, for the smoke test")
    args = parser.parse_args(argv)
    if rerun_on_heap("benchmarks.ab_scratch_projection", args.heap, argv):
        return
    print(f"machine: {machine_description()}")
    print(f"heap: {args.heap} (MALLOC_MMAP_THRESHOLD_="
          f"{os.environ.get('MALLOC_MMAP_THRESHOLD_', 'unset')})")  # fmt: skip
    print(f"median of {args.repeats} interleaved rounds, ms; x: fresh's time / scratch's")
    configs = {"quick": (2, 5, 6, 8, 2)} if args.quick else {
        name: (s.B, s.T, s.I, s.H, s.L) for name, s in CONFIGS.items()}  # fmt: skip
    for config, (B, T, I, H, L) in configs.items():
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
