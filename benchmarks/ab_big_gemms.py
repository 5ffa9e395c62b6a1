"""A/B of the library behind the kernels' big GEMMs (all time steps at once), interleaved in one
process: oneDNN (``torch.ops.mkldnn``; the weight gradients' inputs transposed first) against
ATen (``torch.mm``: MKL; transposed views read in place).

Run: ``python -m benchmarks.ab_big_gemms [--repeats 9] [--quick]``. Prints the milliseconds of
each GEMM shape the LSTM kernel runs at configs a and b (weight gradients x^T d and h^T d, the
input projection, the input gradient), then of whole training steps (forward,
``sum().backward()``) of rnnkit's LSTM, GRU and tanh RNN kernels with each library, beside
torch.nn's layer, median of interleaved rounds. rnnkit uses oneDNN where the CPU has AVX-512,
else ATen (:func:`rnnkit.kernels.gemm.use_onednn`). Outputs of the two are checked to agree.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

import torch

import rnnkit
from benchmarks.bench_speed import CONFIGS, own_kernel, train_step
from benchmarks.common import interleaved_medians, machine_description, patched
from rnnkit.kernels import gemm
from rnnkit.kernels.build import cpu_has_avx512

LAYERS = {"lstm": (rnnkit.LSTM, torch.nn.LSTM), "gru": (rnnkit.GRU, torch.nn.GRU),
          "rnn_tanh": (rnnkit.RNN, torch.nn.RNN)}  # fmt: skip


def on(library: str, fn: Callable[[], object]) -> Callable[[], object]:
    """fn with the kernels' big GEMMs on ``library`` ("oneDNN" or "ATen")."""
    choice = gemm.onednn_applies if library == "oneDNN" else (lambda t: False)
    return patched(fn, gemm, use_onednn=choice)


def gemm_shapes(B: int, T: int, I: int, H: int) -> dict[str, Callable[[str], Callable]]:
    """label -> (library -> one GEMM of the LSTM kernel at this shape)."""
    g = torch.Generator().manual_seed(0)
    N = T * B
    x, h = torch.randn(N, I, generator=g), torch.randn(N, H, generator=g)
    d = torch.randn(N, 4 * H, generator=g)
    w_ih = torch.randn(4 * H, I, generator=g)
    return {
        f"x^T d ({I}x{N} @ {N}x{4 * H})": lambda lib: on(
            lib, lambda: gemm.rows_t_matmul([x], d, "ab.x_t")),
        f"h^T d ({H}x{N} @ {N}x{4 * H})": lambda lib: on(
            lib, lambda: gemm.rows_t_matmul([h], d, "ab.h_t")),
        f"x W_ih^T ({N}x{I} @ {I}x{4 * H})": lambda lib: on(lib, lambda: gemm.linear(x, w_ih)),
        f"d W_ih ({N}x{4 * H} @ {4 * H}x{I})": lambda lib: on(
            lib, lambda: gemm.linear(d, w_ih.t())),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, for the smoke test")
    args = parser.parse_args(argv)
    if not gemm.onednn_applies(torch.zeros(1)):
        raise SystemExit("this torch build has no oneDNN GEMMs: nothing to compare")
    configs = {"quick": (4, 6, 8, 16, 1)} if args.quick else {
        name: (s.B, s.T, s.I, s.H, s.L) for name, s in CONFIGS.items()}  # fmt: skip
    print(f"machine: {machine_description()}; AVX-512: {cpu_has_avx512()}")
    print(f"heap: MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', 'unset')}")
    print(f"rnnkit's choice here: {'oneDNN' if gemm.use_onednn(torch.zeros(1)) else 'ATen'}")
    print(f"median of {args.repeats} interleaved rounds, ms; ratio = oneDNN's time / ATen's")
    for config, (B, T, I, H, _) in configs.items():
        for label, make in gemm_shapes(B, T, I, H).items():
            one, aten = make("oneDNN"), make("ATen")
            assert torch.allclose(one(), aten(), rtol=1e-4, atol=1e-3), label
            m = interleaved_medians({"oneDNN": one, "ATen": aten}, args.repeats)
            print(f"{config:<6} GEMM {label:<36} oneDNN {1e3 * m['oneDNN']:9.2f}  "
                  f"ATen {1e3 * m['ATen']:9.2f}  {m['oneDNN'] / m['ATen']:.2f}x")  # fmt: skip
    for config, (B, T, I, H, L) in configs.items():
        x = torch.randn(T, B, I, generator=torch.Generator().manual_seed(1))
        for kind, (ours, theirs) in LAYERS.items():
            layer = own_kernel(ours(I, H, L))
            reference = theirs(I, H, L)
            reference.load_state_dict(layer.state_dict())
            step = train_step(layer, x)
            candidates = {"oneDNN": on("oneDNN", step), "ATen": on("ATen", step),
                          "torch.nn": train_step(reference, x)}  # fmt: skip
            m = interleaved_medians(candidates, args.repeats)
            print(
                f"{config:<6} {kind:<8} train step  oneDNN {1e3 * m['oneDNN']:9.2f}  ATen "
                f"{1e3 * m['ATen']:9.2f}  torch.nn {1e3 * m['torch.nn']:9.2f}  "
                f"{m['oneDNN'] / m['ATen']:.2f}x; vs torch.nn: oneDNN "
                f"{m['torch.nn'] / m['oneDNN']:.2f}x, ATen {m['torch.nn'] / m['ATen']:.2f}x"
            )


if __name__ == "__main__":
    main()
