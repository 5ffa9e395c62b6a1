"""A/B of the LSTM loops' two ways of using the threads, interleaved in one process: the batch's
rows split between the threads for the whole sequence (each thread runs its own rows' recurrent
GEMM and gate math, no synchronisation between steps) against every step shared (each step's
GEMM columns, then its gate rows, split between the threads, two joins per step).

Run: ``python -m benchmarks.ab_row_split [--repeats 11] [--quick]``. Prints, per case, the median
milliseconds of a whole training step (forward, ``sum().backward()``) of an rnnkit LSTM on its
own kernel with each setting and their ratio, then the same for inference with lengths uniform
in [T/4, T] (the path a plain LSTM infers on with lengths). Both settings are forced (the layer's
rule, :func:`rnnkit.kernels.gemm.row_splits`, picks splits from ``SPLIT_MIN_ROWS`` rows per
thread); their outputs are checked equal first.
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable
from unittest import mock

import torch

import rnnkit
from benchmarks.bench_speed import own_kernel, train_step
from benchmarks.common import interleaved_medians, machine_description
from rnnkit.kernels import gemm

# label -> (B, T, I, H, layers, bidirectional); a and b are the speed suite's configs
CASES = {
    "B=4 (a)": (4, 128, 128, 256, 1, False),
    "B=8 (a)": (8, 128, 128, 256, 1, False),
    "B=16 (a)": (16, 128, 128, 256, 1, False),
    "a": (32, 128, 128, 256, 1, False),
    "bidir a": (32, 128, 128, 256, 1, True),
    "B=64 (a)": (64, 128, 128, 256, 1, False),
    "b": (64, 256, 256, 512, 2, False),
}
QUICK = {"quick": (8, 6, 5, 16, 1, True)}


def with_splits(splits: int, fn: Callable[[], object]) -> Callable[[], object]:
    """fn run with the loops forced to ``splits`` row splits (1: the shared steps)."""

    def run() -> object:
        with mock.patch.object(gemm, "row_splits", lambda batch_size, packed: splits):
            return fn()

    return run


def outputs(layer: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor | None):
    layer.zero_grad(set_to_none=True)
    y, _ = layer(x, lengths=lengths)
    y.sum().backward()
    return [y.detach(), *(p.grad for p in layer.parameters())]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="a tiny case, for the smoke test")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    if not gemm.panels_available(torch.zeros(1)):
        raise SystemExit("row splits need rnnkit's panel kernel (an AVX-512 build): not built here")
    print(f"machine: {machine_description()}")
    print(f"heap: MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', 'unset')}")
    print(f"median of {args.repeats} interleaved rounds, ms per call; split: {threads} row splits")
    print(f"{'case':<10}{'mode':<17}{'shared':>9}{'split':>9}{'shared/split':>14}  rule")
    g = torch.Generator().manual_seed(0)
    for label, (B, T, I, H, layers, bidirectional) in (QUICK if args.quick else CASES).items():
        layer = own_kernel(rnnkit.LSTM(I, H, layers, bidirectional=bidirectional))
        x = torch.randn(T, B, I, generator=g)
        lengths = torch.randint(T // 4, T + 1, (B,), generator=g)
        rule = gemm.row_splits(B, gemm.pack(layer.weight_hh_l0, B))
        check = functools.partial(outputs, layer, x, lengths)
        shared, split = with_splits(1, check)(), with_splits(threads, check)()
        if not torch.equal(shared[0], split[0]) or not all(
            torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(shared, split, strict=True)
        ):
            raise AssertionError(f"{label}: outputs or gradients differ between the settings")

        def infer(layer=layer, x=x, lengths=lengths) -> None:
            with torch.no_grad():
                layer(x, lengths=lengths)

        for mode, fn in (("train", train_step(layer, x)), ("infer, lengths", infer)):
            medians = interleaved_medians(
                {"shared": with_splits(1, fn), "split": with_splits(threads, fn)}, args.repeats
            )
            shared_ms, split_ms = 1e3 * medians["shared"], 1e3 * medians["split"]
            print(
                f"{label:<10}{mode:<17}{shared_ms:>9.2f}{split_ms:>9.2f}"
                f"{shared_ms / split_ms:>13.2f}x  {'split' if rule > 1 else 'shared'}"
            )


if __name__ == "__main__":
    main()
