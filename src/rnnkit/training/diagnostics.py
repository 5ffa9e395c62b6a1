"""Gradient diagnostics: see vanishing and exploding gradients while a network trains.

Every step: the global gradient norm and one norm per layer (before clipping), logged as
``grad_norm`` and ``grad_norm/<layer>``; a non-finite norm stops the run, a norm far above its
running median warns. Every ``every_n_steps`` steps: how far back the gradient reaches: the
recurrent stack is run step by step on a few rows of a fixed batch and ``||d loss_T / d h_t||``
is measured for every layer and every t (the loss taken at the last step T), written to
``diagnostics/hidden_grad_norms.csv``. When it falls below ``vanish_threshold`` of its value at T
within ``vanish_within`` steps, a vanishing-gradient warning names the step and the layer.
"""

from __future__ import annotations

import csv
import inspect
import json
import logging
import math
import re
import statistics
import warnings
from collections import deque
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

from ..config import DiagnosticsConfig

__all__ = [
    "GradientWarning",
    "NonFiniteGradientError",
    "GradientDiagnostics",
    "layer_of",
    "layer_grad_norms",
    "hidden_state_gradients",
    "split_layers",
]


log = logging.getLogger(__name__)


class GradientWarning(UserWarning):
    """Gradients exploding or vanishing."""


class NonFiniteGradientError(RuntimeError):
    """A gradient became NaN or infinite."""


_LAYER = re.compile(r"_l(\d+)(_reverse)?$")


def layer_of(name: str) -> str:
    """The layer a parameter belongs to: ``model.rnn.weight_hh_l1_reverse`` -> ``rnn.l1``,
    ``model.decoder.weight`` -> ``decoder``.

    >>> layer_of("model.rnn.weight_hh_l1_reverse"), layer_of("model.embedding.weight")
    ('rnn.l1', 'embedding')
    """
    parts = name.split(".")
    if parts[0] == "model":
        parts = parts[1:]
    match = _LAYER.search(parts[-1])
    if match:
        return ".".join(parts[:-1] + [f"l{match.group(1)}"])
    return ".".join(parts[:-1]) or parts[-1]


def layer_grad_norms(module: nn.Module) -> dict[str, float]:
    """{layer: L2 norm of its parameters' gradients}, plus ``total`` over all of them."""
    squares: dict[str, Tensor] = {}
    for name, parameter in module.named_parameters():
        if parameter.grad is None:
            continue
        layer = layer_of(name)
        square = parameter.grad.detach().float().pow(2).sum()
        squares[layer] = squares[layer] + square if layer in squares else square
    norms = {layer: math.sqrt(float(s)) for layer, s in squares.items()}
    norms["total"] = math.sqrt(sum(float(s) for s in squares.values()))
    return norms


def split_layers(rnn: nn.Module) -> list[nn.Module]:
    """One single-layer copy per layer of a unidirectional stack (same class, options, weights).

    Run one after another, each layer's h_t is then a tensor of its own that feeds both its
    next step and the layer above, so d loss / d h_t counts both paths.
    """
    if rnn.num_layers == 1:
        return [rnn]
    skip = {"self", "input_size", "num_layers", "dropout", "bidirectional", "device", "dtype"}
    options = {
        name: getattr(rnn, name)
        for name in inspect.signature(type(rnn)).parameters
        if name not in skip and hasattr(rnn, name)
    }
    parameter = next(rnn.parameters())
    with torch.random.fork_rng(devices=[]):  # building layers draws weights: keep training's RNG
        return [_single_layer(rnn, k, options, parameter) for k in range(rnn.num_layers)]


def _single_layer(rnn: nn.Module, k: int, options: dict, parameter: Tensor) -> nn.Module:
    """Layer ``k`` of ``rnn`` as a one-layer module of the same class and options."""
    size = rnn.input_size if k == 0 else (getattr(rnn, "proj_size", 0) or rnn.hidden_size)
    layer = type(rnn)(size, num_layers=1, **options).to(parameter.device, parameter.dtype)
    suffix = f"_l{k}"
    layer.load_state_dict(
        {
            name[: -len(suffix)] + "_l0": value
            for name, value in rnn.state_dict().items()
            if name.endswith(suffix)
        }
    )
    return layer.train(rnn.training)


def hidden_state_gradients(rnn: nn.Module, inputs: Tensor, loss_of_last: Any) -> Tensor:
    """(L, T) norms of d loss / d h_t for every layer and step of a unidirectional stack.

    inputs (b, T, I) batch-first; ``loss_of_last`` maps the top layer's last output (b, H) to a
    scalar loss. The layers run one ``step`` at a time, so each h_t is a node of the graph and
    its gradient is the total derivative (through the recurrence and the layers above).
    """
    layers = split_layers(rnn)
    states: list[Any] = [None] * len(layers)
    hidden: list[list[Tensor]] = [[] for _ in layers]
    x = inputs[:, 0]
    for t in range(inputs.shape[1]):
        x = inputs[:, t]
        for k, layer in enumerate(layers):
            _, states[k] = layer.step(x, states[k])
            h = states[k] if isinstance(states[k], Tensor) else states[k][0]  # (1, b, H)
            hidden[k].append(h)
            x = h[0]
    grads = torch.autograd.grad(
        loss_of_last(x), [h for row in hidden for h in row], allow_unused=True
    )
    norms = torch.stack(
        [torch.zeros(()) if g is None else g.detach().float().norm() for g in grads]
    )
    return norms.view(len(layers), inputs.shape[1])


