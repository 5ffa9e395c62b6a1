"""Lightning checkpoints as safetensors (no pickle), written atomically.

``SafetensorsCheckpointIO`` stores Lightning's whole checkpoint (weights, optimiser and scheduler
state, loop progress, callback state) with ``rnnkit.serialization.save_tree``; ``RunCheckpoint``
is Lightning's ModelCheckpoint writing ``best.safetensors`` and ``last.safetensors``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.fabric.plugins import CheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from ..serialization import load_tree, save_tree

__all__ = ["SafetensorsCheckpointIO", "RunCheckpoint"]


class SafetensorsCheckpointIO(CheckpointIO):
    """Lightning's checkpoint I/O with safetensors + JSON instead of torch.save."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        save_tree(path, checkpoint)

    def load_checkpoint(self, path: str | Path, map_location: Any = None, **_: Any) -> dict:
        return load_tree(path)

    def remove_checkpoint(self, path: str | Path) -> None:
        Path(path).unlink(missing_ok=True)


class RunCheckpoint(ModelCheckpoint):
    """``best.safetensors`` (by the monitored metric) and ``last.safetensors``, overwritten in
    place (atomically) rather than numbered."""

    FILE_EXTENSION = ".safetensors"
    CHECKPOINT_NAME_LAST = "last"

    def __init__(self, dirpath: Path, monitor: str, mode: str, every_n_steps: int | None) -> None:
        super().__init__(
            dirpath=dirpath,
            filename="best",
            monitor=monitor,
            mode=mode,
            save_last=True,
            save_top_k=1,
            auto_insert_metric_name=False,
            enable_version_counter=False,
            every_n_train_steps=every_n_steps,
        )
