"""The human side of a run directory: PNG plots and ``report.md``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .metrics_log import read_metrics  # noqa: E402

__all__ = ["write_plots", "write_report"]


def _series(rows: list[dict[str, float]], key: str) -> tuple[list[float], list[float]]:
    points = [(r["step"], r[key]) for r in rows if key in r and "step" in r]
    return [p[0] for p in points], [p[1] for p in points]


def _plot_loss(rows: list[dict[str, float]], path: Path) -> bool:
    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = False
    for key, style in (("train_loss", "-"), ("val_loss", "o-")):
        steps, values = _series(rows, key)
        if steps:
            ax.plot(steps, values, style, label=key, markersize=3)
            drawn = True
    if drawn:
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    plt.close(fig)
    return drawn


def _plot_metric(rows: list[dict[str, float]], path: Path) -> bool:
    keys = [k for k in ("val_acc", "val_ppl") if any(k in r for r in rows)]
    if not keys:
        return False
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.5), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        steps, values = _series(rows, key)
        ax.plot(steps, values, "o-", markersize=3)
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _plot_grad_norms(rows: list[dict[str, float]], path: Path) -> bool:
    keys = sorted({k for r in rows for k in r if k.startswith("grad_norm")})
    if not keys:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in keys:
        steps, values = _series(rows, key)
        ax.plot(steps, values, label=key, linewidth=2 if key == "grad_norm" else 1)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("gradient norm (before clipping)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _plot_gradient_flow(csv_path: Path, path: Path) -> bool:
    if not csv_path.exists():
        return False
    with csv_path.open(newline="") as file:
        rows = [
            (int(r["step"]), int(r["layer"]), int(r["steps_back"]), float(r["norm"]))
            for r in csv.DictReader(file)
        ]
    if not rows:
        return False
    layers = sorted({r[1] for r in rows})
    steps = sorted({r[0] for r in rows})
    depth = max(r[2] for r in rows) + 1
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    top = layers[-1]
    grid = [[float("nan")] * depth for _ in steps]
    last = {}
    for step, layer, back, norm in rows:
        if layer == top:
            grid[steps.index(step)][back] = norm
        if step == steps[-1]:
            last.setdefault(layer, [float("nan")] * depth)[back] = norm
    values = np.array(grid)
    reference = values[:, :1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log10(np.clip(values / reference, 1e-12, None))
    image = axes[0].imshow(
        ratio,
        aspect="auto",
        origin="lower",
        cmap="viridis",
        extent=(0, depth - 1, steps[0], steps[-1] if len(steps) > 1 else steps[0] + 1),
    )
    fig.colorbar(image, ax=axes[0], label="log10 ||dL/dh_t|| / ||dL/dh_T||")
    axes[0].set_xlabel("steps back from the loss (T - t)")
    axes[0].set_ylabel("training step")
    axes[0].set_title(f"gradient flow, top layer ({top})")
    for layer, curve in sorted(last.items()):
        axes[1].plot(range(depth), curve, label=f"layer {layer}")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("steps back from the loss (T - t)")
    axes[1].set_ylabel("||d loss_T / d h_t||")
    axes[1].set_title(f"at training step {steps[-1]}")
    axes[1].legend()
    axes[1].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write_plots(run_dir: Path) -> list[Path]:
    """Draw the run's plots into ``run_dir/plots``; returns the files written."""
    run_dir = Path(run_dir)
    rows = read_metrics(run_dir / "metrics.csv")
    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    written = []
    for name, draw in (
        ("loss.png", _plot_loss),
        ("metrics.png", _plot_metric),
        ("grad_norm.png", _plot_grad_norms),
    ):
        if draw(rows, plots / name):
            written.append(plots / name)
    flow = run_dir / "diagnostics" / "hidden_grad_norms.csv"
    if _plot_gradient_flow(flow, plots / "gradient_flow.png"):
        written.append(plots / "gradient_flow.png")
    return written


def write_report(run_dir: Path, summary: dict, sample: str | None = None) -> Path:
    """``report.md``: final metrics, the run's key settings, warnings and the plots."""
    run_dir = Path(run_dir)
    lines = [f"# rnnkit run `{run_dir.name}`", ""]
    lines += ["| metric | value |", "|---|---|"]
    lines += [
        f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
        for k, v in summary.items()
    ]
    events = run_dir / "diagnostics" / "events.jsonl"
    if events.exists():
        entries = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
        lines += ["", f"## Gradient warnings ({len(entries)})", ""]
        lines += [f"- step {e['step']}: {e.get('message', e['kind'])}" for e in entries[:20]]
    if sample is not None:
        lines += ["", "## Sample", "", "```", sample, "```"]
    plots = sorted((run_dir / "plots").glob("*.png")) if (run_dir / "plots").exists() else []
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{p.stem}](plots/{p.name})" for p in plots]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
