"""The C++ tiled transpose behind the weight gradients (``gemm.transpose``, ``csrc/common.h:
transpose_into``) against torch's transposing copy and a plain copy of the same bytes,
interleaved in one process, at the shapes of the LSTM weight gradients (rows = T*B).

Run: ``python -m benchmarks.bench_transpose [--repeats 51]``. Prints the median time of each
and its throughput (bytes read plus written per second).
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.common import interleaved_medians, machine_description
from rnnkit.kernels.build import load_extension

SHAPES = ((4096, 128), (4096, 256), (16384, 512), (4096, 1024))  # (rows, columns) of the input


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=51)
    args = parser.parse_args()
    ext = load_extension("lstm")
    if ext is None:
        raise SystemExit("the C++ 'lstm' extension (which holds the transpose) did not build")
    print(f"machine: {machine_description()}")
    print(f"median of {args.repeats} interleaved rounds, float32; GB/s = 2 x bytes / time")
    print(f"{'input':<14}{'implementation':<24}{'ms':>8}{'GB/s':>8}")
    for rows, columns in SHAPES:
        x = torch.randn(rows, columns)
        out, same = torch.empty(columns, rows), torch.empty(rows, columns)
        if not torch.equal(ext.transpose(x, out), x.t()):
            raise AssertionError("the C++ transpose disagrees with torch's")
        medians = interleaved_medians(
            {
                "rnnkit transpose": lambda x=x, out=out: ext.transpose(x, out),
                "torch out.copy_(x.t())": lambda x=x, out=out: out.copy_(x.t()),
                "copy, same layout": lambda x=x, same=same: same.copy_(x),
            },
            args.repeats,
        )
        for name, seconds in medians.items():
            rate = 2 * x.numel() * x.element_size() / seconds / 1e9
            print(f"{f'{rows}x{columns}':<14}{name:<24}{1e3 * seconds:>8.3f}{rate:>8.1f}")


if __name__ == "__main__":
    main()
