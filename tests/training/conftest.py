"""Tiny runs for the workflow tests: a few thousand characters (the ``tiny_text`` fixture),
a few seconds each."""

import subprocess
import sys
from pathlib import Path

from rnnkit.config import load_config
from rnnkit.training.engine import train

ROOT = Path(__file__).resolve().parents[2]


def tiny_overrides(text: Path, *extra: str) -> list[str]:
    """A char LM small enough to train in seconds: ~40 steps per epoch."""
    return [
        "data.dataset=file",
        f"data.path={text}",
        "model.hidden_size=32",
        "model.embedding_dim=16",
        "model.dropout=0.0",
        "train.batch_size=8",
        "train.bptt=16",
        "train.max_epochs=2",
        "train.max_minutes=null",
        "train.val_every_n_steps=null",
        "train.limit_val_batches=null",
        "diagnostics.every_n_steps=10",
        "sample.max_tokens=20",
        "sample.prompt=ROMEO:",
        *extra,
    ]


def train_tiny(text: Path, run_dir: Path, *extra: str, **kwargs):
    return train(
        load_config(overrides=tiny_overrides(text, *extra)), run_dir=run_dir, quiet=True, **kwargs
    )


def rnnkit_cli(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run the real command line (``python -m rnnkit``) in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "rnnkit", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        **kwargs,
    )
