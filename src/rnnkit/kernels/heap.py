"""Which heap this process allocates from, as far as it decides which LSTM kernel trains faster.

torch.nn's LSTM training (oneDNN) allocates large buffers on every call. glibc's malloc, with
its default settings, hands blocks above its mmap threshold (at most 32 MiB) back to the system
on free and returns freed memory at the top of the heap, so those buffers come back as fresh
pages and every call pays page faults; rnnkit's kernels reuse their buffers and do not. A
caching allocator (jemalloc, tcmalloc, mimalloc) or glibc told to keep freed memory removes
that cost for torch.nn too. rnnkit's kernel is then still the faster where its panel kernel
runs (AVX-512 or AVX2) and each layer's weights fit ``LOOP_WEIGHT_BYTES`` (8 L2 caches), by
less (``python -m benchmarks.sweep_kernels``, ``benchmarks.heap_lstm``); elsewhere torch.nn's
stays (:class:`rnnkit.LSTM`).
"""

from __future__ import annotations

import os
import platform

ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc", "hoard", "snmalloc")
GLIBC_MALLOC_VARIABLES = (
    "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_",
)  # fmt: skip


def glibc_default_heap() -> bool:
    """True when the process runs glibc's malloc with its default thresholds: Linux with glibc,
    no other allocator preloaded (``LD_PRELOAD``), and neither the ``MALLOC_*_`` variables nor
    ``GLIBC_TUNABLES`` changing malloc. Read from the environment the process started with
    (a program that calls ``mallopt`` itself is not seen)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    preload = os.environ.get("LD_PRELOAD", "").lower()
    if any(name in preload for name in ALLOCATORS):
        return False
    if any(name in os.environ for name in GLIBC_MALLOC_VARIABLES):
        return False
    return "glibc.malloc." not in os.environ.get("GLIBC_TUNABLES", "")
