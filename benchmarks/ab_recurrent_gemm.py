"""A/B of the recurrent GEMM inside the C++ time loops, interleaved in one process: rnnkit's
panel kernel (``csrc/panel_gemm.h``, weights laid out once in panels by ``gemm.pack``) against
oneDNN with a reordered weight (``torch.ops.mkldnn._linear_pointwise``), which the loops used
before.

Run: ``python -m benchmarks.ab_recurrent_gemm [--repeats 9]``. Prints, for each shape, the
microseconds per GEMM call of both (median over rounds, each round alternating the order) and
their ratio; then whole training steps with ``gemm.pack`` handing the loops panels or oneDNN
weights: the LSTM (rnnkit's kernel; full length and a padded batch with lengths uniform in
[T/4, T]), the layer-norm LSTM, the GRU and the tanh RNN at config a.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

import rnnkit
from benchmarks.bench_speed import CONFIGS, own_kernel, train_step
from benchmarks.common import interleaved_medians, machine_description
from rnnkit.kernels import gemm
from rnnkit.kernels.build import load_extension

ROWS = (1, 8, 16, 32, 64, 128, 256)
CALLS = 200  # GEMM calls per timed round


def gemm_rounds(ext, x: torch.Tensor, w: torch.Tensor) -> dict[str, Callable[[], None]]:
    panels = ext.pack_panels(w)
    reordered = torch.ops.mkldnn._reorder_linear_weight(w, x.shape[0])
    out = torch.empty(x.shape[0], w.shape[0])
    linear = torch.ops.mkldnn._linear_pointwise

    def ours() -> None:
        for _ in range(CALLS):
            ext.panel_gemm_nt(x, panels, w.shape[0], None, out)

    def onednn() -> None:
        for _ in range(CALLS):
            linear(x, reordered, None, "none", [], "")

    ours()
    exact = x.double() @ w.double().t()
    if (out.double() - exact).abs().max() > 1e-5 * exact.abs().max():
        raise AssertionError("the panel GEMM disagrees with x @ w^T")
    return {"panels": ours, "oneDNN": onednn}


@contextmanager
def recurrent_gemm(route: str) -> Iterator[None]:
    """Inside: gemm.pack hands the loops panels (route "panels") or oneDNN weights."""
    saved = gemm.PANEL_MAX_ROWS
    gemm.PANEL_MAX_ROWS = saved if route == "panels" else -1
    try:
        yield
    finally:
        gemm.PANEL_MAX_ROWS = saved


def step_rounds(step: Callable[[], None]) -> dict[str, Callable[[], None]]:
    def under(route: str) -> Callable[[], None]:
        def run() -> None:
            with recurrent_gemm(route):
                step()

        return run

    return {"panels": under("panels"), "oneDNN": under("oneDNN")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    ext = load_extension("lstm")
    if ext is None or not ext.panel_gemm or not gemm.use_onednn(torch.empty(1)):
        raise SystemExit("needs the C++ kernels with a panel kernel (AVX-512 or AVX2), and oneDNN")
    print(machine_description())
    print(f"median of {args.repeats} interleaved rounds; {CALLS} GEMM calls per round\n")
    print(f"{'W (N, K)':<14} {'rows':>5} {'panels us':>10} {'oneDNN us':>10} {'ratio':>7}")
    for H in (256, 512):
        for N, K in ((4 * H, H), (H, 4 * H)):  # forward W_hh, backward W_hh^T
            w = torch.randn(N, K)
            for rows in ROWS:
                x = torch.randn(rows, K)
                med = interleaved_medians(gemm_rounds(ext, x, w), args.repeats)
                ours, theirs = (1e6 * med[k] / CALLS for k in ("panels", "oneDNN"))
                print(f"{f'({N}, {K})':<14} {rows:>5} {ours:10.1f} {theirs:10.1f} "
                      f"{theirs / ours:6.2f}x")  # fmt: skip
    s = CONFIGS["a"]
    torch.manual_seed(0)
    x = torch.randn(s.T, s.B, s.I)
    lengths = torch.randint(s.T // 4, s.T + 1, (s.B,), generator=torch.Generator().manual_seed(0))
    lstm = own_kernel(rnnkit.LSTM(s.I, s.H))
    steps = {
        "LSTM": train_step(lstm, x),
        "LSTM, lengths U[T/4, T]": train_step(lstm, x, lengths=lengths),
        "LSTM layer_norm": train_step(rnnkit.LSTM(s.I, s.H, layer_norm=True), x),
        "GRU": train_step(rnnkit.GRU(s.I, s.H), x),
        "RNN tanh": train_step(rnnkit.RNN(s.I, s.H), x),
    }
    print(f"\ntraining steps at config a ({s.describe()}), ms per step")
    for label, step in steps.items():
        med = interleaved_medians(step_rounds(step), args.repeats)
        ours, theirs = (1e3 * med[k] for k in ("panels", "oneDNN"))
        print(f"{label:<26} panels {ours:6.1f}  oneDNN {theirs:6.1f}  {theirs / ours:5.2f}x")


if __name__ == "__main__":
    main()
