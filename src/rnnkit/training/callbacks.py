"""Callbacks that report progress and keep a run safe when it is stopped."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import RichProgressBar

from ..serialization import save_tree

__all__ = ["ProgressBar", "ValidationPrinter", "JsonLinesLog", "SaveOnInterrupt"]


class ProgressBar(RichProgressBar):
    """Lightning's rich progress bar (steps, elapsed time, ETA) without the logger version."""

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if "/" not in k}


class ValidationPrinter(pl.Callback):
    """One line per validation: step, epoch and the validation metrics."""

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = {
            k: v for k, v in _scalars(trainer.callback_metrics).items() if k.startswith("val_")
        }
        text = "  ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()))
        print(
            f"step {trainer.global_step:>6}  epoch {trainer.current_epoch:>3}  {text}",
            file=sys.stderr,
            flush=True,
        )


class JsonLinesLog(pl.Callback):
    """Machine-readable progress on stdout: one JSON object per logged step and validation."""

    def __init__(self, every_n_steps: int) -> None:
        self.every_n_steps = max(1, every_n_steps)

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if trainer.is_global_zero and trainer.global_step % self.every_n_steps == 0:
            metrics = {
                k: v
                for k, v in _scalars(trainer.callback_metrics).items()
                if k.startswith("train_") or k == "grad_norm"
            }
            self._emit({"event": "train", "step": trainer.global_step, **metrics})

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero and not trainer.sanity_checking:
            metrics = {
                k: v for k, v in _scalars(trainer.callback_metrics).items() if k.startswith("val_")
            }
            self._emit(
                {
                    "event": "validation",
                    "step": trainer.global_step,
                    "epoch": trainer.current_epoch,
                    **metrics,
                }
            )

    @staticmethod
    def _emit(record: dict[str, Any]) -> None:
        print(json.dumps(record), flush=True)


class SaveOnInterrupt(pl.Callback):
    """On Ctrl-C / SIGTERM (or any exception), keep the weights reached so far in
    ``checkpoints/interrupted.safetensors``; ``last.safetensors``, the resume point, is left as
    it was."""

    def __init__(self, checkpoint_dir: Path) -> None:
        self.path = Path(checkpoint_dir) / "interrupted.safetensors"

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if not trainer.is_global_zero or not isinstance(exception, KeyboardInterrupt):
            return
        save_tree(self.path, {"state_dict": pl_module.state_dict(), "step": trainer.global_step})
        print(
            f"interrupted at step {trainer.global_step}: weights kept in {self.path}; "
            "`rnnkit train --resume RUN` continues from the last epoch checkpoint",
            file=sys.stderr,
            flush=True,
        )
