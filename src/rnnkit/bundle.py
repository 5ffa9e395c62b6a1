"""A trained model as files: ``model.safetensors`` + ``model.json`` (config, tokenizer, labels).

The bundle is what ``rnnkit.load`` reads and what a deployment copies: plain safetensors weights
any safetensors reader opens, and JSON for everything else. Nothing in it is executed on load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from .config import Config, ConfigError, config_from_dict, config_to_dict
from .data.tokenizers import Tokenizer, tokenizer_from_json
from .models import build_model
from .serialization import CheckpointError, atomic_write, load_tree

__all__ = ["Bundle", "save_bundle", "load_bundle", "read_description", "BUNDLE_FORMAT"]

BUNDLE_FORMAT = "rnnkit-model-v1"


@dataclass
class Bundle:
    """A model ready to run, with what it needs to read input and name its outputs."""

    config: Config
    model: nn.Module
    tokenizer: Tokenizer
    labels: list[str] | None
    characters: Tokenizer | None = None


def save_bundle(directory: Path, bundle: Bundle, *, weights: bool = True) -> None:
    """Write ``directory/model.json`` and (unless ``weights=False``) ``model.safetensors``,
    each atomically. Training writes the description first, so checkpoints written during the
    run can be loaded before the final weights exist."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if weights:
        state = {
            k: v.detach().cpu().contiguous().clone() for k, v in bundle.model.state_dict().items()
        }
        atomic_write(directory / "model.safetensors", save_safetensors(state))
    description = {
        "format": BUNDLE_FORMAT,
        "config": config_to_dict(bundle.config),
        "tokenizer": bundle.tokenizer.to_json(),
        "characters": None if bundle.characters is None else bundle.characters.to_json(),
        "labels": bundle.labels,
    }
    atomic_write(directory / "model.json", json.dumps(description, indent=1).encode())


def _model_from(
    config: Config, tokenizer: Tokenizer, labels: list[str] | None, characters: Tokenizer | None
) -> nn.Module:
    num_chars = characters.vocab_size if characters is not None else 0
    return build_model(
        config.task, config.model, tokenizer.vocab_size, len(labels or []), num_chars
    )


def load_bundle(path: str | Path) -> Bundle:
    """Load a bundle directory, a run directory (its ``model/``), or a training checkpoint
    (``.safetensors`` written during training, with the run's ``model.json`` beside the run)."""
    path = Path(path)
    if path.is_dir() and (path / "model").is_dir():
        path = path / "model"
    if path.is_file():
        return _load_checkpoint(path)
    description_path = path / "model.json"
    if not description_path.exists():
        raise CheckpointError(
            f"{path}: expected a run directory or a model bundle (model.json + model.safetensors)"
        )
    config, tokenizer, labels, characters = read_description(description_path)
    if not (path / "model.safetensors").exists():
        for name in ("best", "last", "interrupted"):
            checkpoint = path.parent / "checkpoints" / f"{name}.safetensors"
            if checkpoint.exists():
                return _load_checkpoint(checkpoint)
    try:
        weights = load_safetensors((path / "model.safetensors").read_bytes())
    except FileNotFoundError:
        raise CheckpointError(f"{path / 'model.safetensors'}: file not found") from None
    except SafetensorError as error:
        raise CheckpointError(
            f"{path / 'model.safetensors'}: not a readable safetensors file (truncated or "
            f"corrupted?): {error}"
        ) from None
    model = _model_from(config, tokenizer, labels, characters)
    _load_weights(model, weights, path / "model.safetensors")
    return Bundle(config, model, tokenizer, labels, characters)


def read_description(
    path: Path,
) -> tuple[Config, Tokenizer, list[str] | None, Tokenizer | None]:
    """The config, tokenizer, labels and character tokenizer (or None) in ``model.json``."""
    try:
        description = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(
            f"{path}: not valid JSON (truncated or corrupted?): {error}"
        ) from None
    if not isinstance(description, dict) or description.get("format") != BUNDLE_FORMAT:
        raise CheckpointError(f"{path}: expected an rnnkit model description ({BUNDLE_FORMAT})")
    try:
        config = config_from_dict(description["config"])
        tokenizer = tokenizer_from_json(description["tokenizer"])
        characters = description.get("characters")
        characters = None if characters is None else tokenizer_from_json(characters)
    except (KeyError, ConfigError, ValueError) as error:
        raise CheckpointError(f"{path}: {error}") from None
    return config, tokenizer, description.get("labels"), characters


def _load_weights(model: nn.Module, weights: dict, where: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{where}: weights do not match the model: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    for name, tensor in weights.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"{where}: {name} has shape {tuple(tensor.shape)}, the model expects "
                f"{tuple(expected[name].shape)}"
            )
    model.load_state_dict(weights)
    model.eval()


def _load_checkpoint(path: Path) -> Bundle:
    """A training checkpoint: weights under ``state_dict`` with the ``model.`` prefix."""
    run_dir = path.parent.parent
    description_path = run_dir / "model" / "model.json"
    if not description_path.exists():
        raise CheckpointError(f"{path}: a checkpoint needs its run's model/model.json beside it")
    config, tokenizer, labels, characters = read_description(description_path)
    checkpoint = load_tree(path)
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a training checkpoint with a state_dict")
    weights = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    model = _model_from(config, tokenizer, labels, characters)
    _load_weights(model, weights, path)
    return Bundle(config, model, tokenizer, labels, characters)
