"""The command line through its real entry point (``python -m rnnkit``), on a tiny run."""

import json
import os

import pytest

from tests.training.conftest import rnnkit_cli, tiny_overrides


def _set(*overrides: str) -> list[str]:
    return [a for kv in overrides for a in ("--set", kv)]


@pytest.fixture(scope="module")
def run_dir(tiny_text, tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    result = rnnkit_cli(
        "train",
        "--run-dir",
        run,
        "--json-lines",
        *_set(*tiny_overrides(tiny_text, "train.max_epochs=1")),
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[-1]["event"] == "done" and "val_loss" in records[-1]
    assert any(r["event"] == "validation" for r in records)
    assert any(r["event"] == "train" and "train_loss" in r for r in records)
    return run


def test_evaluate_prints_metrics(run_dir):
    result = rnnkit_cli("evaluate", run_dir, "--split", "val", "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["split"] == "val" and metrics["val_loss"] > 0


def test_evaluate_an_empty_split_is_an_error(run_dir):
    result = rnnkit_cli("evaluate", run_dir, "--split", "test")
    assert result.returncode == 2
    assert "error: the test split of 'file' is empty" in result.stderr


def test_generate_is_reproducible_with_a_seed(run_dir):
    args = (
        "generate",
        run_dir,
        "--prompt",
        "ROMEO:",
        "--max-tokens",
        "30",
        "--seed",
        "3",
        "--temperature",
        "1.0",
        "--top-k",
        "10",
        "--top-p",
        "0.9",
    )
    first, second = rnnkit_cli(*args), rnnkit_cli(*args)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout and first.stdout.startswith("ROMEO:")
    assert len(first.stdout) == len("ROMEO:") + 30 + 1


def test_predict_reads_arguments_files_and_stdin(run_dir, tmp_path):
    result = rnnkit_cli("predict", run_dir, "To be or not to b", "--json")
    assert result.returncode == 0, result.stderr
    [answer] = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(answer["next"]) == 5
    (tmp_path / "lines.txt").write_text("first line\nsecond\n")
    assert len(rnnkit_cli("predict", run_dir, tmp_path / "lines.txt").stdout.splitlines()) == 2
    piped = rnnkit_cli("predict", run_dir, "-", input="one\ntwo\nthree\n")
    assert len(piped.stdout.splitlines()) == 3


def test_quiet_prints_nothing_but_the_errors(tiny_text, tmp_path):
    result = rnnkit_cli(
        "train",
        "--quiet",
        "--run-dir",
        tmp_path / "q",
        *_set(*tiny_overrides(tiny_text, "train.max_steps=3")),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "model.hiden_size=3"], "unknown config key 'model.hiden_size'"),
        (["--set", "train.batch_size=big"], "train.batch_size: expected an integer, got 'big'"),
        (["--set", "data.dataset=nope"], "data.dataset: expected one of tinyshakespeare"),
        (["missing.yaml"], "missing.yaml: config file not found"),
    ],
)
def test_bad_configs_fail_fast_naming_the_key(args, message, tmp_path):
    result = rnnkit_cli("train", "--run-dir", tmp_path / "r", *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()


def test_an_existing_run_directory_is_not_overwritten(run_dir):
    before = sorted(p.name for p in run_dir.iterdir())
    result = rnnkit_cli("train", "--run-dir", run_dir)
    assert result.returncode == 2 and "exists and is not empty" in result.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_loading_a_damaged_bundle_is_a_clear_error(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir / "model", copy)
    data = (copy / "model.safetensors").read_bytes()
    (copy / "model.safetensors").write_bytes(data[: len(data) // 2])
    result = rnnkit_cli("evaluate", copy, "--split", "val")
    assert result.returncode == 2
    assert "model.safetensors: not a readable safetensors file" in result.stderr


def test_summary_and_datasets_through_the_entry_point(tiny_text, shared_data):
    result = rnnkit_cli("summary", *_set(*tiny_overrides(tiny_text)))
    assert result.returncode == 0, result.stderr
    assert "LSTM" in result.stdout and "Total params" in result.stdout
    listed = rnnkit_cli(
        "datasets", "list", "--json", env={**os.environ, "RNNKIT_DATA": str(shared_data)}
    )
    assert listed.returncode == 0, listed.stderr
    names = {json.loads(line)["name"] for line in listed.stdout.splitlines()}
    assert {"tinyshakespeare", "ptb", "imdb", "ud_english_ewt"} <= names
