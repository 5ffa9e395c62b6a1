"""rnnkit's fused kernels against torch.nn's, across shapes, interleaved in one process: the
measurement behind which kernel a plain ``rnnkit.LSTM``, ``GRU`` or ``RNN`` runs for each call
(``rnnkit.layers.torch_compat``; for the LSTM also ``rnnkit.kernels.heap``).

    python -m benchmarks.sweep_kernels [--kind lstm|lstmp|gru|rnn_tanh|rnn_relu]
                                       [--mode train|infer] [--heap warm|default]
                                       [--dtype float32|float64] [--repeats 7] [--short]
                                       [--input-grad] [--quick]

For each shape (batch B, steps T, input I, hidden H, layers L, directions D) it times a call of
the rnnkit layer forced onto its own C++ kernel and of the torch.nn layer with the same weights,
interleaved (ABBA rounds, median): a whole training step (forward, ``sum().backward()``) or a
forward without autograd. It prints torch.nn's time / rnnkit's (above 1: rnnkit's kernel is
faster) and whether the recurrent GEMM runs on rnnkit's panel kernel at that batch size and
dtype (``rnnkit.kernels.gemm.pack``). ``lstmp`` is an LSTM with ``proj_size = H // 2``.
``--short`` sweeps short sequences instead (T = 1-32 at B = 1, 8, 32): a call's fixed cost.
``--heap warm`` (the default) reruns the script with glibc keeping freed memory
(``bench_speed.WARM_HEAP``), as ``bench_speed`` does.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from benchmarks.bench_speed import Shape, inference, layer_pair, own_kernel, train_step
from benchmarks.common import interleaved_medians, machine_description, rerun_on_heap
from rnnkit.kernels import gemm

SHAPES = [  # (shape, bidirectional): batch sizes at H=256, hidden sizes at B=32, stacks
    *((Shape(B=b, T=128, I=128, H=256), False) for b in (1, 2, 4, 8, 16, 32, 64, 128, 256)),
    *((Shape(B=32, T=128, I=h // 2, H=h), False) for h in (64, 128, 512, 768, 1024)),
    (Shape(B=64, T=64, I=512, H=1024), False),
    (Shape(B=16, T=32, I=16, H=32), False),  # tiny: per-call overhead
    (Shape(B=32, T=128, I=128, H=256), True),
    (Shape(B=8, T=128, I=128, H=256), True),
    (Shape(B=32, T=100, I=64, H=512, L=2), False),  # the packaged Tiny Shakespeare run
    (Shape(B=64, T=256, I=256, H=512, L=2), False),  # bench_speed's config b
    (Shape(B=16, T=64, I=300, H=128, L=2), True),  # a tagger's BiLSTM
]
SHORT = [(Shape(B=b, T=t, I=128, H=256), False) for b in (1, 8, 32) for t in (1, 2, 4, 8, 16, 32)]
QUICK = [(Shape(B=8, T=6, I=5, H=16, L=2), True)]


def uses_panels(batch_size: int, dtype: torch.dtype = torch.float32) -> bool:
    """Whether the loops get the panel kernel's weight at this batch size and dtype."""
    return batch_size <= gemm.PANEL_MAX_ROWS and gemm.panels_available(torch.zeros(1, dtype=dtype))


def measure(
    kind: str, s: Shape, bidirectional: bool, mode: str, repeats: int,
    dtype: torch.dtype = torch.float32, input_grad: bool = False,
) -> tuple[float, float]:  # fmt: skip
    """(rnnkit's kernel, torch.nn) median seconds of a call; with input_grad the input requires
    a gradient (as an embedding's output does), which training then computes."""
    ours, theirs = layer_pair(kind, s, bidirectional, dtype)
    x = torch.randn(s.T, s.B, s.I, dtype=dtype, requires_grad=input_grad and mode == "train")
    make = train_step if mode == "train" else inference
    if mode == "infer":
        ours.eval()
        theirs.eval()
    seconds = interleaved_medians(
        {"rnnkit": make(own_kernel(ours, ("train", "infer")), x), "torch.nn": make(theirs, x)},
        repeats,
    )
    return seconds["rnnkit"], seconds["torch.nn"]


def main(argv: Sequence[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sweep_kernels", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--kind", choices=("lstm", "lstmp", "gru", "rnn_tanh", "rnn_relu"), default="lstm"
    )
    parser.add_argument("--mode", choices=("train", "infer"), default="train")
    parser.add_argument("--heap", choices=("default", "warm"), default="warm")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per shape")
    parser.add_argument(
        "--input-grad", action="store_true", help="training: the input requires a gradient"
    )
    parser.add_argument("--short", action="store_true", help="short sequences, T = 1-32")
    parser.add_argument("--quick", action="store_true", help="one tiny shape: a smoke test")
    args = parser.parse_args(argv)
    if rerun_on_heap("benchmarks.sweep_kernels", args.heap, argv):
        return []
    what = "training step (forward + sum().backward())" if args.mode == "train" else "inference"
    if args.input_grad and args.mode == "train":
        what += ", the input requiring a gradient"
    print(machine_description())
    dtype = getattr(torch, args.dtype)
    print(f"{args.kind} {what}, {args.dtype}; heap: {args.heap}; median of {args.repeats} "
          "interleaved rounds; ratio = torch.nn ms / rnnkit ms")  # fmt: skip
    print(f"{'B':>4} {'T':>4} {'I':>5} {'H':>5} {'L':>2} {'D':>2} {'panels':>6} "
          f"{'rnnkit ms':>10} {'torch.nn ms':>12} {'ratio':>6}")  # fmt: skip
    rows = []
    for s, bidirectional in QUICK if args.quick else SHORT if args.short else SHAPES:
        ours, theirs = measure(
            args.kind, s, bidirectional, args.mode, args.repeats, dtype, args.input_grad
        )
        panels = uses_panels(s.B, dtype)
        D = 2 if bidirectional else 1
        shape = f"{s.B:>4} {s.T:>4} {s.I:>5} {s.H:>5} {s.L:>2} {D:>2}"
        times = f"{ours * 1e3:>10.2f} {theirs * 1e3:>12.2f} {theirs / ours:>5.2f}x"
        print(f"{shape} {'yes' if panels else 'no':>6} {times}", flush=True)
        rows.append({"shape": s, "bidirectional": bidirectional, "panels": panels,
                     "rnnkit": ours, "torch.nn": theirs})  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
