"""Timing helpers shared by the benchmark scripts: interleaved repeats, medians, machine info."""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from unittest import mock

import torch


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return cpu


# Caps on the instructions rnnkit's kernels and oneDNN use (a newer CPU measured as an older one)
ISA_CAPS = ("RNNKIT_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA")


def peak_rss_kib() -> int:
    """This process's peak resident set size, KiB. VmHWM belongs to this process image;
    ru_maxrss survives exec and would report the peak of a large parent that spawned it."""
    try:
        with open("/proc/self/status") as f:
            return int(next(line.split()[1] for line in f if line.startswith("VmHWM:")))
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS


def machine_description() -> str:
    caps = ", ".join(f"{name}={os.environ[name]}" for name in ISA_CAPS if name in os.environ)
    return (
        f"{cpu_model()}; {os.cpu_count()} cores; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); Python {platform.python_version()}"
        + (f"; instructions capped: {caps}" if caps else "")
    )


def package_version(name: str) -> str | None:
    """``module.__version__`` of an importable package, else None (import errors included)."""
    try:
        module = importlib.import_module(name)
    except Exception:  # an optional package may fail to import in many ways
        return None
    return str(getattr(module, "__version__", "unknown"))


# glibc told to keep freed memory (the steady state of a caching allocator): --heap warm
WARM_HEAP = {"MALLOC_MMAP_THRESHOLD_": str(1 << 40), "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}


def heap_environment(heap: str) -> dict[str, str]:
    """This process's environment for a child on ``heap``: "warm" with ``WARM_HEAP`` set,
    "default" with neither variable."""
    env = {k: v for k, v in os.environ.items() if k not in WARM_HEAP}
    return {**env, **WARM_HEAP} if heap == "warm" else env


def rerun_on_heap(module: str, heap: str, argv: Sequence[str] | None) -> bool:
    """If this process does not run ``heap`` (see :func:`heap_environment`), run ``python -m
    module`` with the same arguments in a process that does and return True (its output is the
    run's); else False. glibc reads these once, at start-up."""
    env = heap_environment(heap)
    if all(os.environ.get(k) == env.get(k) for k in WARM_HEAP):
        return False
    args = sys.argv[1:] if argv is None else list(argv)
    subprocess.run([sys.executable, "-m", module, *args], env=env, check=True)
    return True


def ab_parser(doc: str, repeats: int) -> argparse.ArgumentParser:
    """The options every heap-aware A/B script takes: --heap, --repeats, --quick; its
    description is the first line of ``doc`` (the script's docstring)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--heap", choices=("default", "warm"), default="default")
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, for the smoke test")
    return parser


def ab_start(module: str, args: argparse.Namespace, argv: Sequence[str] | None) -> bool:
    """Start an A/B run of ``python -m module``: False if it ran in a process on the other
    heap (:func:`rerun_on_heap`, nothing left to do), else True after printing the machine
    and the heap."""
    if rerun_on_heap(module, args.heap, argv):
        return False
    print(f"machine: {machine_description()}")
    threshold = os.environ.get("MALLOC_MMAP_THRESHOLD_", "unset")
    print(f"heap: {args.heap} (MALLOC_MMAP_THRESHOLD_={threshold})")
    return True


def patched(fn: Callable[[], object], target: object, **values: object) -> Callable[[], object]:
    """fn, run with ``target``'s attributes set to ``values`` for the call (restored after):
    how the A/B scripts force one side of a choice."""

    def run() -> object:
        with contextlib.ExitStack() as stack:
            for name, value in values.items():
                stack.enter_context(mock.patch.object(target, name, value))
            return fn()

    return run


def outputs_and_gradients(
    layer: torch.nn.Module, x: torch.Tensor, way: Callable[[Callable[[], object]], Callable]
) -> list[torch.Tensor]:
    """The layer's output on x and its parameters' gradients after one training step (forward,
    ``sum().backward()``) run through ``way`` (such as :func:`patched`'s wrapper)."""
    layer.zero_grad(set_to_none=True)
    found = []

    def run() -> None:
        y, _ = layer(x)
        y.sum().backward()
        found.append(y.detach().clone())

    way(run)()
    return [*found, *(p.grad.clone() for p in layer.parameters())]


def largest_relative_difference(
    tensors: Sequence[torch.Tensor], references: Sequence[torch.Tensor]
) -> float:
    """max over pairs of max|a - b| / max|b| (pairs of zeros count as 0)."""
    return max(
        ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()
        for a, b in zip(tensors, references, strict=True)
    )


def interleaved_times(
    candidates: dict[str, Callable[[], object]], repeats: int, warmup: int = 2
) -> dict[str, list[float]]:
    """Run every candidate once per round, ``repeats`` rounds; return each one's seconds per round.

    ``warmup`` rounds (every candidate once each) run first and are not timed. The order of the
    candidates reverses between rounds (ABBA), so none always runs first: any drift of the
    machine (frequency, other load, warm caches, the allocator) is spread over all of them.
    """
    gc.collect()
    order = list(candidates.items())
    for _ in range(warmup):
        order.reverse()
        for _, fn in order:
            fn()
    order = list(candidates.items())
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        order.reverse()
        for name, fn in order:
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def interleaved_medians(
    candidates: dict[str, Callable[[], object]], repeats: int, warmup: int = 2
) -> dict[str, float]:
    """Run every candidate once per round, ``repeats`` rounds, and return median seconds each.

    Interleaving spreads any drift of the machine (frequency, other load) over all candidates;
    the order alternates between rounds (see :func:`interleaved_times`).
    """
    times = interleaved_times(candidates, repeats, warmup)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _system_busy_seconds() -> float | None:
    """CPU-seconds every process has run since boot (Linux /proc/stat); None elsewhere."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        # cpu user nice system idle iowait irq softirq steal ...: everything but idle and iowait
        ticks = sum(int(fields[i]) for i in (1, 2, 3, 6, 7, 8))
        return ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _own_busy_seconds() -> float:
    """CPU-seconds of this process and its finished children."""
    try:
        import resource
    except ImportError:  # not on Unix: /proc/stat is missing too, so this is never used
        return 0.0
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


class OtherLoad:
    """How many cores other processes kept busy, on average, between ``start`` and ``stop``.

    Other load spoils timings (and a thread pool waiting on a preempted thread can slow a
    multi-threaded kernel many times over), so a run reports it next to its numbers.
    """

    def start(self) -> OtherLoad:
        self._wall, self._system, self._own = (
            time.perf_counter(), _system_busy_seconds(), _own_busy_seconds(),
        )  # fmt: skip
        return self

    def stop(self) -> float | None:
        """Average number of cores busy with other processes; None where unknown."""
        system = _system_busy_seconds()
        if system is None or self._system is None:
            return None
        wall = time.perf_counter() - self._wall
        others = (system - self._system) - (_own_busy_seconds() - self._own)
        return max(0.0, others / wall) if wall > 0 else None
