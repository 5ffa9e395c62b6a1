"""How close a streaming step (B=1, one call per time step) is to what this machine can do: the
step's products alone, against rnnkit's C++ step and the whole ``.step`` call.

A streaming step multiplies a vector by all of its layer's weights, [W_ih | W_hh] (2 MiB for an
LSTM at I = H = 256, 1.5 MiB for a GRU), each thread its share. Where the shares do not fit the
cores' L2 caches, every step reads most of them from L3 again. The floor here is a C++ loop
(compiled at first use) that does only that: each thread multiplies a vector into its share of
the weights, laid out and walked as the Stepper walks its panels (the direction alternating
between steps, so each step starts on what the last one read most recently), with no gate math,
no outputs, no allocation and no Python.

Run: ``python -m benchmarks.streaming_floor [--repeats 9] [--quick]``. Prints, per layer kind,
the weight bytes per thread and the median microseconds per step (interleaved rounds) of: the
floor (the products alone), the Stepper's C++ call, ``layer.step`` (both with the state
carried, inside ``torch.no_grad()``), and the same two calls for a layer of H = I = 8, whose
time is the fixed cost of a call.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import torch
from torch.utils.cpp_extension import load_inline

import rnnkit
from benchmarks.common import interleaved_medians, machine_description
from rnnkit.kernels import build, stream

FLOOR_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include "stream_panels.h"  // the Stepper's panels and product loop

// `weights` (P, K, kPanel) float32: P panels of K rows, split between the threads as the
// Stepper splits its panels; `steps` times, each thread multiplies a vector into each of its
// panels, walking them first to last and last to first in turn, as the Stepper does. Returns
// seconds per step.
double read_steps(const at::Tensor& weights, int64_t steps) {
  using rnnkit::kPanel;
  TORCH_CHECK(weights.dim() == 3 && weights.size(2) == kPanel && weights.is_contiguous() &&
                  weights.scalar_type() == at::kFloat,
              "read_steps: expected contiguous float32 panels (P, K, ", kPanel, ")");
  const float* w = weights.data_ptr<float>();
  const int64_t P = weights.size(0), K = weights.size(1);
  const int64_t threads = at::get_num_threads(), grain = (P + threads - 1) / threads;
  std::vector<float> v(K, 0.5f), sums(P * kPanel);
  const auto start = std::chrono::steady_clock::now();
  for (int64_t s = 0; s < steps; ++s) {
    const bool reverse = s % 2 == 1;
    at::parallel_for(0, P, grain, [&](int64_t begin, int64_t end) {
      for (int64_t q = begin; q < end; ++q) {
        const int64_t p = reverse ? begin + end - 1 - q : q;
        rnnkit::panel_column_sums(w + p * K * kPanel, v.data(), K, sums.data() + p * kPanel);
      }
    });
  }
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  volatile float kept = sums[0];  // P >= 1: the sums are used
  (void)kept;
  return elapsed.count() / steps;
}
"""

KINDS = {"LSTM": rnnkit.LSTM, "GRU": rnnkit.GRU}
STEPS = 2000  # steps per timed round
PANEL = 64  # kPanel of csrc/stream_panels.h: output rows per panel (read_steps checks it)


def floor_module():
    return load_inline(
        name="rnnkit_streaming_floor",
        cpp_sources=FLOOR_SOURCE,
        functions=["read_steps"],
        extra_cflags=build.compiler_flags(),  # as the Stepper is built
        extra_include_paths=[str(build.SOURCES)],
        extra_ldflags=["-fopenmp"],
    )


def per_step(fn: Callable[[], object], steps: int) -> Callable[[], None]:
    """A round of ``steps`` calls of fn without autograd, for interleaved_medians (which times
    whole rounds)."""

    def run() -> None:
        with torch.no_grad():
            for _ in range(steps):
                fn()

    return run


def step_calls(kind: str, size: int) -> dict[str, Callable[[], object]]:
    """The Stepper's C++ call and ``layer.step`` for a layer of I = H = size at B=1, each
    carrying its state from call to call."""
    layer = KINDS[kind](size, size).eval()
    x = torch.randn(1, size)
    with torch.no_grad():
        _, hx = layer.step(x)
        stepper, _ = stream._stepper(layer, 1)
    state = {"cpp": hx, "step": hx}

    def cpp() -> None:
        h = state["cpp"]
        _, state["cpp"] = stepper.lstm(x, *h, -1) if kind == "LSTM" else stepper.gru(x, h, -1)

    def step() -> None:
        _, state["step"] = layer.step(x, state["step"])

    return {"C++ step": cpp, ".step": step}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    args = parser.parse_args(argv)
    if stream.load_extension("stream") is None:
        raise SystemExit("the streaming kernel is not built here: nothing to compare")
    size, steps = (16, 20) if args.quick else (256, STEPS)
    module = floor_module()
    threads = torch.get_num_threads()
    print(f"machine: {machine_description()}")
    print(
        f"B=1, I = H = {size}; median of {args.repeats} interleaved rounds of {steps} steps, "
        "us per step; fixed: the same calls at I = H = 8"
    )
    print(f"{'layer':<6}{'KiB/thread':>11}{'floor':>9}{'C++ step':>10}{'.step':>9}"
          f"{'C++ fixed':>11}{'.step fixed':>13}")  # fmt: skip
    for kind in KINDS:
        gates = 4 if kind == "LSTM" else 3
        panels = -(-gates * size // PANEL)  # [W_ih | W_hh] as the Stepper's panels, float32
        weights = torch.randn(panels, 2 * size, PANEL)
        calls = {name: per_step(fn, steps) for name, fn in step_calls(kind, size).items()}
        fixed = {f"{name} fixed": per_step(fn, steps) for name, fn in step_calls(kind, 8).items()}

        def floor(weights=weights) -> None:
            module.read_steps(weights, steps)

        start = time.perf_counter()
        m = interleaved_medians({"floor": floor, **calls, **fixed}, args.repeats)
        us = {name: 1e6 * seconds / steps for name, seconds in m.items()}
        kib = weights.numel() * 4 / threads / 1024
        print(
            f"{kind:<6}{kib:>11.0f}{us['floor']:>9.1f}{us['C++ step']:>10.1f}{us['.step']:>9.1f}"
            f"{us['C++ step fixed']:>11.1f}{us['.step fixed']:>13.1f}"
            f"   ({time.perf_counter() - start:.0f} s)"
        )


if __name__ == "__main__":
    main()
