"""``rnnkit datasets list|fetch|verify`` through typer's test runner (never the network)."""

import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rnnkit.cli.datasets import app
from rnnkit.data import registry

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any download attempt fails the test; tests that fetch install their own opener."""

    def refuse(url: str) -> io.BytesIO:
        raise AssertionError(f"tests must not download {url}")

    monkeypatch.setattr(registry, "open_url", refuse)


@pytest.fixture
def shared_data(monkeypatch):
    """RNNKIT_DATA pointing at the shared, read-only copy of the datasets."""
    monkeypatch.setenv("RNNKIT_DATA", str(SHARED_DATA))
    return SHARED_DATA


@pytest.fixture
def empty_data(monkeypatch, tmp_path):
    """RNNKIT_DATA pointing at an empty directory."""
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path))
    return tmp_path


def test_list_shows_every_dataset_present(shared_data):
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    for name in registry.DATASETS:
        assert name in result.stdout
    assert "present" in result.stdout and "missing" not in result.stdout


def test_list_json_has_one_line_per_dataset(empty_data):
    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert [entry["name"] for entry in entries] == list(registry.DATASETS)
    ptb = next(entry for entry in entries if entry["name"] == "ptb")
    assert ptb["files"] == 3 and ptb["size"] == registry.DATASETS["ptb"].size
    assert ptb["status"] == "missing" and ptb["present_files"] == 0
    assert ptb["dir"] == str(empty_data.resolve() / "ptb")


def test_verify_a_good_copy_exits_0(shared_data):
    result = runner.invoke(app, ["verify", "tinyshakespeare"])
    assert result.exit_code == 0, result.output
    assert "input.txt" in result.stdout and "all 1 file(s) ok" in result.stdout


def test_verify_all_exits_0_on_the_shared_copy(shared_data):
    result = runner.invoke(app, ["verify", "--all"])
    assert result.exit_code == 0, result.output
    total = sum(len(dataset.files) for dataset in registry.DATASETS.values())
    assert f"all {total} file(s) ok" in result.stdout


def test_verify_a_corrupted_copy_exits_1_with_expected_and_got(empty_data):
    file = registry.DATASETS["tinyshakespeare"].file("input.txt")
    (empty_data / "tinyshakespeare").mkdir()
    (empty_data / "tinyshakespeare" / "input.txt").write_bytes(b"?" * file.size)
    result = runner.invoke(app, ["verify", "tinyshakespeare"])
    assert result.exit_code == 1
    assert "wrong sha256" in result.stderr and f"expected {file.sha256}, got " in result.stderr
    assert "rnnkit datasets fetch tinyshakespeare" in result.stderr


def test_verify_a_missing_copy_exits_1_naming_the_fixes(empty_data):
    result = runner.invoke(app, ["verify", "ptb"])
    assert result.exit_code == 1
    assert "ptb/ptb.test.txt: missing" in result.stderr
    assert "rnnkit datasets fetch ptb" in result.stderr and "RNNKIT_DATA" in result.stderr


def test_verify_an_unknown_dataset_exits_1_listing_the_known_ones(empty_data):
    result = runner.invoke(app, ["verify", "nope"])
    assert result.exit_code == 1
    assert "unknown dataset 'nope'" in result.stderr and "tinyshakespeare" in result.stderr


@pytest.mark.parametrize("args", [["verify"], ["verify", "ptb", "--all"]])
def test_verify_needs_exactly_one_of_name_and_all(empty_data, args):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "--all" in result.stderr


def test_fetch_downloads_through_the_module_opener(empty_data, monkeypatch):
    """Serves the shared copy's bytes as if they came from the registered URL."""
    file = registry.DATASETS["tinyshakespeare"].file("input.txt")
    data = (SHARED_DATA / "tinyshakespeare" / "input.txt").read_bytes()
    served: list[str] = []

    def fake_web(url: str) -> io.BytesIO:
        served.append(url)
        return io.BytesIO(data)

    monkeypatch.setattr(registry, "open_url", fake_web)
    result = runner.invoke(app, ["fetch", "tinyshakespeare"])
    assert result.exit_code == 0, result.output
    assert served == [file.url]
    assert (empty_data / "tinyshakespeare" / "input.txt").read_bytes() == data
    assert "downloaded 1 file(s)" in result.stdout


def test_fetch_of_an_unreproducible_dataset_exits_1_pointing_at_rnnkit_data(empty_data):
    result = runner.invoke(app, ["fetch", "ett"])
    assert result.exit_code == 1
    assert "byte-for-byte" in result.stderr and "RNNKIT_DATA" in result.stderr
    assert not (empty_data / "ett").exists()


def test_fetch_of_a_verified_copy_downloads_nothing(shared_data):
    result = runner.invoke(app, ["fetch", "ptb"])
    assert result.exit_code == 0, result.output
    assert "downloaded 0 file(s), kept 3 already verified" in result.stdout
