"""The kernels' build flags (rnnkit.kernels.build): the CPU's vectors, capped by
RNNKIT_MAX_CPU_ISA, and a capped build that runs and gives the reference's numbers."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rnnkit.kernels import build
from tests.helpers import require_kernel

ROOT = Path(__file__).resolve().parents[2]

AVX512_CPU = build.ISA_LEVELS["avx512"] | {"sse4_2"}
VECTOR_FLAGS = {
    "baseline": [],
    "avx2": ["-mavx2", "-mfma"],
    "avx512": ["-mavx2", "-mfma", "-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl",
               "-mprefer-vector-width=512"],
}  # fmt: skip


@pytest.fixture
def x86_cpu(monkeypatch):
    """An x86 machine whose CPU has the given flags: x86_cpu(flags)."""
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.delenv("RNNKIT_MAX_CPU_ISA", raising=False)

    def has(flags: set[str]) -> None:
        monkeypatch.setattr(build, "_cpu_flags", lambda: flags)

    return has


def vector_flags() -> list[str]:
    return [f for f in build.compiler_flags() if f.startswith("-m")]


def test_the_cpus_widest_vectors_by_default(x86_cpu):
    x86_cpu(AVX512_CPU)
    assert build.max_cpu_isa() == "avx512"
    assert vector_flags() == VECTOR_FLAGS["avx512"]
    x86_cpu({"avx2", "fma", "avx512f"})  # AVX-512 without the rest of its set: AVX2 only
    assert vector_flags() == VECTOR_FLAGS["avx2"]
    x86_cpu({"sse4_2"})
    assert vector_flags() == []


@pytest.mark.parametrize("isa", ["baseline", "avx2", "avx512", "AVX2"])
def test_max_cpu_isa_caps_the_flags(x86_cpu, monkeypatch, isa):
    x86_cpu(AVX512_CPU)
    monkeypatch.setenv("RNNKIT_MAX_CPU_ISA", isa)
    assert build.max_cpu_isa() == isa.lower()
    assert vector_flags() == VECTOR_FLAGS[isa.lower()]
    x86_cpu({"sse4_2"})  # a cap never adds what the CPU lacks
    assert vector_flags() == []


def test_a_bad_cap_is_an_error_not_a_silent_fallback(monkeypatch):
    monkeypatch.delenv("RNNKIT_NO_EXTENSIONS", raising=False)
    monkeypatch.setenv("RNNKIT_MAX_CPU_ISA", "avx10")
    message = "RNNKIT_MAX_CPU_ISA must be one of baseline, avx2, avx512; got 'avx10'"
    with pytest.raises(ValueError, match=message):
        build.compiler_flags()
    with pytest.raises(ValueError, match=message):  # load_extension's cache bypassed
        build.load_extension.__wrapped__("lstm")


def test_an_avx2_build_passes_the_panel_and_loop_tests():
    """A build capped at AVX2 (a CPU without AVX-512, this one measured as one) has its own
    panel kernel (16 columns per register block, 6 rows); the panel GEMM tests, the routes of
    the recurrent GEMM, and the LSTM loops' row splits and projection in the loop pass on it, in
    a process of their own. Needs an x86 CPU with AVX2 and FMA (there is no AVX2 build
    elsewhere) and the kernels switched on."""
    require_kernel("lstm")
    if platform.machine() not in ("x86_64", "AMD64") or not build.ISA_LEVELS["avx2"] <= (
        build._cpu_flags()
    ):
        pytest.skip("no AVX2 with FMA on this CPU: an AVX2 build cannot run here")
    code = textwrap.dedent(
        """
        import torch, rnnkit
        from rnnkit.kernels.build import load_extension
        ext = load_extension("lstm")
        assert ext is not None and "_avx2" in ext.__name__, ext
        assert ext.panel_gemm and ext.panel_isa == "avx2", ext.panel_isa
        report = rnnkit.backend()["lstm"]
        assert "AVX2 panel kernel" in report and "-mavx512f" not in report, report
        """
    )
    env = {**os.environ, "RNNKIT_MAX_CPU_ISA": "avx2"}
    build_check = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900,
        cwd=ROOT,
    )  # fmt: skip
    assert build_check.returncode == 0, build_check.stderr[-3000:]
    tests = [
        "tests/kernels/test_panel_gemm.py",
        "tests/kernels/test_fused_lstm.py::test_row_splits_give_the_numbers_of_shared_steps",
        "tests/kernels/test_fused_lstm.py::test_projection_in_the_loop_equals_one_gemm_before_it",
        "tests/kernels/test_fused_lstm.py::test_a_rows_outputs_do_not_depend_on_its_batch",
    ]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-o", "addopts=", "-q", "-p", "no:cacheprovider", *tests],
        env=env, capture_output=True, text=True, timeout=1800, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout, run.stdout[-500:]


@pytest.mark.parametrize(
    ("size", "expected"),
    [("512K", 512 << 10), ("1024K", 1 << 20), ("2M", 2 << 20), ("1048576", 1 << 20)],
)
def test_l2_cache_bytes_reads_the_level_2_entry(tmp_path, size, expected):
    """The loops' weight limit scales with it (LOOP_WEIGHT_BYTES): the level-2 entry is read,
    not the first one, in sysfs' units."""
    for index, (level, text) in enumerate([("1", "32K"), ("1", "32K"), ("2", size), ("3", "32M")]):
        entry = tmp_path / f"index{index}"
        entry.mkdir()
        (entry / "level").write_text(level + "\n")
        (entry / "size").write_text(text + "\n")
    assert build.l2_cache_bytes(caches=tmp_path) == expected


def test_l2_cache_bytes_falls_back_where_sysfs_says_nothing(tmp_path):
    assert build.l2_cache_bytes(123, caches=tmp_path / "missing") == 123
    (tmp_path / "index0").mkdir()
    (tmp_path / "index0" / "level").write_text("2\n")  # no size file
    assert build.l2_cache_bytes(123, caches=tmp_path) == 123
