"""Optimisers, schedules, clipping, early stopping and bf16 through the real training loop."""

import lightning.pytorch as pl
import pytest
import torch
from safetensors.torch import load_file

from rnnkit.config import load_config
from rnnkit.data.prepare import prepare_data
from rnnkit.models import build_model
from rnnkit.training.metrics_log import read_metrics
from rnnkit.training.optim import make_optimizers
from tests.training.conftest import tiny_overrides, train_tiny


def _lrs(scheduler_config, epochs):
    model = torch.nn.Linear(2, 2)
    config = load_config(overrides=[f"optim.{k}={v}" for k, v in scheduler_config.items()]).optim
    answer = make_optimizers(model, config, max_epochs=epochs)
    optimizer, scheduler = answer["optimizer"], answer["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(1.0)  # never improves
        else:
            scheduler.step()
    return lrs


def test_schedules():
    assert _lrs({"lr": 1.0, "scheduler": "step", "step_size": 2, "gamma": 0.1}, 5) == pytest.approx(
        [1.0, 1.0, 0.1, 0.1, 0.01]
    )
    assert _lrs({"lr": 1.0, "scheduler": "cosine"}, 3) == pytest.approx([1.0, 0.75, 0.25])
    assert _lrs(
        {"lr": 1.0, "scheduler": "plateau", "patience": 0, "gamma": 0.5}, 3
    ) == pytest.approx([1.0, 1.0, 0.5])


def test_sgd_with_momentum():
    answer = make_optimizers(
        torch.nn.Linear(2, 2),
        load_config(overrides=["optim.name=sgd", "optim.momentum=0.7"]).optim,
        1,
    )
    assert isinstance(answer["optimizer"], torch.optim.SGD)
    assert answer["optimizer"].param_groups[0]["momentum"] == 0.7


def test_clipping_by_value_bounds_every_update(tiny_text, tmp_path):
    extra = (
        "optim.name=sgd",
        "optim.momentum=0.0",
        "optim.weight_decay=0",
        "optim.lr=1.0",
        "optim.clip=value",
        "optim.clip_value=0.001",
        "train.max_steps=1",
        "diagnostics.every_n_steps=0",
    )
    result = train_tiny(tiny_text, tmp_path / "run", *extra)
    config = load_config(overrides=tiny_overrides(tiny_text, *extra))
    pl.seed_everything(config.train.seed, verbose=False)
    data = prepare_data(config)
    initial = build_model(config.task, config.model, data.tokenizer.vocab_size).state_dict()
    trained = load_file(result.run_dir / "model" / "model.safetensors")
    changes = {k: float((trained[k] - initial[k]).abs().max()) for k in initial}
    assert max(changes.values()) <= 0.001 + 1e-7
    assert max(changes.values()) > 0.0009  # the pre-clip gradients were larger than the cap
    grad_norms = [
        r["grad_norm"] for r in read_metrics(result.run_dir / "metrics.csv") if "grad_norm" in r
    ]
    assert grad_norms == [] or grad_norms[0] > 0.001


def test_early_stopping_ends_the_run(tiny_text, tmp_path):
    # mode=max on a falling loss: no epoch ever improves on the first, so patience 1 stops at 2
    result = train_tiny(
        tiny_text,
        tmp_path / "run",
        "train.max_epochs=10",
        "train.early_stopping=true",
        "train.patience=1",
        "train.mode=max",
    )
    epochs = [r["epoch"] for r in read_metrics(result.run_dir / "metrics.csv") if "val_loss" in r]
    assert epochs == [0.0, 1.0]


def test_bf16_autocast_trains(tiny_text, tmp_path):
    result = train_tiny(tiny_text, tmp_path / "run", "train.precision=bf16", "train.max_epochs=1")
    assert 0 < result.metrics["val_loss"] < 4.5
