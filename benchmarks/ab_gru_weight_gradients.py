"""A/B of the GRU kernel's weight gradients, interleaved in one process, both on ATen's GEMMs:
the gate gradients and the states read where they lie (rnnkit's way where the GEMMs take
transposed operands) against the C++ backward writing them transposed first (the way for
oneDNN, which takes none: about 128 MiB of gate gradients and 32 MiB of states per layer at
config b, transposed after the loop), on a heap of either kind.

Run: ``python -m benchmarks.ab_gru_weight_gradients [--heap default|warm] [--repeats 9]
[--quick] [--memory]``. Prints ms per training step (forward, ``sum().backward()``) at configs
a and b, with and without a recurrent dropout mask, median of interleaved rounds, and the
largest difference between the two ways' outputs and gradients; with ``--memory``, instead,
each way's peak RSS increase over the setup in one training step at config b (median of three
fresh processes per way).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys

import torch

import rnnkit
from benchmarks.bench_speed import config_shapes, train_step
from benchmarks.common import (
    ab_parser,
    ab_start,
    interleaved_medians,
    largest_relative_difference,
    outputs_and_gradients,
    patched,
    peak_rss_kib,
)
from rnnkit.kernels import gemm, gru


def aten(fn):
    """fn with every GEMM of the kernels on ATen, whatever the CPU."""
    return patched(fn, gemm, use_onednn=lambda t: False)


def transposed(fn):
    """fn with the C++ backward transposing the weight gradients' operands (GEMMs on ATen)."""
    return patched(fn, gru, transposes_operands=lambda t: True)


WAYS = {"in-place": aten, "transposed": lambda f: aten(transposed(f))}


def peak_rss_increase_kib(way, quick: bool) -> int:
    """The peak RSS increase of one training step at config b (tiny shapes with quick) run
    through way, over the setup (a short step first loads the kernels)."""
    B, T, I, H, L = config_shapes(quick)["quick" if quick else "b"]
    layer = rnnkit.GRU(I, H, L)
    way(train_step(layer, torch.randn(4, B, I)))()
    step = way(train_step(layer, torch.randn(T, B, I)))
    gc.collect()
    before = peak_rss_kib()
    step()
    return peak_rss_kib() - before


def main(argv: list[str] | None = None) -> None:
    parser = ab_parser(__doc__, repeats=9)
    parser.add_argument("--memory", action="store_true", help="peak RSS of each way instead")
    parser.add_argument("--peak-of", choices=WAYS, help=argparse.SUPPRESS)  # one process's run
    args = parser.parse_args(argv)
    if not ab_start("benchmarks.ab_gru_weight_gradients", args, argv):
        return
    if args.peak_of:
        print(peak_rss_increase_kib(WAYS[args.peak_of], args.quick))
        return
    if args.memory:
        runs: dict[str, list[float]] = {way: [] for way in WAYS}
        for r in range(3):
            for way in list(WAYS)[:: 1 if r % 2 else -1]:
                command = [sys.executable, "-m", "benchmarks.ab_gru_weight_gradients", "--peak-of",
                           way, "--heap", args.heap, *(["--quick"] * args.quick)]  # fmt: skip
                done = subprocess.run(command, capture_output=True, text=True, check=True)
                runs[way].append(int(done.stdout.split()[-1]) / 1024)
        for way, mib in runs.items():
            print(f"b peak RSS increase, {way:<10} +{statistics.median(mib):7.1f} MiB  "
                  f"(runs: {', '.join(f'{m:.1f}' for m in mib)})")  # fmt: skip
        return
    print(f"median of {args.repeats} interleaved rounds, ms per training step; "
          "x: transposed's time / in place's")  # fmt: skip
    for config, (B, T, I, H, L) in config_shapes(args.quick).items():
        x = torch.randn(T, B, I, generator=torch.Generator().manual_seed(0))
        for dropout in (0.0, 0.25):
            layer = rnnkit.GRU(I, H, L, recurrent_dropout=dropout)
            results = []
            for way in WAYS.values():
                torch.manual_seed(0)  # the same dropout masks both ways
                results.append(outputs_and_gradients(layer, x, way))
            step = aten(train_step(layer, x))
            m = interleaved_medians(
                {"in place": step, "transposed": transposed(step)}, args.repeats
            )
            print(
                f"{config:<6} recurrent_dropout {dropout:<4}  in place {1e3 * m['in place']:8.1f}  "
                f"transposed {1e3 * m['transposed']:8.1f}  {m['transposed'] / m['in place']:.2f}x  "
                f"(outputs, gradients within {largest_relative_difference(*results):.1e})"
            )


if __name__ == "__main__":
    main()
