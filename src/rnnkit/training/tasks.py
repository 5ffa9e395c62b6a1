"""Lightning modules for the three task shapes: language model, classification, labelling.

A task owns its model, its batches (one global batch per step, sliced per rank) and its metrics;
Lightning owns the loop. Every task reports the same totals per batch (loss sum, correct
predictions, count), which validation, testing and ``rnnkit evaluate`` all reduce the same way.

Extending (see docs/training.md): an encoder-decoder task is a subclass whose batches carry two
sequences and whose ``totals`` runs the decoder with teacher forcing; forecasting replaces the
cross-entropy in ``totals`` by a regression loss over a horizon. The loop, checkpoints,
diagnostics and CLI stay as they are.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from functools import partial
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from rich.progress import track
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ..config import Config
from ..data.batches import BucketBatchSampler, StreamChunks, pad_batch
from ..data.prepare import TaskData
from ..models.transfer import freeze_for_epoch
from .optim import make_optimizers

__all__ = [
    "NonFiniteLossError",
    "RecurrentTask",
    "LanguageModelTask",
    "ClassificationTask",
    "LabellingTask",
    "make_task",
    "detach_state",
]

Probe = tuple[Tensor, Callable[[Tensor], Tensor]]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the message names the step."""


def detach_state(state: Any) -> Any:
    """Cut the autograd history of a recurrent state (a tensor or a tuple of tensors)."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    return (
        type(state)(*(detach_state(s) for s in state))
        if hasattr(state, "_fields")
        else tuple(detach_state(s) for s in state)
    )


class RecurrentTask(pl.LightningModule):
    """Shared by all tasks: optimisers, per-epoch seeding, the non-finite check, metrics."""

    def __init__(self, model: nn.Module, config: Config, data: TaskData | None = None) -> None:
        super().__init__()
        self.model, self.config, self.data = model, config, data
        self._totals = torch.zeros(3, dtype=torch.float64)
        self.last_grad_norm: float | None = None
        self.lr_override: float | None = None

    # ---- optimisation -------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        return make_optimizers(self.model, self.config.optim, self.config.train.max_epochs)

    def on_train_start(self) -> None:
        # A resumed run restores the optimiser's learning rate from the checkpoint; a new
        # optim.lr given on resume (to recover from an unstable run, say) replaces it.
        if self.lr_override is not None:
            for optimizer in self.trainer.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = group["initial_lr"] = self.lr_override
            for config in self.trainer.lr_scheduler_configs:
                if hasattr(config.scheduler, "base_lrs"):
                    config.scheduler.base_lrs = [self.lr_override] * len(config.scheduler.base_lrs)

    def on_train_epoch_start(self) -> None:
        # Dropout draws depend on (seed, epoch, rank) only, so a run resumed at an epoch
        # boundary draws exactly what the uninterrupted run drew.
        train = self.config.train
        torch.manual_seed(train.seed * 1_000_003 + self.current_epoch * 1_009 + self.global_rank)
        if train.gradual_unfreezing:
            freeze_for_epoch(self.model, self.current_epoch)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        loss_sum, _, count = self.totals(batch, training=True)
        world_size = self.trainer.world_size if self._trainer is not None else 1
        if world_size > 1:
            # DDP averages the processes' gradients; scaling by the global count makes that
            # average the gradient of the global batch's mean loss, whatever each slice holds.
            total = self.trainer.strategy.reduce(count.clone().to(self.device), reduce_op="sum")
            loss = loss_sum * world_size / total.to(loss_sum.dtype)
            mean_loss = loss_sum.detach() / count  # this process's mean, for the log
        else:
            loss = mean_loss = loss_sum / count
        if not torch.isfinite(loss):
            grad = (
                ""
                if self.last_grad_norm is None
                else f"; the last gradient norm was {self.last_grad_norm:.3g}"
            )
            raise NonFiniteLossError(
                f"training loss is {loss.item()} at step {self.global_step} "
                f"(epoch {self.current_epoch}, batch {batch_idx}){grad}. The last good "
                "checkpoint is kept; lower optim.lr or keep optim.clip on."
            )
        self.log(
            "train_loss",
            mean_loss.detach(),
            on_step=True,
            prog_bar=True,
            sync_dist=True,
            batch_size=int(count),
        )
        return loss

    # ---- evaluation ---------------------------------------------------------------------
    def totals(self, batch: Any, *, training: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """(loss sum, correct predictions, count) of one batch; the loss sum carries gradients."""
        raise NotImplementedError

    def _reset_totals(self) -> None:
        self._totals = torch.zeros(3, dtype=torch.float64)

    def _add_totals(self, batch: Any) -> None:
        loss_sum, correct, count = self.totals(batch)
        self._totals += torch.stack(
            [loss_sum.detach().double().cpu(), correct.double().cpu(), count.double().cpu()]
        )

    def metrics_from_totals(self, totals: Tensor, prefix: str) -> dict[str, float]:
        """Summed totals -> {prefix_loss, prefix_acc, ...}."""
        loss_sum, correct, count = (float(v) for v in totals)
        if count == 0:
            return {}
        return {f"{prefix}_loss": loss_sum / count, f"{prefix}_acc": correct / count}

    def _log_totals(self, prefix: str) -> None:
        totals = self.trainer.strategy.reduce(self._totals.to(self.device), reduce_op="sum")
        for name, value in self.metrics_from_totals(totals.cpu(), prefix).items():
            self.log(name, value, prog_bar=name == f"{prefix}_loss", sync_dist=False)

    def on_validation_epoch_start(self) -> None:
        self._reset_totals()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._add_totals(batch)

    def on_validation_epoch_end(self) -> None:
        self._log_totals("val")

    def on_test_epoch_start(self) -> None:
        self._reset_totals()

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._add_totals(batch)

    def on_test_epoch_end(self) -> None:
        self._log_totals("test")

    @torch.no_grad()
    def evaluate(
        self, split: str, *, progress: bool = False, limit_batches: int | None = None
    ) -> dict[str, float]:
        """Metrics over the whole ``split`` (or its first ``limit_batches`` batches) in one
        process (no Lightning), eval mode; ``progress`` shows a bar with the time left."""
        was_training = self.training
        self.eval()
        self.on_test_epoch_start()
        batches = self.loader(split)
        if limit_batches is not None:
            batches = itertools.islice(batches, limit_batches)
        if progress:
            batches = track(batches, description=f"evaluating {split}", transient=True)
        try:
            for batch in batches:
                self._add_totals(batch)
        finally:
            self.train(was_training)
        return self.metrics_from_totals(self._totals, split)

    # ---- data -----------------------------------------------------------------------------
    def loader(self, split: str, *, rank: int = 0, world_size: int = 1) -> DataLoader:
        """The batches of ``split`` for ``rank`` of ``world_size``."""
        raise NotImplementedError

    def _trainer_loader(self, split: str) -> DataLoader:
        return self.loader(split, rank=self.global_rank, world_size=self.trainer.world_size)

    def train_dataloader(self) -> DataLoader:
        return self._trainer_loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._trainer_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._trainer_loader("test")

    # ---- diagnostics ----------------------------------------------------------------------
    def probe(self, batch: Any, rows: int = 8) -> Probe | None:
        """For gradient diagnostics: recurrent inputs (b, T, I) of a few rows of ``batch`` and
        the loss at the last step as a function of the top layer's last output (b, H).
        None if the recurrent stack cannot be run step by step (bidirectional)."""
        raise NotImplementedError


def _split(data: TaskData, split: str) -> Any:
    value = getattr(data, split)
    if value is None or len(value) == 0:
        raise ValueError(f"the {split} split is empty; check data.val_fraction / the dataset")
    return value


class LanguageModelTask(RecurrentTask):
    """Next-token prediction with truncated BPTT: the state is carried from batch to batch
    (detached, so gradients reach back ``train.bptt`` steps) and reset at every epoch start."""

    def __init__(self, model: nn.Module, config: Config, data: TaskData | None = None) -> None:
        super().__init__(model, config, data)
        self._state: Any = None
        self._eval_state: Any = None

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self._state = None

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self._eval_state = None

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self._eval_state = None

    def totals(self, batch: Any, *, training: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        x, y = batch
        state = self._state if training else self._eval_state
        logits, state = self.model(x, state)
        if training:
            self._state = detach_state(state)
        else:
            self._eval_state = detach_state(state)
        loss_sum = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), reduction="sum"
        )
        correct = (logits.argmax(-1) == y).sum()
        return loss_sum, correct, torch.tensor(float(y.numel()))

    def metrics_from_totals(self, totals: Tensor, prefix: str) -> dict[str, float]:
        metrics = super().metrics_from_totals(totals, prefix)
        if metrics:
            metrics[f"{prefix}_ppl"] = math.exp(min(metrics[f"{prefix}_loss"], 700.0))
        return metrics

    def loader(self, split: str, *, rank: int = 0, world_size: int = 1) -> DataLoader:
        train = self.config.train
        chunks = StreamChunks(
            _split(self.data, split), train.batch_size, train.bptt, rank=rank, world_size=world_size
        )
        return DataLoader(chunks, batch_size=None, shuffle=False)

    def probe(self, batch: Any, rows: int = 8) -> Probe | None:
        x, y = batch
        x, y = x[:rows], y[:rows]
        return self.model.features(x), lambda last: F.cross_entropy(
            self.model.readout(last).float(), y[:, -1]
        )


class _PaddedTask(RecurrentTask):
    """Tasks over padded variable-length examples, bucketed by length."""

    _train_sampler: BucketBatchSampler | None = None

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        # Lightning sets the epoch of a loader's sampler, not of its batch sampler.
        if self._train_sampler is not None:
            self._train_sampler.set_epoch(self.current_epoch)

    def loader(self, split: str, *, rank: int = 0, world_size: int = 1) -> DataLoader:
        examples = _split(self.data, split)
        train = self.config.train
        training = split == "train"
        if training and len(examples) < train.batch_size:
            raise ValueError(
                f"the training split has {len(examples)} examples, fewer than "
                f"train.batch_size={train.batch_size}"
            )
        sampler = BucketBatchSampler(
            [len(example[0]) for example in examples],
            train.batch_size,
            shuffle=training,
            bucket=self.config.data.bucket,
            drop_last=training,
            seed=train.seed,
            rank=rank,
            world_size=world_size,
        )
        if training:
            self._train_sampler = sampler
        collate = partial(pad_batch, pad_id=self.data.tokenizer.pad_id)
        return DataLoader(examples, batch_sampler=sampler, collate_fn=collate)

    def _probe_rows(self, batch: Any, rows: int) -> tuple[Tensor, Tensor, int, Any] | None:
        if getattr(self.model.rnn, "bidirectional", False):
            return None
        tokens, lengths, targets, *chars = batch
        order = torch.argsort(lengths, descending=True)[:rows]
        steps = int(lengths[order].min())
        if steps == 0:
            return None
        chars = chars[0][order, :steps] if chars else None
        return tokens[order, :steps], targets[order], steps, chars


class ClassificationTask(_PaddedTask):
    """One label per sequence (many-to-one)."""

    def totals(self, batch: Any, *, training: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        tokens, lengths, labels = batch
        logits = self.model(tokens, lengths)
        loss_sum = F.cross_entropy(logits.float(), labels, reduction="sum")
        correct = (logits.argmax(-1) == labels).sum()
        return loss_sum, correct, torch.tensor(float(labels.numel()))

    def probe(self, batch: Any, rows: int = 8) -> Probe | None:
        picked = self._probe_rows(batch, rows)
        if picked is None:
            return None
        tokens, labels, _, _ = picked
        return self.model.features(tokens), lambda last: F.cross_entropy(
            self.model.readout(last).float(), labels
        )


class LabellingTask(_PaddedTask):
    """One label per token (many-to-many, aligned); padded steps are ignored. With a CRF the
    loss is the sequences' negative log-likelihood (reported per token) and predictions are
    Viterbi paths; otherwise per-token cross-entropy and argmax."""

    def totals(self, batch: Any, *, training: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        tokens, lengths, tags, *chars = batch
        scores = self.model(tokens, lengths, *chars)
        valid = tags != -100
        crf = getattr(self.model, "crf", None)
        if crf is not None:
            loss_sum = crf.nll(scores.float(), tags, valid, reduction="sum")
            predicted = crf.decode_tensor(scores.float(), valid) if not training else None
        else:
            loss_sum = F.cross_entropy(
                scores.reshape(-1, scores.shape[-1]).float(),
                tags.reshape(-1),
                ignore_index=-100,
                reduction="sum",
            )
            predicted = scores.argmax(-1)
        correct = (
            ((predicted == tags) & valid).sum() if predicted is not None else tags.new_zeros(())
        )
        return loss_sum, correct, valid.sum().float()

    def probe(self, batch: Any, rows: int = 8) -> Probe | None:
        picked = self._probe_rows(batch, rows)
        if picked is None:
            return None
        tokens, tags, steps, chars = picked
        features = (
            self.model.features(tokens, chars) if chars is not None else self.model.features(tokens)
        )
        return features, lambda last: F.cross_entropy(
            self.model.readout(last).float(), tags[:, steps - 1]
        )


TASKS = {
    "language_model": LanguageModelTask,
    "classification": ClassificationTask,
    "labelling": LabellingTask,
}


def make_task(config: Config, model: nn.Module, data: TaskData | None = None) -> RecurrentTask:
    """The Lightning module for ``config.task``."""
    return TASKS[config.task](model, config, data)
