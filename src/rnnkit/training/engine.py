"""``train(config)``: build the data, model and task, run Lightning's Trainer, fill the run
directory.

A run directory holds: ``config.yaml`` (the resolved config), ``metrics.csv``, ``tensorboard/``,
``checkpoints/{best,last}.safetensors`` (resumable, safetensors + JSON), ``model/`` (the bundle
``rnnkit.load`` reads), ``diagnostics/``, ``plots/*.png`` and ``report.md``.
"""

from __future__ import annotations

import datetime
import logging
import os
import signal
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import torch
import yaml
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor
from lightning.pytorch.loggers import TensorBoardLogger

from ..api import generate_text
from ..bundle import Bundle, load_bundle, read_description, save_bundle
from ..config import Config, ConfigError, config_to_dict
from ..data.prepare import prepare_data
from ..models import build_model
from ..models.transfer import copy_encoder
from ..serialization import load_tree
from .callbacks import JsonLinesLog, ProgressBar, SaveOnInterrupt, ValidationPrinter
from .checkpointing import RunCheckpoint, SafetensorsCheckpointIO
from .diagnostics import GradientDiagnostics
from .metrics_log import MetricsCSV
from .report import write_plots, write_report
from .tasks import make_task

__all__ = ["TrainResult", "train", "new_run_dir", "RUN_DIR_ENV"]

RUN_DIR_ENV = "RNNKIT_RUN_DIR"

# Lightning's advice that does not apply: rnnkit's batches are tensors already in memory.
_QUIET_LIGHTNING = [
    r".*does not have many workers.*",
    r".*The number of training batches \(\d+\) is smaller than the logging interval.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
    r"Checkpoint directory .* exists and is not empty",  # resuming a run
    # validation totals are summed across processes before they are logged
    r"It is recommended to use `self.log\('(val|test)_",
    # a step or time budget that ends before the first validation: the final weights are kept
    r".*could not find the monitored key in the returned metrics",
]


@dataclass
class TrainResult:
    """Where the run lives and how it ended."""

    run_dir: Path
    metrics: dict[str, float]
    sample: str | None = None


def new_run_dir(config: Config, root: str | Path = "runs") -> Path:
    """``root/<name or task-dataset>-<timestamp>``."""
    name = config.name or f"{config.data.dataset}-{config.task}"
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(root) / f"{name}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path(root) / f"{name}-{stamp}-{suffix}"
    return path