class GradientDiagnostics(pl.Callback):
    """Logs gradient norms, measures d loss/d h_t, warns on exploding and vanishing gradients."""

    def __init__(self, config: DiagnosticsConfig, run_dir: Path | None, window: int = 100) -> None:
        self.config = config
        self.directory = None if run_dir is None else Path(run_dir) / "diagnostics"
        self.history: deque[float] = deque(maxlen=window)
        self.probe_batch: Any = None
        self.warned_bidirectional = False
        self.events: list[dict[str, Any]] = []
        self.warned: dict[str, int] = {}
        self.record_events = True
        self.max_warnings = 3

    # ---- per-step norms ----------------------------------------------------------------------
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        norms = layer_grad_norms(pl_module)
        total = norms["total"]
        pl_module.last_grad_norm = total
        step = trainer.global_step
        self.record_events = getattr(trainer, "is_global_zero", True)  # one writer in DDP
        if not math.isfinite(total):
            bad = [layer for layer, n in norms.items() if layer != "total" and not math.isfinite(n)]
            self._event("nonfinite", step, layers=bad)
            raise NonFiniteGradientError(
                f"non-finite gradient at step {step} in layer(s) {', '.join(bad)}; the last good "
                "checkpoint is kept. Lower optim.lr or keep optim.clip on."
            )
        if len(self.history) >= 10:
            median = statistics.median(self.history)
            if median > 0 and total > self.config.explode_factor * median:
                layer = max((k for k in norms if k != "total"), key=norms.get)
                self._warn("exploding", step, layer, total, median)
        self.history.append(total)
        pl_module.log("grad_norm", total, on_step=True, on_epoch=False)
        for layer, norm in norms.items():
            if layer != "total":
                pl_module.log(f"grad_norm/{layer}", norm, on_step=True, on_epoch=False)

    # ---- how far back the gradient reaches -------------------------------------------------
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.probe_batch is None:
            self.probe_batch = batch

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        every = self.config.every_n_steps
        if every <= 0 or trainer.global_step % every != 0 or self.probe_batch is None:
            return
        norms = self.measure(pl_module)
        if norms is None or not trainer.is_global_zero:
            return
        self._record(trainer.global_step, norms)

    def measure(self, pl_module: Any) -> Tensor | None:
        """(L, T) norms of d loss_T / d h_t on the probe batch, in eval mode (no dropout)."""
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.enable_grad():
                probe = pl_module.probe(self.probe_batch)
                if probe is None:
                    if not self.warned_bidirectional:
                        self.warned_bidirectional = True
                        log.info(
                            "diagnostics: d loss/d h_t needs a unidirectional recurrent "
                            "stack; this run logs gradient norms only"
                        )
                    return None
                inputs, loss_of_last = probe
                return hidden_state_gradients(pl_module.model.rnn, inputs, loss_of_last)
        finally:
            pl_module.train(was_training)

    def _record(self, step: int, norms: Tensor) -> None:
        L, T = norms.shape
        for layer in range(L):
            curve = norms[layer].flip(0)  # index k = k steps back from the loss
            last = float(curve[0])
            if last <= 0 or not math.isfinite(last):
                continue
            ratios = curve / last
            within = min(self.config.vanish_within, T - 1)
            below = (ratios[: within + 1] < self.config.vanish_threshold).nonzero()
            if len(below):
                k = int(below[0])
                self._warn("vanishing", step, f"rnn.l{layer}", float(ratios[k]), k)
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / "hidden_grad_norms.csv"
        new = not path.exists()
        with path.open("a", newline="") as file:
            writer = csv.writer(file)
            if new:
                writer.writerow(["step", "layer", "steps_back", "norm"])
            for layer in range(L):
                for k, value in enumerate(norms[layer].flip(0).tolist()):
                    writer.writerow([step, layer, k, f"{value:.6g}"])

    # ---- warnings ----------------------------------------------------------------------------
    def _warn(self, kind: str, step: int, layer: str, value: float, reference: float) -> None:
        if kind == "exploding":
            message = (
                f"exploding gradient at step {step}: norm {value:.3g} is "
                f"{value / reference:.1f}x its running median {reference:.3g} "
                f"(largest in layer {layer})"
            )
        else:
            message = (
                f"vanishing gradient at step {step}, layer {layer}: d loss/d h_t falls to "
                f"{value:.2g} of its last-step value {int(reference)} steps back"
            )
        self._event(kind, step, layers=[layer], message=message)
        if not self.record_events:
            return
        shown = self.warned.get(kind, 0)
        self.warned[kind] = shown + 1
        if shown < self.max_warnings:
            more = (
                ""
                if shown + 1 < self.max_warnings
                else " (further warnings of this kind only go to diagnostics/events.jsonl)"
            )
            warnings.warn(message + more, GradientWarning, stacklevel=2)

    def _event(self, kind: str, step: int, **details: Any) -> None:
        event = {"kind": kind, "step": step, **details}
        self.events.append(event)
        if self.directory is not None and self.record_events:
            self.directory.mkdir(parents=True, exist_ok=True)
            with (self.directory / "events.jsonl").open("a") as file:
                file.write(json.dumps(event) + "\n")
