"""How the process heap moves an LSTM training step: rnnkit's C++ kernel and torch.nn's, each
alone in fresh processes, with glibc's default heap and with one that keeps freed memory. (A
plain rnnkit.LSTM trains with the kernel that is faster for the process's heap,
``rnnkit.kernels.heap``; this and ``benchmarks.sweep_kernels``, across shapes, are the
measurements behind that choice.)

    python -m benchmarks.heap_lstm [--case a|b|bilstm-a] [--runs 3] [--steps 9]

Each (heap, implementation) pair runs in ``--runs`` fresh subprocesses; each subprocess times
``--steps`` training steps after 3 untimed ones and reports its median. The table prints every
process's median, so the spread between processes shows. The warm heap is
``bench_speed.WARM_HEAP`` (glibc's ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

from benchmarks.bench_speed import (
    CONFIGS,
    OWN_KERNEL,
    layer_pair,
    own_kernel,
    train_step,
)
from benchmarks.common import heap_environment

WARMUP = 3


CASES = {"a": ("lstm", "a"), "b": ("lstm", "b"), "bilstm-a": ("bilstm", "a")}


def child(impl: str, case: str, steps: int) -> None:
    """Time training steps of one implementation; print the median in ms as JSON."""
    kind, config = CASES[case]
    s = CONFIGS[config]
    ours, theirs = layer_pair(kind, s)
    layer = own_kernel(ours) if impl == OWN_KERNEL else theirs
    run = train_step(layer, torch.randn(s.T, s.B, s.I))
    for _ in range(WARMUP):
        run()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    print(json.dumps({"ms": 1e3 * statistics.median(times)}))


def measure(impl: str, case: str, heap: str, steps: int) -> float:
    env = heap_environment(heap)
    command = [sys.executable, "-m", "benchmarks.heap_lstm", "--child", impl, "--case", case]
    command += ["--steps", str(steps)]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["ms"]


def main(argv: list[str] | None = None) -> dict[tuple[str, str], list[float]]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.heap_lstm", description=__doc__)
    parser.add_argument("--case", choices=tuple(CASES), default="a", help="the layer and shape")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per pair")
    parser.add_argument("--steps", type=int, default=9, help="timed steps per process")
    parser.add_argument("--child", choices=(OWN_KERNEL, "torch.nn"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.case, args.steps)
        return {}
    kind, config = CASES[args.case]
    s = CONFIGS[config]
    threads = torch.get_num_threads()
    print(f"{kind} training step, config {config} ({s.describe()}), torch threads {threads}")
    print(f"median of {args.steps} steps per process (after {WARMUP}), {args.runs} processes each")
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.runs):  # interleaved: each round runs every pair once
        for heap in ("default", "warm"):
            for impl in (OWN_KERNEL, "torch.nn"):
                ms = measure(impl, args.case, heap, args.steps)
                results.setdefault((heap, impl), []).append(ms)
    for (heap, impl), ms in results.items():
        per_process = ", ".join(f"{m:.1f}" for m in ms)
        print(f"heap {heap:<8} {impl:<17} ms per step: {per_process}")
    return results


if __name__ == "__main__":
    main()
