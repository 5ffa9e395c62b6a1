"""A run survives being killed: atomic checkpoints, resume == uninterrupted, clean SIGTERM,
non-finite losses stopped without touching the last good checkpoint."""

import random
import signal
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file

import rnnkit.api
from rnnkit.serialization import load_tree
from rnnkit.training.metrics_log import read_metrics
from tests.training.conftest import ROOT, rnnkit_cli, tiny_overrides


def _command(run_dir, overrides):
    sets = [a for kv in overrides for a in ("--set", kv)]
    return [sys.executable, "-m", "rnnkit", "train", "--quiet", "--run-dir", str(run_dir), *sets]


def _start(run_dir, overrides):
    return subprocess.Popen(
        _command(run_dir, overrides),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(predicate, process, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _epoch_of(path):
    try:
        return int(load_tree(path)["epoch"])
    except Exception:  # not written yet
        return -1


def test_resume_after_a_kill_equals_the_uninterrupted_run(tiny_text, tmp_path):
    overrides = tiny_overrides(tiny_text, "train.max_epochs=4")
    whole = subprocess.run(
        _command(tmp_path / "whole", overrides),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert whole.returncode == 0, whole.stderr

    run = tmp_path / "killed"
    process = _start(run, overrides)
    last = run / "checkpoints" / "last.safetensors"
    _wait_for(lambda: _epoch_of(last) >= 0, process)
    time.sleep(random.uniform(0.0, 0.5))
    process.kill()
    process.communicate()
    assert _epoch_of(last) < 3, "the run finished before it could be killed"
    resumed = rnnkit_cli("train", "--quiet", "--resume", run)
    assert resumed.returncode == 0, resumed.stderr

    assert read_metrics(run / "metrics.csv") == read_metrics(tmp_path / "whole" / "metrics.csv")
    a = load_file(run / "model" / "model.safetensors")
    b = load_file(tmp_path / "whole" / "model" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_killing_during_checkpoint_writes_leaves_a_loadable_checkpoint(tiny_text, tmp_path):
    overrides = tiny_overrides(
        tiny_text,
        "train.max_epochs=50",
        "train.checkpoint_every_n_steps=1",
        "diagnostics.every_n_steps=0",
    )
    rng = random.Random(0)
    for attempt in range(4):
        run = tmp_path / f"run{attempt}"
        process = _start(run, overrides)
        last = run / "checkpoints" / "last.safetensors"
        _wait_for(last.exists, process)
        time.sleep(rng.uniform(0.0, 1.0))  # a checkpoint is written every step: kill mid-write
        process.kill()
        process.communicate()
        checkpoint = load_tree(last)
        assert checkpoint["global_step"] >= 1
        assert rnnkit.api.load(last).model is not None


def test_sigterm_saves_and_exits_cleanly(tiny_text, tmp_path):
    run = tmp_path / "run"
    process = _start(run, tiny_overrides(tiny_text, "train.max_epochs=100"))
    _wait_for(lambda: _epoch_of(run / "checkpoints" / "last.safetensors") >= 0, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "interrupted at step" in stderr and "Traceback" not in stderr
    interrupted = load_tree(run / "checkpoints" / "interrupted.safetensors")
    assert interrupted["step"] > 0
    assert _epoch_of(run / "checkpoints" / "last.safetensors") >= 0


def test_a_non_finite_loss_keeps_the_last_good_checkpoint(tiny_text, tmp_path):
    run = tmp_path / "run"
    good = rnnkit_cli(
        "train",
        "--quiet",
        "--run-dir",
        run,
        *[a for kv in tiny_overrides(tiny_text, "train.max_epochs=1") for a in ("--set", kv)],
    )
    assert good.returncode == 0, good.stderr
    before = (run / "checkpoints" / "last.safetensors").read_bytes()
    bad = rnnkit_cli(
        "train",
        "--quiet",
        "--resume",
        run,
        "--set",
        "train.max_epochs=3",
        "--set",
        "optim.lr=1e30",
        "--set",
        "optim.clip=none",
    )
    assert bad.returncode == 1
    assert "at step" in bad.stderr and "last good checkpoint is kept" in bad.stderr
    assert (run / "checkpoints" / "last.safetensors").read_bytes() == before
