"""``rnnkit.export``: ONNX and TorchScript files that match PyTorch, or no file at all.

Most tests export untrained models built straight from a config (random weights exercise the
gate layouts as well as trained ones); the command-line tests use a real run directory.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
import typer
from typer.testing import CliRunner

import rnnkit.export as export_module
from rnnkit.api import Trained
from rnnkit.bundle import Bundle, save_bundle
from rnnkit.cli.export import export as export_command
from rnnkit.config import load_config
from rnnkit.data.prepare import VENDORED
from rnnkit.data.tokenizers import make_tokenizer
from rnnkit.export import (
    MIN_OPSET,
    TOLERANCE,
    ExportCheckError,
    ExportError,
    export_onnx,
    export_torchscript,
)
from rnnkit.layers import GRU
from rnnkit.models import build_model
from rnnkit.training.engine import train

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER = make_tokenizer("char")
TOKENIZER.fit(["abcdefghijklmnopqrstuvwxyz"])
LABELS = {"language_model": None, "classification": ["neg", "pos"], "labelling": ["N", "V", "X"]}

# TorchScript is deprecated in torch 2.13: loading the exported file warns, by design.
jit_load_deprecated = pytest.mark.filterwarnings(
    "ignore:`torch.jit.load` is deprecated:DeprecationWarning"
)


def make_trained(task: str, *overrides: str) -> Trained:
    """An untrained model for ``task`` with a 30-token vocabulary, as ``rnnkit.load`` gives."""
    config = load_config(
        overrides=[
            f"task={task}",
            "model.hidden_size=12",
            "model.embedding_dim=8",
            "model.dropout=0.0",
            *overrides,
        ]
    )
    labels = LABELS[task]
    model = build_model(task, config.model, TOKENIZER.vocab_size, len(labels or [])).eval()
    return Trained(Bundle(config, model, TOKENIZER, labels))


def onnx_session(path: Path) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def tokens(batch: int, steps: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(
        0, TOKENIZER.vocab_size, (batch, steps), generator=torch.Generator().manual_seed(seed)
    )


# -- ONNX ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_onnx_language_model_streams_like_pytorch(tmp_path, cell):
    trained = make_trained("language_model", f"model.cell={cell}", "model.num_layers=2")
    report = export_onnx(trained, tmp_path / "lm.onnx")
    assert report.path.is_file() and report.max_abs_diff <= TOLERANCE
    assert report.opset >= MIN_OPSET and len(report.checked_shapes) >= 2
    states = ("h0", "c0") if cell == "lstm" else ("h0",)
    assert report.inputs == ("tokens", *states)
    assert report.outputs == ("logits", "h_n", "c_n")[: 1 + len(states)]

    session = onnx_session(report.path)
    x = tokens(3, 17)
    zeros = {name: np.zeros((2, 3, 12), np.float32) for name in states}
    first = session.run(None, {"tokens": x[:, :10].numpy(), **zeros})
    carried = dict(zip(states, first[1:], strict=True))  # h_n, c_n -> the next h0, c0
    second = session.run(None, {"tokens": x[:, 10:].numpy(), **carried})
    with torch.no_grad():
        logits, final = trained.model(x)
    final = final if isinstance(final, tuple) else (final,)
    streamed = np.concatenate([first[0], second[0]], axis=1)
    np.testing.assert_allclose(streamed, logits.numpy(), atol=TOLERANCE)
    for got, want in zip(second[1:], final, strict=True):
        np.testing.assert_allclose(got, want.numpy(), atol=TOLERANCE)


def test_onnx_axes_are_named_and_only_standard_operators_are_used(tmp_path):
    report = export_onnx(make_trained("language_model"), tmp_path / "lm.onnx")
    model = onnx.load(report.path)
    dims = {
        value.name: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        for value in [*model.graph.input, *model.graph.output]
    }
    assert dims == {
        "tokens": ["batch", "time"],
        "h0": [1, "batch", 12],
        "c0": [1, "batch", 12],
        "logits": ["batch", "time", TOKENIZER.vocab_size],
        "h_n": [1, "batch", 12],
        "c_n": [1, "batch", 12],
    }
    assert {node.domain for node in model.graph.node} == {""}
    assert "LSTM" in {node.op_type for node in model.graph.node}


def test_onnx_file_runs_without_rnnkit_or_torch(tmp_path):
    report = export_onnx(make_trained("classification", "model.cell=gru"), tmp_path / "m.onnx")
    script = (
        "import sys; sys.modules['rnnkit'] = sys.modules['torch'] = None\n"
        "import numpy as np, onnxruntime\n"
        f"s = onnxruntime.InferenceSession({str(report.path)!r}, "
        "providers=['CPUExecutionProvider'])\n"
        "out, = s.run(None, {'tokens': np.ones((2, 6), np.int64), "
        "'lengths': np.array([6, 3], np.int64)})\n"
        "print(out.shape)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(2, 2)"


def padded_batch(lengths: list[int], seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens (B, max length) with pad id 0 after each sequence, and the lengths (B,)."""
    x = tokens(len(lengths), max(lengths), seed)
    for row, length in enumerate(lengths):
        x[row, length:] = 0
    return x, torch.tensor(lengths)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_onnx_classifier_padded_batch_matches_each_sequence_alone(tmp_path, cell):
    trained = make_trained(
        "classification", f"model.cell={cell}", "model.bidirectional=true", "model.num_layers=2"
    )
    report = export_onnx(trained, tmp_path / "classifier.onnx")
    assert report.inputs == ("tokens", "lengths") and report.outputs == ("logits",)
    x, lengths = padded_batch([11, 4, 1, 8])
    (logits,) = onnx_session(report.path).run(
        None, {"tokens": x.numpy(), "lengths": lengths.numpy()}
    )
    with torch.no_grad():
        alone = [
            trained.model(x[b : b + 1, :n], torch.tensor([n]))[0] for b, n in enumerate(lengths)
        ]
    np.testing.assert_allclose(logits, torch.stack(alone).numpy(), atol=TOLERANCE)


