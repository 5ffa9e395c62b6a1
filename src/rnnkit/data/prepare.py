"""From a config's ``data`` section to encoded splits and a vocabulary.

Built-in datasets come from the registry (``RNNKIT_DATA`` or the cache; Tiny Shakespeare also
ships inside the package); ``dataset: file`` reads the user's own file and splits it by
``val_fraction`` / ``test_fraction``.
"""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..config import Config, ConfigError
from . import registry
from .sources import DataError, read_conllu, read_records, read_text
from .vocabulary import EOS, Vocabulary, tokenize

__all__ = ["TaskData", "BUILTIN_TASKS", "prepare_data", "encode_examples", "VENDORED"]

VENDORED = {"tinyshakespeare": Path(__file__).parent / "corpora" / "tinyshakespeare.txt"}

BUILTIN_TASKS = {
    "tinyshakespeare": "language_model",
    "ptb": "language_model",
    "imdb": "classification",
    "ud_english_ewt": "labelling",
}

Examples = list[tuple[list[int], Any]]


@dataclass
class TaskData:
    """Encoded splits: a (N,) id tensor per split for language models, else a list of
    (token ids, label id or label ids) examples. ``labels`` names the classes or tags."""

    vocab: Vocabulary
    labels: list[str] | None
    train: Tensor | Examples
    val: Tensor | Examples | None
    test: Tensor | Examples | None


def _builtin_file(name: str, path: str) -> Path:
    if name in VENDORED:
        try:
            return registry.dataset_file(name, path)
        except FileNotFoundError:
            return VENDORED[name]
    return registry.dataset_file(name, path)


def _split_fractions(items: list, config: Config, *, shuffle: bool) -> tuple[list, list, list]:
    """Split into train/val/test by fractions; val and test come from the end (or a seeded
    shuffle), so the split does not change between runs."""
    if shuffle:
        items = list(items)
        random.Random(config.train.seed).shuffle(items)
    n = len(items)
    n_test = int(round(n * config.data.test_fraction))
    n_val = int(round(n * config.data.val_fraction))
    train = items[: n - n_val - n_test]
    return train, items[n - n_val - n_test : n - n_test], items[n - n_test :]


def _raw_splits(config: Config) -> dict[str, Any]:
    """{split: raw data}: text for language models, (text, label) or (words, tags) lists."""
    data, task = config.data, config.task
    name = data.dataset
    if name == "file":
        if data.path is None:
            raise ConfigError("data.path: expected a file when data.dataset is 'file', got null")
        path = Path(data.path)
        if task == "language_model":
            text = read_text(path)
            train, val, test = _split_fractions(list(text), config, shuffle=False)
            return {"train": "".join(train), "val": "".join(val), "test": "".join(test)}
        if task == "classification":
            items = read_records(path, data.text_field, data.label_field)
        else:
            items = read_conllu(path)
        train, val, test = _split_fractions(items, config, shuffle=True)
        return {"train": train, "val": val, "test": test}
    if name not in BUILTIN_TASKS:
        known = ", ".join([*BUILTIN_TASKS, "file"])
        raise ConfigError(f"data.dataset: expected one of {known}, got {name!r}")
    if BUILTIN_TASKS[name] != task:
        raise ConfigError(
            f"data.dataset: {name!r} is a {BUILTIN_TASKS[name]} dataset, but task is {task!r}"
        )
    if name == "tinyshakespeare":
        text = read_text(_builtin_file(name, "input.txt"))
        cut = int(len(text) * (1 - data.val_fraction))  # nanoGPT: first 90% train, last 10% val
        return {"train": text[:cut], "val": text[cut:], "test": ""}
    if name == "ptb":
        return {
            split: read_text(_builtin_file(name, file))
            for split, file in (
                ("train", "ptb.train.txt.gz"),
                ("val", "ptb.valid.txt"),
                ("test", "ptb.test.txt"),
            )
        }
    if name == "imdb":
        train = read_records(_builtin_file(name, "train.jsonl.gz"))
        test = read_records(_builtin_file(name, "test.jsonl.gz"))
        train, val, _ = _split_fractions(train, config, shuffle=True)
        return {"train": train, "val": val, "test": test}
    files = {"train": "train", "val": "dev", "test": "test"}
    return {
        split: read_conllu(_builtin_file(name, f"en_ewt-ud-{file}.conllu.gz"))
        for split, file in files.items()
    }


def _lm_tokens(text: str, kind: str) -> list[str]:
    if kind == "char":
        return list(text)
    return [token for line in text.splitlines() for token in [*line.split(), EOS]]


def encode_examples(
    items: list[tuple[Any, Any]],
    vocab: Vocabulary,
    labels: list[str],
    tokenizer: str,
    max_len: int,
    where: str,
) -> Examples:
    """Encode (text or words, label or tags) pairs; truncate to ``max_len`` with one warning."""
    index = {label: i for i, label in enumerate(labels)}
    examples: Examples = []
    truncated = 0
    for text, label in items:
        tokens = tokenize(text, tokenizer) if isinstance(text, str) else list(text)
        per_token = isinstance(label, list)
        names = label if per_token else [label]
        unseen = [n for n in names if n not in index]
        if unseen:
            raise DataError(
                f"{where}: label {unseen[0]!r} never appears in the training split; "
                f"known labels: {labels}"
            )
        ids = [index[n] for n in names]
        if len(tokens) > max_len:
            truncated += 1
            tokens = tokens[:max_len]
            ids = ids[:max_len] if per_token else ids
        examples.append((vocab.encode(tokens), ids if per_token else ids[0]))
    if truncated:
        warnings.warn(
            f"{where}: {truncated} of {len(items)} examples truncated to data.max_len={max_len}",
            stacklevel=2,
        )
    return examples


def prepare_data(config: Config, vocab: Vocabulary | None = None, labels: list[str] | None = None):
    """Read, tokenise and encode the splits of ``config.data``.

    A trained run passes its own ``vocab`` and ``labels`` so that evaluation encodes exactly as
    training did; otherwise both are built from the training split.
    """
    data = config.data
    raw = _raw_splits(config)
    if config.task == "language_model":
        tokens = {split: _lm_tokens(text, data.tokenizer) for split, text in raw.items()}
        if not tokens["train"]:
            raise DataError(f"data.dataset {data.dataset!r}: the training split is empty")
        if vocab is None:
            vocab = Vocabulary.build(
                [tokens["train"]], min_freq=data.min_freq, max_size=data.max_vocab
            )
        encoded = {
            split: torch.tensor(vocab.encode(t), dtype=torch.long) if t else None
            for split, t in tokens.items()
        }
        return TaskData(vocab, None, encoded["train"], encoded["val"], encoded["test"])
    train = raw["train"]
    if data.limit_train is not None:
        train = train[: data.limit_train]
    if not train:
        raise DataError(f"data.dataset {data.dataset!r}: the training split is empty")
    if vocab is None:
        vocab = Vocabulary.build(
            (tokenize(t, data.tokenizer) if isinstance(t, str) else t for t, _ in train),
            min_freq=data.min_freq,
            max_size=data.max_vocab,
        )
    if labels is None:
        seen = {n for _, label in train for n in (label if isinstance(label, list) else [label])}
        labels = sorted(seen)
    encoded = {
        split: encode_examples(items, vocab, labels, data.tokenizer, data.max_len, f"{split} split")
        if items
        else None
        for split, items in (("train", train), ("val", raw["val"]), ("test", raw["test"]))
    }
    return TaskData(vocab, labels, encoded["train"], encoded["val"], encoded["test"])
