"""Compiling rnnkit's C++ kernels at first use, and saying which path runs.

The sources in ``csrc/`` are built with ``torch.utils.cpp_extension.load`` into torch's
extension cache (``TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``) the first
time a layer needs them (about a minute on 2 cores), then loaded from the cache. Without a
compiler, or with ``RNNKIT_NO_EXTENSIONS=1``, or off the CPU, layers fall back to torch.nn's
kernels and rnnkit's Python time loop; :func:`backend` says which path is in use.
``RNNKIT_MAX_CPU_ISA`` (``avx512``, ``avx2`` or ``baseline``) caps the instructions the kernels
are built with, as oneDNN's ``ONEDNN_MAX_CPU_ISA`` does for its own: a build for an older CPU,
or this machine measured as one.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
from pathlib import Path
from types import ModuleType

import torch

logger = logging.getLogger("rnnkit")
SOURCES = Path(__file__).parent / "csrc"


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            return next(
                (set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")),
                set(),
            )
    except OSError:
        return set()


def _x86_cpu_flags() -> set[str]:
    """The CPU's flags on x86-64, none elsewhere (the ISA levels below are x86 ones)."""
    return _cpu_flags() if platform.machine() in ("x86_64", "AMD64") else set()


# x86 instruction sets the kernels are built for, oldest first: CPU flags each needs.
ISA_LEVELS = {
    "baseline": set(),
    "avx2": {"avx2", "fma"},
    "avx512": {"avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl"},
}


def max_cpu_isa() -> str:
    """The newest instruction set the kernels may use: ``RNNKIT_MAX_CPU_ISA`` if set (a name
    in ``ISA_LEVELS``, any case), else ``avx512``."""
    value = os.environ.get("RNNKIT_MAX_CPU_ISA", "avx512")
    if value.lower() not in ISA_LEVELS:
        raise ValueError(
            f"RNNKIT_MAX_CPU_ISA must be one of {', '.join(ISA_LEVELS)}; got {value!r}"
        )
    return value.lower()


def compiler_flags() -> list[str]:
    """-O3, OpenMP (ATen's parallel_for), the widest x86 vectors the CPU has (AVX2/FMA, and
    512-bit AVX-512 where present: the gate math's exp runs twice as many lanes) up to
    :func:`max_cpu_isa`, and the float semantics that let the gate math vectorise (about 3x)
    without changing results: no errno, no traps, no signed zeros. Not -ffinite-math-only: NaN
    must come out as NaN (tested).

    The flags are part of torch's extension build hash, so a cache shared by machines with
    different CPUs rebuilds instead of running instructions a CPU lacks."""
    flags = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-fno-signed-zeros"]
    cpu = _x86_cpu_flags()
    allowed = list(ISA_LEVELS)[: list(ISA_LEVELS).index(max_cpu_isa()) + 1]
    if "avx2" in allowed and ISA_LEVELS["avx2"] <= cpu:
        flags += ["-mavx2", "-mfma"]
    if "avx512" in allowed and ISA_LEVELS["avx512"] <= cpu:
        flags += ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl"]
        flags += ["-mprefer-vector-width=512"]
    return flags


@functools.cache
def load_extension(name: str) -> ModuleType | None:
    """Build (or load from cache) ``csrc/{name}.cpp``; None, logged once, if that fails."""
    if os.environ.get("RNNKIT_NO_EXTENSIONS") == "1":
        _failures[name] = "disabled by RNNKIT_NO_EXTENSIONS=1"
        return None
    from torch.utils import cpp_extension

    flags, isa = compiler_flags(), max_cpu_isa()  # a bad RNNKIT_MAX_CPU_ISA raises here
    try:
        return cpp_extension.load(
            # a capped build has a name of its own: both stay in the cache side by side
            name=f"rnnkit_{name}" + ("" if isa == "avx512" else f"_{isa}"),
            sources=[str(SOURCES / f"{name}.cpp")],
            extra_include_paths=[str(SOURCES)],
            # Headers are not part of torch's rebuild check: their hash in a define is.
            extra_cflags=[*flags, f"-DRNNKIT_HEADERS={_headers_hash()}"],
            extra_ldflags=["-fopenmp"],
            verbose=False,
        )
    except Exception as error:  # any build failure means: use the portable path
        lines = str(error).splitlines()
        detail = next(
            (line for line in lines if "error" in line.lower()), lines[0] if lines else ""
        )
        _failures[name] = f"{type(error).__name__}: {detail.strip()[:300]}"
        logger.warning(
            "rnnkit: C++ kernel %r unavailable, using the Python loop (%s)", name, _failures[name]
        )
        return None


_failures: dict[str, str] = {}


def _headers_hash() -> str:
    digest = hashlib.sha256()
    for header in sorted(SOURCES.glob("*.h")):
        digest.update(header.read_bytes())
    return digest.hexdigest()[:16]


CPU0_CACHES = Path("/sys/devices/system/cpu/cpu0/cache")


def l2_cache_bytes(default: int = 1 << 20, caches: Path = CPU0_CACHES) -> int:
    """The size of CPU 0's level-2 cache (per core on x86), from Linux's sysfs (``caches``:
    index*/level and index*/size, such as "512K"); ``default`` where it cannot be read."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    for index in sorted(caches.glob("index*")):
        try:
            if (index / "level").read_text().strip() != "2":
                continue
            size = (index / "size").read_text().strip().upper()
        except OSError:
            continue
        if size[:-1].isdigit() and size[-1] in units:
            return int(size[:-1]) * units[size[-1]]
        if size.isdigit():
            return int(size)
    return default


@functools.cache
def cpu_has_avx512() -> bool:
    """The CPU has the AVX-512 instructions of ``ISA_LEVELS["avx512"]`` (read once)."""
    return ISA_LEVELS["avx512"] <= _x86_cpu_flags()


def onednn_available() -> bool:
    """oneDNN (mkldnn) GEMMs callable on dense float32 CPU tensors in this torch build."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def backend() -> dict[str, str]:
    """Which implementation each fused kernel uses on the CPU, e.g. ``{"lstm": "C++ ..."}``;
    "stream" for one-step calls without autograd, and "plain layers" for which kernel plain
    RNN/LSTM/GRU configurations run, torch.nn's or rnnkit's.

    Building a kernel that has not been built yet happens here, as at first use.
    """
    from ..layers.torch_compat import GRU, LSTM, RNN
    from . import KERNELS
    from .gemm import PANEL_MAX_ROWS, panel_isa, panels_available, use_onednn

    report = {}
    big = "oneDNN" if use_onednn(torch.zeros(1)) else "ATen"
    step = big
    if panels_available(torch.empty(0)):
        step = f"rnnkit's {panel_isa()} panel kernel up to {PANEL_MAX_ROWS} rows, else {big}"
    gemm = f"recurrent GEMM: {step}; other GEMMs: {big} (float32)"
    flags = " ".join(compiler_flags())
    for name in KERNELS:
        if load_extension(name) is not None:
            report[name] = f"C++ time loop, {gemm}, flags {flags}"
        else:
            report[name] = f"Python time loop ({_failures.get(name, 'not built')})"
    if load_extension("stream") is not None:
        report["stream"] = (
            f"C++ step of the whole stack, panel products for B <= 4, above: {step}, flags {flags}"
        )
    else:
        report["stream"] = f"the layer's general path ({_failures.get('stream', 'not built')})"
    plain = "; ".join(f"{cls.__name__}: {cls.kernel_choice()}" for cls in (RNN, LSTM, GRU))
    report["plain layers"] = plain + " (rnnkit-only options and lengths=: rnnkit's)"
    return report
