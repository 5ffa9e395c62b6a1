"""Files that hold tensors and structure, safely: safetensors + JSON, never pickle.

``save_tree(path, tree)`` stores a nested structure of dicts, lists, tuples, numbers, strings and
tensors in one safetensors file: the tensors as tensors, the structure as JSON in the file's
metadata. ``load_tree`` reads it back without executing anything from the file. Writes are atomic
(temp file in the same directory, fsync, rename), so a crash leaves the old file or the new one,
never a torn one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

__all__ = ["CheckpointError", "atomic_write", "save_tree", "load_tree", "FORMAT"]

FORMAT = "rnnkit-tree-v1"


class CheckpointError(ValueError):
    """A file that is not a readable rnnkit file (missing, truncated, corrupted, or foreign)."""


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _encode(value: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    if isinstance(value, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = value.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and "__tensor__" not in value:
            return {k: _encode(v, tensors, f"{where}.{k}") for k, v in value.items()}
        return {
            "__items__": [
                [_encode(k, tensors, where), _encode(v, tensors, f"{where}[{k!r}]")]
                for k, v in value.items()
            ]
        }
    if isinstance(value, list | tuple):
        items = [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else {"__tuple__": items}
    raise TypeError(f"cannot store {type(value).__name__} at {where or 'the top level'}")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if "__float__" in value:
        return float(value["__float__"])
    if "__tuple__" in value:
        return tuple(_decode(v, tensors) for v in value["__tuple__"])
    if "__items__" in value:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in value["__items__"]}
    return {k: _decode(v, tensors) for k, v in value.items()}


def save_tree(path: str | Path, tree: Any) -> None:
    """Store ``tree`` atomically at ``path`` (safetensors with the structure as JSON metadata)."""
    tensors: dict[str, torch.Tensor] = {}
    structure = _encode(tree, tensors, "")
    metadata = {"format": FORMAT, "tree": json.dumps(structure, allow_nan=False)}
    atomic_write(path, save_safetensors(tensors, metadata=metadata))


def load_tree(path: str | Path) -> Any:
    """Read a file written by ``save_tree``; errors name the file and what is wrong with it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    try:
        tensors = load_safetensors(data)
        header_length = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + header_length]).get("__metadata__") or {}
    except (SafetensorError, ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(
            f"{path}: not a readable safetensors file (truncated or corrupted?): {error}"
        ) from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: expected an rnnkit file (format {FORMAT!r}), got format "
            f"{metadata.get('format')!r}"
        )
    try:
        return _decode(json.loads(metadata["tree"]), tensors)
    except (KeyError, ValueError) as error:
        raise CheckpointError(f"{path}: the file's structure is damaged: {error!r}") from None
