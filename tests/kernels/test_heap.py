"""Which heap the process runs on (rnnkit.kernels.heap), as the LSTM layer reads it."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from rnnkit.kernels import heap


@pytest.fixture
def linux_glibc(monkeypatch):
    """A Linux/glibc process with none of the variables that change malloc."""
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(platform, "libc_ver", lambda *a, **k: ("glibc", "2.36"))
    for name in (*heap.GLIBC_MALLOC_VARIABLES, "LD_PRELOAD", "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_default_glibc_heap(linux_glibc):
    assert heap.glibc_default_heap()
    linux_glibc.setenv("GLIBC_TUNABLES", "glibc.cpu.hwcaps=-AVX512F")  # not about malloc
    assert heap.glibc_default_heap()


@pytest.mark.parametrize(
    "name,value",
    [
        ("MALLOC_MMAP_THRESHOLD_", "1099511627776"),
        ("MALLOC_TRIM_THRESHOLD_", "1099511627776"),
        ("MALLOC_TOP_PAD_", "67108864"),
        ("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"),
        ("LD_PRELOAD", "/opt/lib/libtcmalloc_minimal.so.4:/opt/lib/libfoo.so"),
        ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1000000000"),
    ],
)
def test_a_heap_that_keeps_memory_is_recognised(linux_glibc, name, value):
    linux_glibc.setenv(name, value)
    assert not heap.glibc_default_heap()


def test_other_platforms_are_not_glibc(linux_glibc):
    linux_glibc.setattr(platform, "system", lambda: "Darwin")
    assert not heap.glibc_default_heap()
    linux_glibc.setattr(platform, "system", lambda: "Linux")
    linux_glibc.setattr(platform, "libc_ver", lambda *a, **k: ("", ""))  # musl
    assert not heap.glibc_default_heap()


def lstm_heap_in_a_fresh_process(**env: str) -> str:
    changes_malloc = (*heap.GLIBC_MALLOC_VARIABLES, "LD_PRELOAD", "GLIBC_TUNABLES")
    base = {k: v for k, v in os.environ.items() if k not in changes_malloc}
    code = "import rnnkit; print(rnnkit.LSTM.default_heap)"
    result = subprocess.run(
        [sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return result.stdout.strip()


def test_the_lstm_reads_the_heap_of_a_fresh_process():
    """In fresh processes: a default glibc heap, then one that keeps freed memory; off glibc,
    where no heap is recognised, never the default one. (Which kernel each heap trains with:
    tests/kernels/test_fused_lstm.py.)"""
    on_glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert lstm_heap_in_a_fresh_process() == str(on_glibc)
    kept = lstm_heap_in_a_fresh_process(MALLOC_MMAP_THRESHOLD_="1099511627776")
    assert kept == "False"
