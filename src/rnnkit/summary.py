"""A model summary in the manner of Keras' ``model.summary()``: one row per layer call with its
output shape and parameter count, then the totals.

``summarize(model, example_inputs)`` runs one forward pass with forward hooks on the layers (the
leaf modules, and any module that owns parameters directly) and records each call in call order.
A layer called twice (a language model's dropout, before and after the recurrent stack) has two
rows; every parameter is counted once, in the row of the first call that uses it (so tied
embedding and output weights are counted once), and the rows add up to the model's total.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from rich import box
from rich.console import Console
from rich.table import Table
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from .config import Config

__all__ = ["SummaryRow", "summarize", "format_summary", "summary_from_config"]


@dataclass(frozen=True)
class SummaryRow:
    """One layer call: ``name`` is the module's qualified name (``rnn``, ``head``), ``type`` its
    class; ``output_shapes`` holds the shape of every tensor in its output (the recurrent stack
    gives output (B, T, D*H) then h_n (L*D, B, H) [and c_n]); ``params`` counts the parameters
    first used by this call, ``trainable_params`` those of them that require grad."""

    name: str
    type: str
    output_shapes: tuple[tuple[int, ...], ...]
    params: int
    trainable_params: int


def _tensors(value: Any) -> list[Tensor]:
    """Every tensor in a (nested) tuple/list/dict output, in order."""
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return [t for item in value for t in _tensors(item)]
    return []


def _layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules a summary lists: leaves, and modules with parameters of their own."""
    return [
        (name or type(model).__name__, module)
        for name, module in model.named_modules()
        if not any(True for _ in module.children())
        or any(True for _ in module.parameters(recurse=False))
    ]


def summarize(model: nn.Module, example_inputs: Sequence[Any]) -> list[SummaryRow]:
    """Run ``model(*example_inputs)`` once (eval mode, no grad) and list its layer calls.

    The model's training mode is restored afterwards. Output shapes are those of the example
    inputs (no symbolic batch axis).
    """
    rows: list[SummaryRow] = []
    counted: set[int] = set()

    def record(name: str, module: nn.Module, output: Any) -> None:
        fresh = [p for p in module.parameters() if id(p) not in counted]
        counted.update(id(p) for p in fresh)
        rows.append(
            SummaryRow(
                name=name,
                type=type(module).__name__,
                output_shapes=tuple(tuple(t.shape) for t in _tensors(output)),
                params=sum(p.numel() for p in fresh),
                trainable_params=sum(p.numel() for p in fresh if p.requires_grad),
            )
        )

    handles: list[RemovableHandle] = [
        module.register_forward_hook(lambda m, _inputs, output, name=name: record(name, m, output))
        for name, module in _layers(model)
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*example_inputs)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return rows


def _shape_text(shapes: tuple[tuple[int, ...], ...]) -> str:
    texts = [
        f"({', '.join(str(n) for n in shape)}{',' if len(shape) == 1 else ''})" for shape in shapes
    ]
    return texts[0] if len(texts) == 1 else f"[{', '.join(texts)}]"


def format_summary(rows: Sequence[SummaryRow], title: str | None = None) -> str:
    """A Keras-style table: ``Layer (type) | Output Shape | Param #`` and the totals below."""
    table = Table(box=box.HEAVY_HEAD)
    table.add_column("Layer (type)")
    table.add_column("Output Shape")
    table.add_column("Param #", justify="right")
    for row in rows:
        table.add_row(f"{row.name} ({row.type})", _shape_text(row.output_shapes), f"{row.params:,}")
    total = sum(row.params for row in rows)
    trainable = sum(row.trainable_params for row in rows)
    buffer = io.StringIO()
    console = Console(file=buffer, width=100, color_system=None, emoji=False, highlight=False)
    if title:
        console.print(title, soft_wrap=True)
    console.print(table)
    console.print(f" Total params: {total:,}")
    console.print(f" Trainable params: {trainable:,}")
    console.print(f" Non-trainable params: {total - trainable:,}")
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


def summary_from_config(config: Config) -> str:
    """Build the model a config describes and summarise it.

    The vocabulary and labels come from preparing the config's data (so the embedding and head
    sizes are the real ones); the example input is one training batch: (batch_size, bptt) tokens
    for a language model, (batch_size, max_len) tokens of full length otherwise.
    """
    from .data.prepare import MAX_WORD_CHARS, prepare_data
    from .models import build_model

    data = prepare_data(config)
    num_labels = len(data.labels or [])
    num_chars = data.characters.vocab_size if data.characters is not None else 0
    model = build_model(config.task, config.model, data.tokenizer.vocab_size, num_labels, num_chars)
    batch = config.train.batch_size
    if config.task == "language_model":
        steps = config.train.bptt
        example: tuple[Tensor, ...] = (torch.zeros(batch, steps, dtype=torch.long),)
    else:
        steps = config.data.max_len
        example = (
            torch.zeros(batch, steps, dtype=torch.long),
            torch.full((batch,), steps, dtype=torch.long),
        )
        if data.characters is not None:  # a tagger reading each word's characters
            example += (torch.ones(batch, steps, MAX_WORD_CHARS, dtype=torch.long),)
    labels = f", {num_labels} labels" if num_labels else ""
    title = (
        f'Model: "{type(model).__name__}" ({config.task}, vocabulary {data.tokenizer.vocab_size:,}'
        f"{labels}; input tokens ({batch}, {steps}))"
    )
    return format_summary(summarize(model, example), title)
