"""Optimiser and learning-rate schedule from the ``optim`` section of a config."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..config import OptimConfig

__all__ = ["make_optimizers"]


def make_optimizers(model: nn.Module, config: OptimConfig, max_epochs: int) -> dict[str, Any]:
    """Lightning's ``configure_optimizers`` answer: the optimiser and, if any, its scheduler.

    Schedulers step once per epoch; ``plateau`` watches ``val_loss``.
    """
    parameters = [p for p in model.parameters() if p.requires_grad]
    if config.name == "adamw":
        optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.SGD(
            parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    if config.scheduler == "none":
        return {"optimizer": optimizer}
    if config.scheduler == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(max_epochs, 1))
    elif config.scheduler == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, config.gamma)
    else:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=config.gamma, patience=config.patience
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"},
        }
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