def _is_main_process() -> bool:
    """False in the other processes of a distributed run (started by Lightning's launcher, by
    torchrun, or by hand on another node); only the main process writes the run directory."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"]) == 0
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


def _resolve_run_dir(config: Config, run_dir: Path | None, resume: bool, main: bool) -> Path:
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if not main or (distributed and run_dir is None):
        given = run_dir or os.environ.get(RUN_DIR_ENV)
        if given is None:
            raise ConfigError(
                "in a distributed run started by torchrun or by hand, pass --run-dir (the same "
                "path in every process)"
            )
        return Path(given)
    if resume:
        if run_dir is None or not (Path(run_dir) / "checkpoints" / "last.safetensors").exists():
            raise ConfigError(
                f"--resume {run_dir}: expected a run directory with checkpoints/last.safetensors"
            )
        return Path(run_dir)
    if run_dir is None:
        return new_run_dir(config)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(
            f"run directory {run_dir} exists and is not empty; pass --resume to "
            "continue it or choose another --run-dir"
        )
    return run_dir


def _check_pretraining_split(config: Config, pretrained: Config) -> None:
    """A language model pretrained on the same dataset must not have read this run's
    validation examples: the split settings that carve validation from train must agree."""
    if config.data.dataset != pretrained.data.dataset or config.data.dataset == "file" and \
            config.data.path != pretrained.data.path:  # fmt: skip
        return
    mine = (config.train.seed, config.data.val_fraction, config.data.test_fraction)
    theirs = (pretrained.train.seed, pretrained.data.val_fraction, pretrained.data.test_fraction)
    if mine != theirs:
        raise ConfigError(
            "model.init_from: the language model split the same data with (train.seed, "
            f"data.val_fraction, data.test_fraction) = {theirs}, this run with {mine}; its "
            "training text would hold this run's validation examples"
        )


def _trainer(config: Config, run_dir: Path, callbacks: list, loggers: list, quiet: bool):
    train = config.train
    world = train.devices * train.num_nodes
    return pl.Trainer(
        accelerator=train.accelerator,
        devices=train.devices,
        num_nodes=train.num_nodes,
        strategy="ddp" if world > 1 else "auto",
        precision="bf16-mixed" if train.precision == "bf16" else "32-true",
        max_epochs=train.max_epochs,
        max_steps=train.max_steps,
        max_time=None
        if train.max_minutes is None
        else datetime.timedelta(minutes=train.max_minutes),
        val_check_interval=train.val_every_n_steps,
        check_val_every_n_epoch=None if train.val_every_n_steps else 1,
        limit_val_batches=train.limit_val_batches,
        gradient_clip_val=None if config.optim.clip == "none" else config.optim.clip_value,
        gradient_clip_algorithm=None if config.optim.clip == "none" else config.optim.clip,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        enable_progress_bar=not quiet,
        enable_model_summary=False,
        log_every_n_steps=train.log_every_n_steps,
        default_root_dir=run_dir,
        callbacks=callbacks,
        logger=loggers,
        plugins=[SafetensorsCheckpointIO()],
    )


def _raise_keyboard_interrupt(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt(f"signal {signum}")


def train(
    config: Config,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    quiet: bool = False,
    json_lines: bool = False,
    callbacks: list[pl.Callback] | None = None,
) -> TrainResult:
    """Train ``config`` into a run directory (a new one, or ``run_dir`` with ``resume``).

    ``callbacks`` are added to rnnkit's own (the tuner adds its pruning callback this way).
    """
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    main = _is_main_process()
    run_dir = _resolve_run_dir(config, None if run_dir is None else Path(run_dir), resume, main)
    os.environ[RUN_DIR_ENV] = str(run_dir.resolve())  # for the processes Lightning launches
    checkpoints = run_dir / "checkpoints"
    last = checkpoints / "last.safetensors"

    pl.seed_everything(config.train.seed, workers=True, verbose=False)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    tokenizer, labels, characters = None, None, None
    pretrained = None
    if resume:  # encode exactly as the run did (other processes fit the same tokenizer)
        _, tokenizer, labels, characters = read_description(run_dir / "model" / "model.json")
    elif config.model.init_from is not None:
        pretrained = load_bundle(config.model.init_from)
        if pretrained.config.task != "language_model":
            raise ConfigError(
                f"model.init_from: expected a language-model run, got a "
                f"{pretrained.config.task} run ({config.model.init_from})"
            )
        _check_pretraining_split(config, pretrained.config)
        tokenizer = pretrained.tokenizer  # the pretrained embedding's vocabulary
    data = prepare_data(config, tokenizer, labels, characters)
    num_chars = data.characters.vocab_size if data.characters is not None else 0
    model = build_model(
        config.task, config.model, data.tokenizer.vocab_size, len(data.labels or []), num_chars
    )
    if pretrained is not None:
        copy_encoder(model, pretrained.model)
    task = make_task(config, model, data)
    resumed = load_tree(last) if resume else None
    if resumed is not None:
        # Compared with the checkpoint itself, so every process and every later resume agrees.
        group = resumed["optimizer_states"][0]["param_groups"][0]
        if group.get("initial_lr", group["lr"]) != config.optim.lr:
            task.lr_override = config.optim.lr
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(
            yaml.safe_dump(config_to_dict(config), sort_keys=False)
        )
        if not resume:
            bundle = Bundle(config, model, data.tokenizer, data.labels, data.characters)
            save_bundle(run_dir / "model", bundle, weights=False)

    resume_step = int(resumed["global_step"]) if resumed is not None else None
    train_config = config.train
    diagnostics = GradientDiagnostics(config.diagnostics, run_dir)
    callbacks = [
        *(callbacks or []),
        RunCheckpoint(
            checkpoints,
            train_config.monitor,
            train_config.mode,
            train_config.checkpoint_every_n_steps,
        ),
        diagnostics,
        SaveOnInterrupt(checkpoints),
        LearningRateMonitor(logging_interval="epoch"),
    ]
    if train_config.early_stopping:
        callbacks.append(
            EarlyStopping(
                train_config.monitor, patience=train_config.patience, mode=train_config.mode
            )
        )
    if json_lines:
        callbacks.append(JsonLinesLog(train_config.log_every_n_steps))
    elif not quiet:
        callbacks += [ValidationPrinter(), ProgressBar()]
    loggers = [
        MetricsCSV(run_dir, resume_step=resume_step),
        TensorBoardLogger(run_dir, name="", version="tensorboard", default_hp_metric=False),
    ]
    trainer = _trainer(config, run_dir, callbacks, loggers, quiet or json_lines)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    with warnings.catch_warnings():
        for pattern in _QUIET_LIGHTNING:
            warnings.filterwarnings("ignore", message=pattern)
        trainer.fit(task, ckpt_path=last if resume else None)
    if not trainer.is_global_zero:
        return TrainResult(run_dir, {})
    return _finish(run_dir, config, task, data, quiet=quiet or json_lines)


def _finish(run_dir: Path, config: Config, task, data, *, quiet: bool) -> TrainResult:
    """Best weights into the bundle, final metrics on the whole validation split, plots,
    report, and a sample for language models."""
    best = run_dir / "checkpoints" / "best.safetensors"
    if best.exists():
        state = load_tree(best)["state_dict"]
        task.load_state_dict(state)
    bundle = Bundle(config, task.model, data.tokenizer, data.labels, data.characters)
    save_bundle(run_dir / "model", bundle)
    metrics = task.evaluate("val") if data.val is not None and len(data.val) else {}
    sample = None
    if config.task == "language_model":
        sample = generate_text(
            bundle,
            config.sample.prompt,
            config.sample.max_tokens,
            temperature=config.sample.temperature,
            top_k=config.sample.top_k,
            top_p=config.sample.top_p,
            seed=config.train.seed,
        )
    write_plots(run_dir)
    write_report(run_dir, metrics, None if sample is None else config.sample.prompt + sample)
    if not quiet:
        text = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        print(f"final (best checkpoint, whole validation split): {text}", file=sys.stderr)
        if sample is not None:
            print(f"sample:\n{config.sample.prompt}{sample}", file=sys.stderr)
        print(f"run directory: {run_dir}", file=sys.stderr)
    return TrainResult(run_dir, metrics, sample)
