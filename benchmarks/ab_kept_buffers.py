"""A/B of where the fused GRU and LSTM kernels keep the large tensors of a call, interleaved in
one process: what their backward reads (the gates of every step, (T, B, 4H), and the LSTM's
cell states) and what they hand to the caller (the outputs h_all (T, B, H), the input's
gradient (T, B, I)) in buffers of pools reused from call to call
(:func:`rnnkit.kernels.workspace.saved` and :func:`~rnnkit.kernels.workspace.handed_out`,
rnnkit's way) against fresh tensors per call, on a heap of either kind. An A/A row (the pooled
way against itself) shows the run's noise.

Run: ``python -m benchmarks.ab_kept_buffers [--heap default|warm] [--repeats 9] [--quick]``.
Prints ms per training step (forward, ``sum().backward()``) and per inference call at configs
a and b (the LSTM on rnnkit's kernel, as its variants run), median of interleaved rounds, with
the buffers' size per layer and the largest difference between the two ways' outputs and
gradients.
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
from rnnkit.kernels import gru, lstm

# kind -> (layer class, kernel module, gates per hidden unit, other (T, B, H) tensors kept)
KERNELS = {"gru": (rnnkit.GRU, gru, 4, 0), "lstm": (rnnkit.LSTM, lstm, 4, 1)}


def fresh(fn, kernel):
    """fn with the kernel module's kept and handed-out buffers in fresh tensors."""
    return patched(
        fn, kernel, saved=lambda name, shape, like, keep: like.new_empty(shape),
        handed_out=lambda name, shape, like: like.new_empty(shape),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = ab_parser(__doc__, repeats=9)
    args = parser.parse_args(argv)
    if not ab_start("benchmarks.ab_kept_buffers", args, argv):
        return
    print(f"median of {args.repeats} interleaved rounds, ms per call; "
          "x: the other's time / pooled's")  # fmt: skip
    for config, (B, T, I, H, L) in config_shapes(args.quick).items():
        x = torch.randn(T, B, I, generator=torch.Generator().manual_seed(0))
        for kind, (cls, kernel, gates, states) in KERNELS.items():
            layer = own_kernel(cls(I, H, L), ("train", "infer"))
            ways = (lambda f: f, lambda f, kernel=kernel: fresh(f, kernel))
            pooled, other = (outputs_and_gradients(layer, x, way) for way in ways)
            same = largest_relative_difference(other, pooled)
            mib = x.element_size() / 2**20
            sizes = {
                "train": T * B * ((gates + states + 1) * H + I) * mib,
                "infer": T * B * H * mib,
            }
            for mode, make in (("train", train_step), ("infer", inference)):
                step = make(layer, x)
                m = interleaved_medians(
                    {"pooled": step, "pooled again": patched(step, kernel),
                     "fresh": fresh(step, kernel)},
                    args.repeats,
                )  # fmt: skip
                for name in ("fresh", "pooled again"):
                    print(
                        f"{config:<6} {kind:<4} {mode}  {sizes[mode]:6.1f} MiB per layer  pooled "
                        f"{1e3 * m['pooled']:8.1f}  {name:<12} {1e3 * m[name]:8.1f}  "
                        f"{m[name] / m['pooled']:.2f}x  (outputs, gradients within {same:.1e})"
                    )


if __name__ == "__main__":
    main()
