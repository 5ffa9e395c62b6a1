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
from .tokenizers import Tokenizer, make_tokenizer

__all__ = [
    "TaskData",
    "BUILTIN_TASKS",
    "prepare_data",
    "encode_examples",
    "encode_stream",
    "VENDORED",
]

VENDORED = {"tinyshakespeare": Path(__file__).parent / "corpora" / "tinyshakespeare.txt"}

BUILTIN_TASKS = {
    "tinyshakespeare": ("language_model",),
    "ptb": ("language_model",),
    # a language model over the reviews' text: the pretraining step of transfer learning
    "imdb": ("classification", "language_model"),
    "ud_english_ewt": ("labelling",),
}

Examples = list[tuple]
MAX_WORD_CHARS = 20


@dataclass
class TaskData:
    """Encoded splits: a (N,) id tensor per split for language models, else a list of
    (token ids, label id or label ids[, character ids per word]) examples. ``tokenizer`` maps
    text to ids (its ``vocab_size`` sizes the model); ``labels`` names the classes or tags;
    ``characters`` (taggers with character features) maps each word's characters to ids."""

    tokenizer: Tokenizer
    labels: list[str] | None
    train: Tensor | Examples
    val: Tensor | Examples | None
    test: Tensor | Examples | None
    characters: Tokenizer | None = None


def _builtin_file(name: str, path: str) -> Path:
    """The registry's local copy (size and sha256 checked), else the vendored copy."""
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
    if task not in BUILTIN_TASKS[name]:
        raise ConfigError(
            f"data.dataset: {name!r} is for task {' or '.join(BUILTIN_TASKS[name])}, "
            f"but task is {task!r}"
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
        if task == "language_model":
            return {
                split: "\n".join(text for text, _ in items) + "\n"
                for split, items in (("train", train), ("val", val), ("test", test))
            }
        return {"train": train, "val": val, "test": test}
    files = {"train": "train", "val": "dev", "test": "test"}
    return {
        split: read_conllu(_builtin_file(name, f"en_ewt-ud-{file}.conllu.gz"))
        for split, file in files.items()
    }


def _fit(config: Config, texts: Any, *, pretokenized: bool = False) -> Tokenizer:
    data = config.data
    kind = "whitespace" if pretokenized else data.tokenizer
    tokenizer = make_tokenizer(kind, lowercase=data.lowercase)
    if pretokenized:
        tokenizer.fit_tokens(texts, min_freq=data.min_freq, max_size=data.max_vocab)
    else:
        tokenizer.fit(texts, min_freq=data.min_freq, max_size=data.max_vocab)
    return tokenizer


def encode_stream(tokenizer: Tokenizer, text: str) -> list[int]:
    """A language model's token stream: characters as they are; words and subwords line by
    line, each line closed by ``<eos>`` (words) or its newline (byte-level BPE)."""
    if tokenizer.kind == "char":
        return tokenizer.encode(text)
    ids: list[int] = []
    for line in text.splitlines():
        if tokenizer.kind == "bpe":
            ids += tokenizer.encode(line + "\n")
        else:
            ids += [*tokenizer.encode(line), tokenizer.eos_id]
    return ids


def encode_examples(
    items: list[tuple[Any, Any]],
    tokenizer: Tokenizer,
    labels: list[str],
    max_len: int,
    where: str,
    characters: Tokenizer | None = None,
) -> Examples:
    """Encode (text or words, label or tags) pairs; truncate to ``max_len`` with one warning.

    With ``characters``, each example also carries the character ids of every word (the first
    ``MAX_WORD_CHARS`` characters)."""
    index = {label: i for i, label in enumerate(labels)}
    examples: Examples = []
    truncated = 0
    for text, label in items:
        ids = tokenizer.encode(text) if isinstance(text, str) else tokenizer.encode_tokens(text)
        per_token = isinstance(label, list)
        names = label if per_token else [label]
        unseen = [n for n in names if n not in index]
        if unseen:
            raise DataError(
                f"{where}: label {unseen[0]!r} never appears in the training split; "
                f"known labels: {labels}"
            )
        targets = [index[n] for n in names]
        if len(ids) > max_len:
            truncated += 1
            ids = ids[:max_len]
            targets = targets[:max_len] if per_token else targets
        example = (ids, targets if per_token else targets[0])
        if characters is not None:
            example += ([characters.encode(word)[:MAX_WORD_CHARS] for word in text[: len(ids)]],)
        examples.append(example)
    if truncated:
        warnings.warn(
            f"{where}: {truncated} of {len(items)} examples truncated to data.max_len={max_len}",
            stacklevel=2,
        )
    return examples


def prepare_data(
    config: Config,
    tokenizer: Tokenizer | None = None,
    labels: list[str] | None = None,
    characters: Tokenizer | None = None,
) -> TaskData:
    """Read, tokenise and encode the splits of ``config.data``.

    A trained run passes its own ``tokenizer``, ``labels`` (and ``characters``) so that
    evaluation encodes exactly as training did; otherwise they are fitted on the training split.
    """
    data = config.data
    raw = _raw_splits(config)
    if config.task == "language_model":
        if not raw["train"].strip():
            raise DataError(f"data.dataset {data.dataset!r}: the training split is empty")
        if tokenizer is None:
            texts = [raw["train"]] if data.tokenizer == "char" else raw["train"].splitlines()
            tokenizer = _fit(config, texts)
        encoded = {
            split: torch.tensor(encode_stream(tokenizer, text), dtype=torch.long) if text else None
            for split, text in raw.items()
        }
        return TaskData(tokenizer, None, encoded["train"], encoded["val"], encoded["test"])
    train = raw["train"]
    if not train:
        raise DataError(f"data.dataset {data.dataset!r}: the training split is empty")
    if labels is None:  # from the whole training split, also when data.limit_train cuts it
        seen = {n for _, label in train for n in (label if isinstance(label, list) else [label])}
        labels = sorted(seen)
    if data.limit_train is not None:
        train = train[: data.limit_train]
    pretokenized = config.task == "labelling"
    if tokenizer is None:
        tokenizer = _fit(config, (text for text, _ in train), pretokenized=pretokenized)
    if characters is None and pretokenized and config.model.char_embedding_dim > 0:
        characters = make_tokenizer("char")
        characters.fit(word for words, _ in train for word in words)
    encoded = {
        split: encode_examples(items, tokenizer, labels, data.max_len, f"{split} split", characters)
        if items
        else None
        for split, items in (("train", train), ("val", raw["val"]), ("test", raw["test"]))
    }
    return TaskData(
        tokenizer, labels, encoded["train"], encoded["val"], encoded["test"], characters
    )
