"""A/B of where the fused GRU, LSTM and RNN kernels keep the large tensors of a call,
interleaved in one process: what their backward reads (the gates of every step, (T, B, 4H), the
LSTM's cell states, the RNN's transposed GEMM inputs) and what they hand to the caller (the
outputs h_all (T, B, H), the input's gradient (T, B, I)) in buffers of pools reused from call to
call (:func:`rnnkit.kernels.workspace.saved` and :func:`~rnnkit.kernels.workspace.handed_out`,
rnnkit's way; the RNN's backward temporaries in :func:`~rnnkit.kernels.workspace.scratch`)
against fresh tensors per call, on a heap of either kind. An A/A row (the pooled
way against itself) shows the run's noise.

Run: ``python -m benchmarks.ab_kept_buffers [--heap default|warm] [--repeats 9] [--quick]
[--kinds gru,lstm,rnn]``.
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
from rnnkit.kernels import elman, gru, lstm

# kind -> (layer class, kernel module, (T, B, H) tensors per layer in a training step besides
# h_all, the workspace functions the fresh way replaces)
KERNELS = {
    "gru": (rnnkit.GRU, gru, 4, ("saved", "handed_out")),  # gates (4H)
    "lstm": (rnnkit.LSTM, lstm, 5, ("saved", "handed_out")),  # gates (4H), cell states
    # the transposed GEMM inputs, the pre-activations' gradients and their transpose
    "rnn": (rnnkit.RNN, elman, 3, ("saved", "handed_out", "scratch")),
}
FRESH = {
    "saved": lambda name, shape, like, keep: like.new_empty(shape),
    "handed_out": lambda name, shape, like: like.new_empty(shape),
    "scratch": lambda name, shape, like: like.new_empty(shape),
}


def fresh(fn, kernel, functions):
    """fn with the kernel module's workspace functions handing out fresh tensors."""
    return patched(fn, kernel, **{name: FRESH[name] for name in functions})


def main(argv: list[str] | None = None) -> None:
    parser = ab_parser(__doc__, repeats=9)
    parser.add_argument("--kinds", default=",".join(KERNELS), help="comma-separated kernels")
    args = parser.parse_args(argv)
    if not ab_start("benchmarks.ab_kept_buffers", args, argv):
        return
    print(f"median of {args.repeats} interleaved rounds, ms per call; "
          "x: the other's time / pooled's")  # fmt: skip
    for config, (B, T, I, H, L) in config_shapes(args.quick).items():
        x = torch.randn(T, B, I, generator=torch.Generator().manual_seed(0))
        for kind in args.kinds.split(","):
            cls, kernel, kept, functions = KERNELS[kind]
            layer = own_kernel(cls(I, H, L), ("train", "infer"))
            ways = (lambda f: f, lambda f, k=kernel, fs=functions: fresh(f, k, fs))
            pooled, other = (outputs_and_gradients(layer, x, way) for way in ways)
            same = largest_relative_difference(other, pooled)
            mib = x.element_size() / 2**20
            sizes = {
                "train": T * B * ((kept + 1) * H + I) * mib,
                "infer": T * B * H * mib,
            }
            for mode, make in (("train", train_step), ("infer", inference)):
                step = make(layer, x)
                m = interleaved_medians(
                    {"pooled": step, "pooled again": patched(step, kernel),
                     "fresh": fresh(step, kernel, functions)},
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
