"""Quality benchmarks: train a config on its full training split, score the standard split,
print the figure beside its published anchor, and append a row to
``benchmarks/results/quality.csv``.

Each ``benchmarks/quality_*.py`` is one row of the issue's table; run it on an idle machine
(``python -m benchmarks.quality_shakespeare``). The data come from ``RNNKIT_DATA``, by default
``../shared/data`` beside the project when it exists. ``--quick`` trains for a few steps only
(a smoke test of the script; nothing is written).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from rnnkit.api import load
from rnnkit.config import load_config
from rnnkit.training.engine import train

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"  # the datasets beside the project on these machines
RESULTS = ROOT / "benchmarks" / "results" / "quality.csv"
COLUMNS = ["date", "task", "metric", "value", "split", "budget_minutes", "train_minutes",
           "wall_minutes", "threads", "cpu", "torch", "commit", "config", "anchor"]  # fmt: skip


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_quality(
    task: str,
    config_path: str,
    metric: str,
    split: str,
    anchor: str,
    pretrain: str | None = None,
    fixed: tuple[str, ...] = (),
) -> dict:
    """Train ``config_path``, score ``metric`` on ``split``, print and record one row.

    ``pretrain`` names a language-model config trained first; its run starts the model
    (``model.init_from``), and the budget and training time of the row cover both runs.
    ``fixed`` are overrides that belong to this benchmark row (recorded with it).
    """
    parser = argparse.ArgumentParser(description=f"quality benchmark: {task}")
    parser.add_argument("--quick", action="store_true", help="a few steps only; nothing recorded")
    parser.add_argument("--run-dir", type=Path, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, recorded in the results row")  # fmt: skip
    args = parser.parse_args()
    if "RNNKIT_DATA" not in os.environ and SHARED_DATA.is_dir():
        os.environ["RNNKIT_DATA"] = str(SHARED_DATA)
    quick = ["train.max_steps=3", "train.max_epochs=1", "train.limit_val_batches=2",
             "train.max_minutes=null", "data.limit_train=64", "data.max_vocab=2000"]  # fmt: skip
    overrides = (quick if args.quick else []) + list(fixed) + args.set
    started = time.perf_counter()
    budget = 0.0
    if pretrain is not None:
        pretrain_config = load_config(ROOT / pretrain, quick if args.quick else [])
        pretrain_dir = args.run_dir.with_name(f"{args.run_dir.name}-lm") if args.run_dir else None
        pretrained = train(pretrain_config, run_dir=pretrain_dir, quiet=args.quick)
        print(f"pretrained {pretrain} in {(time.perf_counter() - started) / 60:.1f} min: "
              f"{pretrained.run_dir}")  # fmt: skip
        overrides.append(f"model.init_from={pretrained.run_dir}")
        budget += pretrain_config.train.max_minutes or 0.0
    config = load_config(ROOT / config_path, overrides)
    budget += config.train.max_minutes or 0.0
    result = train(config, run_dir=args.run_dir, quiet=args.quick)
    trained_at = time.perf_counter()
    metrics = load(result.run_dir).evaluate(split, limit_batches=2 if args.quick else None)
    finished = time.perf_counter()
    row = {
        "date": datetime.date.today().isoformat(),
        "task": task,
        "metric": metric,
        "value": f"{metrics[f'{split}_{metric}']:.4f}",
        "split": split,
        "budget_minutes": budget or None,
        "train_minutes": f"{(trained_at - started) / 60:.1f}",
        "wall_minutes": f"{(finished - started) / 60:.1f}",
        "threads": torch.get_num_threads(),
        "cpu": f"{_cpu()} ({os.cpu_count()} cores)",
        "torch": torch.__version__,
        "commit": _commit(),
        "config": " ".join(
            ([f"{pretrain} then"] if pretrain else [])
            + [config_path, *(f"--set {o}" for o in [*fixed, *args.set])]
        ),
        "anchor": anchor,
    }
    print("\n".join(f"{k:>15}: {v}" for k, v in row.items()))
    print(f"{'all metrics':>15}: {metrics}")
    print(f"{'run directory':>15}: {result.run_dir}")
    if not args.quick:
        new = not RESULTS.exists()
        with RESULTS.open("a", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow(row)
    return row