def test_onnx_tagger_matches_pytorch_on_the_valid_steps(tmp_path):
    trained = make_trained("labelling", "model.cell=lstm", "model.bidirectional=true")
    report = export_onnx(trained, tmp_path / "tagger.onnx")
    x, lengths = padded_batch([7, 13, 2])
    (tags,) = onnx_session(report.path).run(None, {"tokens": x.numpy(), "lengths": lengths.numpy()})
    assert tags.shape == (3, 13, 3)
    with torch.no_grad():
        padded = trained.model(x, lengths).numpy()
        for b, n in enumerate(lengths.tolist()):
            alone = trained.model(x[b : b + 1, :n], torch.tensor([n]))[0]
            np.testing.assert_allclose(tags[b, :n], alone.numpy(), atol=TOLERANCE)
    np.testing.assert_allclose(tags, padded, atol=TOLERANCE)  # padded steps too


def test_onnx_mismatch_raises_with_the_numbers_and_writes_nothing(tmp_path, monkeypatch):
    # torch.nn's GRU gate order where ONNX expects z, r, h: the check must catch it.
    monkeypatch.setitem(export_module._ONNX_GATE_ORDER, GRU, (0, 1, 2))
    trained = make_trained("language_model", "model.cell=gru")
    target = tmp_path / "out" / "lm.onnx"
    with pytest.raises(ExportCheckError, match=r"max \|diff\| [0-9.e+-]+ > 0.0001 \(logits at B=1"):
        export_onnx(trained, target)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no temporary file left behind


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("model.cell=mingru", "model.cell='mingru'"),
        ("model.cell=minlstm", "model.cell='minlstm'"),
        ("model.layer_norm=true", "model.layer_norm=true"),
    ],
)
@pytest.mark.parametrize("write", [export_onnx, export_torchscript])
def test_unsupported_variants_are_named(tmp_path, setting, message, write):
    trained = make_trained("classification", setting)
    with pytest.raises(ExportError, match=message.replace(".", r"\.")):
        write(trained, tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


def test_onnx_opset_below_the_exporters_minimum_is_refused(tmp_path):
    with pytest.raises(ExportError, match=f"opset {MIN_OPSET} or later, got 14"):
        export_onnx(make_trained("language_model"), tmp_path / "lm.onnx", opset=14)


# -- TorchScript ---------------------------------------------------------------------------------


@jit_load_deprecated
def test_torchscript_language_model_round_trip(tmp_path):
    trained = make_trained("language_model", "model.cell=lstm", "model.num_layers=2")
    report = export_torchscript(trained, tmp_path / "lm.pt")
    assert report.max_abs_diff <= TOLERANCE and report.opset is None
    loaded = torch.jit.load(str(report.path))
    x, state = tokens(5, 21), (torch.randn(2, 5, 12), torch.randn(2, 5, 12))
    with torch.no_grad():
        logits, h_n, c_n = loaded(x, *state)
        want_logits, (want_h, want_c) = trained.model(x, state)
    for got, want in [(logits, want_logits), (h_n, want_h), (c_n, want_c)]:
        torch.testing.assert_close(got, want, atol=TOLERANCE, rtol=0)


@jit_load_deprecated
def test_torchscript_classifier_round_trip(tmp_path):
    trained = make_trained(
        "classification", "model.cell=gru", "model.bidirectional=true", "model.pooling=max"
    )
    report = export_torchscript(trained, tmp_path / "classifier.pt")
    loaded = torch.jit.load(str(report.path))
    x, lengths = padded_batch([3, 15, 9, 1, 15])
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(x, lengths), trained.model(x, lengths), atol=TOLERANCE, rtol=0
        )


