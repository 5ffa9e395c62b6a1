"""A/B of the LSTM kernel's blockwise weight gradients against the previous kernel (commit
26c1da9: one transposed copy of all gate gradients), interleaved in one process.

Run: ``python -m benchmarks.ab_lstm_weight_gradients`` (needs git and a compiler; the old
kernel is taken from git and built in a temporary directory).
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
import types
from pathlib import Path

import torch
from torch.utils import cpp_extension

import rnnkit
from rnnkit.kernels import lstm as current
from rnnkit.kernels.build import compiler_flags

BASE = "26c1da9"
ROOT = Path(__file__).resolve().parents[1]


def _old_kernel_module(build_dir: Path) -> types.ModuleType:
    def show(path: str) -> str:
        return subprocess.run(["git", "show", f"{BASE}:{path}"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout  # fmt: skip

    (build_dir / "lstm_old.cpp").write_text(show("src/rnnkit/kernels/csrc/lstm.cpp"))
    (build_dir / "common.h").write_text(show("src/rnnkit/kernels/csrc/common.h"))
    ext = cpp_extension.load(
        name="rnnkit_lstm_ab_base", sources=[str(build_dir / "lstm_old.cpp")],
        extra_cflags=compiler_flags(), extra_ldflags=["-fopenmp"], build_directory=str(build_dir),
    )  # fmt: skip
    source = (
        show("src/rnnkit/kernels/lstm.py")
        .replace("from ..cells.lstm", "from rnnkit.cells.lstm")
        .replace("from . import gemm", "from rnnkit.kernels import gemm")
        .replace("from .build import load_extension", "load_extension = lambda name: OLD_EXT")
        .replace("from .workspace import scratch", "from rnnkit.kernels.workspace import scratch")
    )
    module = types.ModuleType("lstm_base")
    module.OLD_EXT = ext
    exec(compile(source, "lstm_base.py", "exec"), module.__dict__)
    return module


def compare(old: types.ModuleType, B: int, T: int, I: int, H: int, L: int, rounds: int,
            iters: int) -> None:  # fmt: skip
    torch.manual_seed(0)
    layer = rnnkit.LSTM(I, H, L)
    x = torch.randn(T, B, I, requires_grad=True)
    runs = {"current": current.run, BASE: old.run}

    def step() -> None:
        y, _ = layer(x)
        y.sum().backward()

    grads, times = {}, {name: [] for name in runs}
    original = current.run
    try:
        for name, run in runs.items():
            current.run = run
            layer.zero_grad()
            step()
            grads[name] = [p.grad.clone() for p in layer.parameters()]
        for r in range(rounds):
            for name in list(runs)[:: 1 if r % 2 == 0 else -1]:
                current.run = runs[name]
                started = time.perf_counter()
                for _ in range(iters):
                    step()
                times[name].append((time.perf_counter() - started) / iters)
    finally:
        current.run = original
    diff = max((a - b).abs().max().item() for a, b in zip(*grads.values(), strict=True))
    now, base = (statistics.median(times[name]) for name in runs)
    print(
        f"B={B} T={T} I={I} H={H} L={L}: current {now * 1e3:.1f} ms, {BASE} {base * 1e3:.1f} ms "
        f"per training step (median of {rounds}); largest gradient difference {diff:.1e}"
    )


if __name__ == "__main__":
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as directory:
        old = _old_kernel_module(Path(directory))
        compare(old, 32, 128, 128, 256, 1, rounds=7, iters=3)
        compare(old, 64, 256, 256, 512, 2, rounds=5, iters=1)
