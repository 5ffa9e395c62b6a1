"""Lightning DDP on CPU (gloo): 2 processes on localhost train the same weights as 1 process
with the same global batch."""

import pytest
import torch
from safetensors.torch import load_file

from rnnkit.training.metrics_log import read_metrics
from tests.training.conftest import rnnkit_cli, tiny_overrides

# Summation order differs between one process and two (gradients are averaged across
# processes by all-reduce), so weights agree to float32 rounding, not bit for bit.
TOLERANCE = 1e-6


def _train_with_one_and_two_processes(tmp_path, sets):
    """``rnnkit train`` with ``sets`` in 1 process (run dir ``one``) and 2 (``two``); returns
    the two runs' final weights."""
    one = rnnkit_cli("train", "--quiet", "--run-dir", tmp_path / "one", *sets)
    two = rnnkit_cli("train", "--quiet", "--run-dir", tmp_path / "two", "--devices", "2", *sets)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    return (load_file(tmp_path / name / "model" / "model.safetensors") for name in ("one", "two"))


def test_two_processes_match_one(tiny_text, tmp_path):
    sets = [
        a
        for kv in tiny_overrides(tiny_text, "train.max_epochs=1", "diagnostics.every_n_steps=0")
        for a in ("--set", kv)
    ]
    a, b = _train_with_one_and_two_processes(tmp_path, sets)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], rtol=0, atol=TOLERANCE), name
    rows_one = read_metrics(tmp_path / "one" / "metrics.csv")
    rows_two = read_metrics(tmp_path / "two" / "metrics.csv")
    final = [r for r in rows_one if "val_loss" in r][-1]["val_loss"]
    assert [r for r in rows_two if "val_loss" in r][-1]["val_loss"] == pytest.approx(
        final, rel=1e-5
    )
    # the logged training loss is the mean over both processes' halves of the batch
    losses_one = [r["train_loss"] for r in rows_one if "train_loss" in r]
    losses_two = [r["train_loss"] for r in rows_two if "train_loss" in r]
    assert losses_two == pytest.approx(losses_one, rel=1e-5)


def test_two_processes_match_one_on_variable_length_labelling(tmp_path):
    """Per-token losses over slices of different lengths: the loss is weighted by the global
    token count, so 2 processes still train the weights 1 process does."""
    words = ["dogs", "cats", "run", "sleep", "fast"]
    lines = []
    for i in range(96):
        n = 2 + (i * 7) % 9
        lines += [f"{j + 1}\t{words[(i + j) % 5]}\t_\t{'NV'[(i + j) % 2]}\t_\t_\t0\tdep\t_\t_"
                  for j in range(n)]  # fmt: skip
        lines.append("")
    (tmp_path / "tags.conllu").write_text("\n".join(lines))
    overrides = ["task=labelling", "data.dataset=file", f"data.path={tmp_path / 'tags.conllu'}",
                 "model.hidden_size=16", "model.embedding_dim=8", "model.dropout=0.0",
                 "model.bidirectional=true", "train.batch_size=8", "train.max_epochs=1",
                 "train.max_minutes=null", "train.val_every_n_steps=null",
                 "train.limit_val_batches=null", "diagnostics.every_n_steps=0",
                 "sample.prompt=x"]  # fmt: skip
    sets = [a for kv in overrides for a in ("--set", kv)]
    a, b = _train_with_one_and_two_processes(tmp_path, sets)
    for name in a:
        assert torch.allclose(a[name], b[name], rtol=0, atol=TOLERANCE), name