def test_torchscript_mismatch_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "TOLERANCE", -1.0)  # nothing can pass
    with pytest.raises(ExportCheckError, match="differs from PyTorch"):
        export_torchscript(make_trained("language_model", "model.cell=gru"), tmp_path / "lm.pt")
    assert list(tmp_path.iterdir()) == []


# -- the command line ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory) -> Path:
    """A real run directory: a char LSTM trained for a few steps."""
    root = tmp_path_factory.mktemp("export")
    text = root / "tiny.txt"
    text.write_text(VENDORED["tinyshakespeare"].read_text()[:3000])
    config = load_config(
        overrides=[
            "data.dataset=file",
            f"data.path={text}",
            "model.hidden_size=16",
            "model.embedding_dim=8",
            "train.batch_size=8",
            "train.bptt=16",
            "train.max_epochs=1",
            "train.max_minutes=null",
            "train.val_every_n_steps=null",
            "train.limit_val_batches=null",
            "diagnostics.every_n_steps=0",
            "sample.max_tokens=5",
        ]
    )
    return train(config, run_dir=root / "run", quiet=True).run_dir


def cli_app() -> typer.Typer:
    app = typer.Typer()
    app.command()(export_command)
    return app


def test_cli_export_writes_the_default_path_and_reports_the_difference(lm_run):
    result = CliRunner().invoke(cli_app(), [str(lm_run)])
    assert result.exit_code == 0, result.output
    path, figure = result.stdout.splitlines()
    assert Path(path) == lm_run / "export" / "model.onnx" and Path(path).is_file()
    assert figure.startswith("max |diff| vs PyTorch: ")
    assert float(figure.split(": ")[1].split()[0]) <= TOLERANCE


@jit_load_deprecated
def test_cli_export_torchscript_to_a_chosen_path(lm_run, tmp_path):
    target = tmp_path / "deploy" / "lm.pt"
    result = CliRunner().invoke(cli_app(), [str(lm_run), "-f", "torchscript", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == str(target)
    logits, _, _ = torch.jit.load(str(target))(
        tokens(1, 4), torch.zeros(1, 1, 16), torch.zeros(1, 1, 16)
    )
    assert logits.shape[:2] == (1, 4)


def test_cli_export_errors(tmp_path, monkeypatch):
    runner = CliRunner()
    missing = runner.invoke(cli_app(), [str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and missing.stderr.startswith("error: ")

    run = tmp_path / "mingru"
    trained = make_trained("classification", "model.cell=mingru")
    save_bundle(run / "model", trained.bundle)
    unsupported = runner.invoke(cli_app(), [str(run)])
    assert unsupported.exit_code == 2 and "model.cell='mingru'" in unsupported.stderr

    bad_format = runner.invoke(cli_app(), [str(run), "--format", "tflite"])
    assert bad_format.exit_code == 2

    run = tmp_path / "gru"
    save_bundle(run / "model", make_trained("language_model", "model.cell=gru").bundle)
    monkeypatch.setitem(export_module._ONNX_GATE_ORDER, GRU, (0, 1, 2))
    mismatch = runner.invoke(cli_app(), [str(run)])
    assert mismatch.exit_code == 1 and "not written" in mismatch.stderr
    assert not (run / "export" / "model.onnx").exists()


def test_python_m_rnnkit_export(lm_run, tmp_path):
    target = tmp_path / "lm.onnx"
    result = subprocess.run(
        [sys.executable, "-m", "rnnkit", "export", str(lm_run), "--output", str(target)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == str(target) and target.is_file()
    assert result.stderr == ""
