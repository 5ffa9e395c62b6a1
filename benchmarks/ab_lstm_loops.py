"""A/B of two choices in rnnkit's LSTM loops, interleaved in one process:

- **row splits**: the batch's rows split between the threads for the whole sequence (each thread
  runs its own rows' recurrent GEMM and gate math, no joins between steps), or every step shared
  (each step's GEMM columns, then its gate rows, split between the threads);
- **projection in the loop**: each step's panel-kernel GEMM computing x_t W_ih^T as well as
  h_{t-1} W_hh^T, or the input projection as one GEMM over all steps before the loop (written
  out, then read back by the gate math).

Run: ``python -m benchmarks.ab_lstm_loops [--repeats 11] [--quick]``. Prints, per case, the
median milliseconds of a whole training step (forward, ``sum().backward()``) of an rnnkit LSTM on
its own kernel for the four combinations, each one's speed-up over "shared, before" (what the
loops did before both), and which one the layer's rules pick (:func:`rnnkit.kernels.lstm
.row_splits`, :func:`rnnkit.kernels.lstm.projects_in_loop`); then the same for inference with
lengths uniform in [T/4, T] (the path a plain LSTM infers on with lengths). Outputs are checked
equal (within float32 rounding) first.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
from collections.abc import Callable

import torch

import rnnkit
from benchmarks.bench_speed import own_kernel, train_step
from benchmarks.common import interleaved_medians, machine_description, patched
from rnnkit.kernels import gemm
from rnnkit.kernels import lstm as lstm_kernel

# label -> (B, T, I, H, layers, bidirectional); a and b are the speed suite's configs
CASES = {
    "B=4 (a)": (4, 128, 128, 256, 1, False),
    "B=8 (a)": (8, 128, 128, 256, 1, False),
    "B=16 (a)": (16, 128, 128, 256, 1, False),
    "a": (32, 128, 128, 256, 1, False),
    "bidir a": (32, 128, 128, 256, 1, True),
    "B=64 (a)": (64, 128, 128, 256, 1, False),
    "b": (64, 256, 256, 512, 2, False),
    "H=768": (32, 64, 768, 768, 1, False),  # 18 MiB of weights: beyond LOOP_WEIGHT_BYTES
    "H=1024": (32, 64, 512, 1024, 1, False),
}
QUICK = {"quick": (8, 6, 5, 16, 1, True)}


def variant(split: bool, project: bool, fn: Callable[[], object]) -> Callable[[], object]:
    """fn run with the loops forced to split rows or share steps, and to project in the loop
    or before it."""
    splits = torch.get_num_threads() if split else 1
    return patched(
        fn, lstm_kernel, row_splits=lambda *args: splits, projects_in_loop=lambda *args: project
    )


def outputs(layer: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor | None):
    layer.zero_grad(set_to_none=True)
    y, _ = layer(x, lengths=lengths)
    y.sum().backward()
    return [y.detach(), *(p.grad for p in layer.parameters())]


def name(split: bool, project: bool) -> str:
    return f"{'split' if split else 'shared'}, {'in loop' if project else 'before'}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="a tiny case, for the smoke test")
    args = parser.parse_args(argv)
    if not gemm.panels_available(torch.zeros(1)):
        raise SystemExit("both choices need rnnkit's panel kernel (AVX-512 or AVX2): not here")
    combos = list(itertools.product((False, True), (False, True)))  # (split, project)
    print(f"machine: {machine_description()}")
    print(f"heap: MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', 'unset')}")
    print(
        f"median of {args.repeats} interleaved rounds, ms per call (x: speed-up over "
        f"'shared, before'); split: {torch.get_num_threads()} row splits; *: the layer's choice"
    )
    print(f"{'case':<10}{'mode':<16}" + "".join(f"{name(*c):>24}" for c in combos))
    g = torch.Generator().manual_seed(0)
    for label, (B, T, I, H, layers, bidirectional) in (QUICK if args.quick else CASES).items():
        layer = own_kernel(rnnkit.LSTM(I, H, layers, bidirectional=bidirectional))
        x = torch.randn(T, B, I, generator=g)
        lengths = torch.randint(T // 4, T + 1, (B,), generator=g)
        _, ih_packed, _, splits = lstm_kernel.loop_plan(
            B, layer.weight_hh_l0, layer.weight_ih_l0, None
        )
        chosen = (splits > 1, ih_packed is not None)
        check = functools.partial(outputs, layer, x, lengths)
        reference, *others = [variant(*c, check)() for c in combos]
        for c, other in zip(combos[1:], others, strict=True):
            if not all(  # within float32 rounding of sums over all tokens
                (a - b).abs().max() <= 1e-4 * max(1.0, b.abs().max().item())
                for a, b in zip(reference, other, strict=True)
            ):
                raise AssertionError(f"{label}: {name(*c)} differs from 'shared, before'")

        def infer(layer=layer, x=x, lengths=lengths) -> None:
            with torch.no_grad():
                layer(x, lengths=lengths)

        for mode, fn in (("train", train_step(layer, x)), ("infer, lengths", infer)):
            medians = interleaved_medians({c: variant(*c, fn) for c in combos}, args.repeats)
            base = medians[combos[0]]
            cells = (
                f"{1e3 * medians[c]:.2f} ms {base / medians[c]:.2f}x{'*' if c == chosen else ' '}"
                for c in combos
            )
            print(f"{label:<10}{mode:<16}" + "".join(f"{cell:>24}" for cell in cells))


if __name__ == "__main__":
    main()
