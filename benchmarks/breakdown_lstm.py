"""Where an LSTM (or GRU) training step spends its time on rnnkit's C++ kernels: each call into
the C++ loops and each GEMM helper timed inside real training steps (forward,
``sum().backward()``).

    python -m benchmarks.breakdown_lstm [--steps 20] [--config a|b] [--kind lstm|gru]

Rows: ms per training step in each part (a part's time includes the GEMMs it runs itself: the
loops run the per-step recurrent GEMMs); "rest" is the step's time outside them (autograd,
Python, the loss). The plain LSTM runs rnnkit's kernel here (``own_kernel``), as its variants do.
"""

from __future__ import annotations

import argparse
import collections
import functools
import time
from typing import Any

import torch

import rnnkit
from benchmarks.bench_speed import CONFIGS, own_kernel, train_step
from rnnkit.kernels import gemm
from rnnkit.kernels import gru as gru_kernel
from rnnkit.kernels import lstm as lstm_kernel
from rnnkit.kernels import lstm_ln as lstm_ln_kernel

KERNEL_MODULES = (lstm_kernel, lstm_ln_kernel, gru_kernel)  # each wrapped while timing

WARMUP = 5


class Timed:
    """Wraps the attributes of a module or extension: each call adds its seconds to spent."""

    def __init__(self, target: Any, prefix: str, spent: dict[str, float]) -> None:
        self.target, self.prefix, self.spent = target, prefix, spent

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.target, name)
        if not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return attribute(*args, **kwargs)
            finally:
                self.spent[self.prefix + name] += time.perf_counter() - started

        return timed


def breakdown(label: str, layer: torch.nn.Module, x: torch.Tensor, steps: int) -> None:
    spent: dict[str, float] = collections.defaultdict(float)
    run = train_step(layer, x)
    originals = {m: (m.load_extension, m.gemm) for m in KERNEL_MODULES}
    try:
        for module in originals:
            load = module.load_extension
            module.load_extension = lambda name, _load=load: Timed(_load(name), "C++ ", spent)
            module.gemm = Timed(gemm, "gemm.", spent)
        for _ in range(WARMUP):
            run()
        spent.clear()
        started = time.perf_counter()
        for _ in range(steps):
            run()
        total = (time.perf_counter() - started) / steps
    finally:
        for module, (load, gemm_module) in originals.items():
            module.load_extension, module.gemm = load, gemm_module
    print(f"{label}: {1e3 * total:.1f} ms per training step (mean of {steps})")
    for name, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        print(f"  {name:<28} {1e3 * seconds / steps:6.2f} ms")
    print(f"  {'rest':<28} {1e3 * (total - sum(spent.values()) / steps):6.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="a")
    parser.add_argument("--kind", choices=("lstm", "gru"), default="lstm")
    args = parser.parse_args()
    s = CONFIGS[args.config]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, config {args.config}")
    torch.manual_seed(0)
    x = torch.randn(s.T, s.B, s.I)
    if args.kind == "gru":
        breakdown("GRU", rnnkit.GRU(s.I, s.H, s.L), x, args.steps)  # rnnkit's kernel always
        return
    for label, options in (("LSTM", {}), ("LSTM layer_norm", {"layer_norm": True})):
        layer = rnnkit.LSTM(s.I, s.H, s.L, **options)
        breakdown(label, own_kernel(layer) if not options else layer, x, args.steps)


if __name__ == "__main__":
    main()
