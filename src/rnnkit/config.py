"""Run configuration: typed sections, read from YAML, checked key by key.

A config is a tree of dataclasses. ``load_config(path, overrides)`` reads YAML, applies
``key.sub=value`` overrides, and builds the tree; an unknown key, a wrong type or a value outside
its choices raises ``ConfigError`` naming the key (and the file). Every run writes its resolved
config back as YAML, so a run directory says exactly what trained it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = [
    "ConfigError",
    "Config",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "DiagnosticsConfig",
    "DEFAULT_CONFIG",
    "SampleConfig",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "apply_overrides",
]


class ConfigError(ValueError):
    """A config that cannot be used; the message names the offending key."""


@dataclass
class DataConfig:
    """Where the data comes from and how it is cut into batches.

    ``dataset`` names a registry dataset (``rnnkit datasets list``) or ``file``;
    ``path`` is the user's own file when ``dataset: file``.
    """

    dataset: str = "tinyshakespeare"
    path: str | None = None
    tokenizer: Literal["char", "word", "whitespace", "bpe"] = "char"
    lowercase: bool = False
    min_freq: int = 1
    max_vocab: int | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.0
    max_len: int = 400
    bucket: bool = True
    text_field: str = "text"
    label_field: str = "label"
    limit_train: int | None = None


@dataclass
class ModelConfig:
    """The network: embedding -> stacked recurrent layers -> task head.

    Taggers (``task: labelling``) can add character features (``char_embedding_dim > 0``: a
    bidirectional LSTM of ``char_hidden_size`` over each word's characters) and a CRF output
    layer (``crf: true``, Viterbi decoding). Classifiers and taggers can replace training tokens
    by ``<unk>`` at rate ``word_dropout``. ``init_from`` names a language-model run (or
    bundle) whose tokenizer, embedding and recurrent weights this model starts from.
    """

    cell: Literal["lstm", "gru", "rnn_tanh", "rnn_relu", "mingru", "minlstm"] = "lstm"
    embedding_dim: int = 64
    hidden_size: int = 256
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    word_dropout: float = 0.0
    layer_norm: bool = False
    tie_weights: bool = False
    pooling: Literal["last", "mean", "max", "attention"] = "last"
    crf: bool = False
    char_embedding_dim: int = 0
    char_hidden_size: int = 32
    init_from: str | None = None


@dataclass
class OptimConfig:
    """Optimiser, learning-rate schedule and gradient clipping (on by default)."""

    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = 2e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    scheduler: Literal["none", "cosine", "step", "plateau"] = "none"
    step_size: int = 1
    gamma: float = 0.5
    patience: int = 1
    clip: Literal["norm", "value", "none"] = "norm"
    clip_value: float = 1.0


@dataclass
class TrainConfig:
    """The training loop: budget, batches, validation, stopping, checkpoints, devices.

    ``gradual_unfreezing`` (with ``model.init_from``): the first epoch trains the head only, each
    next epoch one more recurrent layer from the top, then the embedding.
    """

    seed: int = 0
    batch_size: int = 32
    bptt: int = 100
    max_epochs: int = 10
    max_steps: int = -1
    max_minutes: float | None = None
    val_every_n_steps: int | None = None
    limit_val_batches: int | None = None
    early_stopping: bool = False
    monitor: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    patience: int = 3
    checkpoint_every_n_steps: int | None = None
    precision: Literal["32", "bf16"] = "32"
    accelerator: str = "cpu"
    devices: int = 1
    num_nodes: int = 1
    threads: int | None = None
    log_every_n_steps: int = 10
    gradual_unfreezing: bool = False


@dataclass
class DiagnosticsConfig:
    """Gradient diagnostics: how often d loss/d h_t is measured and when to warn."""

    every_n_steps: int = 50
    explode_factor: float = 10.0
    vanish_threshold: float = 1e-3
    vanish_within: int = 5


@dataclass
class SampleConfig:
    """The sample a language-model run prints at the end."""

    prompt: str = "\n"
    max_tokens: int = 200
    temperature: float = 0.8
    top_k: int | None = None
    top_p: float | None = None


@dataclass
class Config:
    """A whole run."""

    task: Literal["language_model", "classification", "labelling"] = "language_model"
    name: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)


def _describe(value: Any) -> str:
    return "null" if value is None else f"{value!r} ({type(value).__name__})"


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check ``value`` against a field's type; ints are accepted where floats are expected."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        choices = typing.get_args(annotation)
        if value in choices and type(value) is type(choices[choices.index(value)]):
            return value
        # YAML reads `precision: 32` as an int; the choice is the string "32".
        if str(value) in choices and isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected one of {list(choices)}, got {_describe(value)}")
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None:
            if type(None) in options:
                return None
            raise ConfigError(f"{key}: expected a value, got null")
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: got {_describe(value)}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {_describe(value)}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {_describe(value)}")
    if annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {_describe(value)}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {_describe(value)}")
    raise TypeError(f"unsupported config annotation {annotation!r} at {key}")


def _build(cls: type, values: Any, prefix: str) -> Any:
    if not isinstance(values, dict):
        where = prefix.rstrip(".") or "the config"
        raise ConfigError(f"{where}: expected a mapping of keys, got {_describe(values)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in values if k not in names]
    if unknown:
        key = f"{prefix}{unknown[0]}"
        raise ConfigError(f"unknown config key {key!r}; known keys here: {', '.join(names)}")
    kwargs = {}
    for name, value in values.items():
        annotation = hints[name]
        key = f"{prefix}{name}"
        if dataclasses.is_dataclass(annotation):
            kwargs[name] = _build(annotation, value, f"{key}.")
        else:
            kwargs[name] = _coerce(value, annotation, key)
    return cls(**kwargs)


def _check_ranges(config: Config) -> None:
    positive = {
        "model.embedding_dim": config.model.embedding_dim,
        "model.hidden_size": config.model.hidden_size,
        "model.num_layers": config.model.num_layers,
        "train.batch_size": config.train.batch_size,
        "train.bptt": config.train.bptt,
        "train.devices": config.train.devices,
        "train.num_nodes": config.train.num_nodes,
        "data.max_len": config.data.max_len,
        "optim.lr": config.optim.lr,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key}: expected a positive value, got {value!r}")
    for key, value in {
        "model.dropout": config.model.dropout,
        "model.recurrent_dropout": config.model.recurrent_dropout,
        "model.word_dropout": config.model.word_dropout,
    }.items():
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{key}: expected a probability in [0, 1), got {value!r}")
    for key, value in {
        "data.val_fraction": config.data.val_fraction,
        "data.test_fraction": config.data.test_fraction,
    }.items():
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{key}: expected a fraction in [0, 1), got {value!r}")
    sample = config.sample
    if sample.temperature < 0:
        raise ConfigError(f"sample.temperature: expected a value >= 0, got {sample.temperature!r}")
    if sample.top_k is not None and sample.top_k < 1:
        raise ConfigError(f"sample.top_k: expected a positive integer, got {sample.top_k!r}")
    if sample.top_p is not None and not 0.0 < sample.top_p <= 1.0:
        raise ConfigError(f"sample.top_p: expected a value in (0, 1], got {sample.top_p!r}")
    fractions = config.data.val_fraction + config.data.test_fraction
    if not 0.0 <= fractions < 1.0:
        raise ConfigError(
            f"data.val_fraction + data.test_fraction: expected a sum in [0, 1), got {fractions!r}"
        )
    if config.train.gradual_unfreezing and config.train.devices * config.train.num_nodes > 1:
        raise ConfigError(
            "train.gradual_unfreezing: runs in one process (DDP fixes the trainable parameters "
            f"at the start); got {config.train.devices * config.train.num_nodes} processes"
        )
    if config.model.tie_weights and config.model.embedding_dim != config.model.hidden_size:
        raise ConfigError(
            "model.tie_weights: needs model.embedding_dim == model.hidden_size, got "
            f"{config.model.embedding_dim} and {config.model.hidden_size}"
        )


def config_from_dict(values: dict[str, Any]) -> Config:
    """Build and check a Config from nested plain values (as read from YAML)."""
    config = _build(Config, values, "")
    _check_ranges(config)
    return config


def config_to_dict(config: Config) -> dict[str, Any]:
    """Plain nested values, ready for YAML or JSON."""
    return dataclasses.asdict(config)


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (values parsed as YAML scalars) to nested values."""
    result = {k: (dict(v) if isinstance(v, dict) else v) for k, v in values.items()}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. train.max_epochs=3")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        target = result
        for part in parts[:-1]:
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            target[part] = child = dict(child)
            target = child
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        # Overrides are scalars: text YAML would read as a mapping or list ("ROMEO:") stays text.
        target[parts[-1]] = raw if isinstance(value, dict | list) else value
    return result


DEFAULT_CONFIG = Path(__file__).parent / "configs" / "shakespeare_char.yaml"


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config and apply overrides; ``path=None`` reads the packaged default run
    (``rnnkit/configs/shakespeare_char.yaml``: a char LSTM on Tiny Shakespeare).

    >>> load_config(overrides=["train.max_epochs=2"]).train.max_epochs
    2
    """
    path = Path(path) if path is not None else DEFAULT_CONFIG
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {_describe(values)}")
    try:
        return config_from_dict(apply_overrides(values, overrides or []))
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
