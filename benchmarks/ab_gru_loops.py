"""A/B of row splits in rnnkit's GRU forward loop, interleaved in one process: the batch's rows
split between the threads for the whole sequence (each thread runs its own rows' recurrent GEMM
and gate math, no joins between steps) against every step shared (its GEMM's columns, then its
gate rows, split between the threads), on a heap of either kind.

Run: ``python -m benchmarks.ab_gru_loops [--heap default|warm] [--repeats 11] [--quick]``.
Prints, per case, the median milliseconds of an inference call (full length, and with lengths
uniform in [T/4, T]) and of a whole training step (forward, ``sum().backward()``) of an rnnkit
GRU with each choice, an A/A row (shared against shared), and which one the layer's rule picks
(:func:`rnnkit.kernels.lstm.row_splits`). Outputs and gradients are checked equal first: row
splits do not change a row's arithmetic.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch

import rnnkit
from benchmarks.bench_speed import config_shapes, train_step
from benchmarks.common import ab_parser, ab_start, interleaved_medians, patched
from rnnkit.kernels import gemm, gru

# label -> (B, T, I, H, layers)
CASES = {"B=16 (a)": (16, 128, 128, 256, 1), "B=64 (a)": (64, 128, 128, 256, 1)}
QUICK = {"quick": (8, 6, 5, 16, 1)}


def forced(splits: int, fn: Callable[[], object]) -> Callable[[], object]:
    """fn run with the GRU's forward loop forced to ``splits`` row splits (1: shared steps)."""
    return patched(fn, gru, row_splits=lambda *args: splits)


def outputs(layer: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
    layer.zero_grad(set_to_none=True)
    y, _ = layer(x, lengths=lengths)
    y.sum().backward()
    return [y.detach(), *(p.grad for p in layer.parameters())]


def main(argv: Sequence[str] | None = None) -> None:
    args = ab_parser(__doc__, repeats=11).parse_args(argv)
    if not ab_start("benchmarks.ab_gru_loops", args, argv):
        return
    if not gemm.panels_available(torch.zeros(1)):
        raise SystemExit("row splits need rnnkit's panel kernel (AVX-512 or AVX2): not here")
    threads = torch.get_num_threads()
    print(
        f"median of {args.repeats} interleaved rounds, ms per call; split: {threads} row "
        "splits; *: the layer's choice"
    )
    print(f"{'case':<10}{'mode':<16}{'shared':>12}{'split':>12}{'split x':>9}{'A/A':>7}")
    cases = QUICK if args.quick else {**CASES, **config_shapes(False)}
    g = torch.Generator().manual_seed(0)
    for label, shape in cases.items():
        B, T, I, H, layers = shape
        layer = rnnkit.GRU(I, H, layers)
        x = torch.randn(T, B, I, generator=g)
        lengths = torch.randint(T // 4, T + 1, (B,), generator=g)
        chosen = gru.row_splits(B, gemm.pack(layer.weight_hh_l0, B))
        check = functools.partial(outputs, layer, x, lengths)
        pairs = zip(forced(1, check)(), forced(threads, check)(), strict=True)
        if any(not torch.equal(a, b) for a, b in pairs):
            raise AssertionError(f"{label}: row splits changed the numbers")

        def infer(lengths: torch.Tensor | None = None, layer=layer, x=x) -> None:
            with torch.no_grad():
                layer(x, lengths=lengths)

        modes = {
            "infer": infer,
            "infer, lengths": functools.partial(infer, lengths),
            "train": train_step(layer, x),
        }
        for mode, fn in modes.items():
            m = interleaved_medians(
                {"shared": forced(1, fn), "split": forced(threads, fn), "A/A": forced(1, fn)},
                args.repeats,
            )
            shared, split = (" ", "*") if chosen > 1 else ("*", " ")
            print(
                f"{label:<10}{mode:<16}{1e3 * m['shared']:>11.2f}{shared}"
                f"{1e3 * m['split']:>11.2f}{split}{m['shared'] / m['split']:>8.3f}x"
                f"{m['shared'] / m['A/A']:>6.3f}x"
            )


if __name__ == "__main__":
    main()
