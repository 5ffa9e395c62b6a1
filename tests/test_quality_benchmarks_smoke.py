"""Smoke test of the quality benchmarks (benchmarks/quality_*.py): each runs end to end in its
--quick mode (a few steps, two evaluation batches) and records nothing. The figures themselves
come from full runs (README, Results)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["shakespeare", "ptb", "imdb", "imdb_transfer", "ud"])
def test_quality_script_runs_quick(name, tmp_path):
    results = ROOT / "benchmarks" / "results" / "quality.csv"
    before = results.read_bytes() if results.exists() else None
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.quality_{name}", "--quick", "--run-dir",
         str(tmp_path / "run")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for field in ("task", "metric", "value", "cpu", "torch", "anchor"):
        assert f"{field}:" in done.stdout
    assert (results.read_bytes() if results.exists() else None) == before
