"""Shared fixtures: deterministic seeds and tolerances per dtype."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def shared_data():
    """The real datasets beside the project (``../shared/data``; present in CI too)."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not path.is_dir():
        pytest.fail(f"the shared datasets are expected at {path}")
    return path


@pytest.fixture(scope="session")
def tiny_text(tmp_path_factory):
    """The first 6000 characters of Tiny Shakespeare, as a file."""
    from rnnkit.data.prepare import VENDORED

    path = tmp_path_factory.mktemp("data") / "tiny.txt"
    path.write_text(VENDORED["tinyshakespeare"].read_text()[:6000])
    return path
