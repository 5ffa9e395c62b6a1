"""``rnnkit.summary``: layer rows whose shapes and parameter counts are the model's own."""

import json

import pytest
import torch
import typer
from typer.testing import CliRunner

from rnnkit.cli.export import summary as summary_command
from rnnkit.config import load_config
from rnnkit.data.prepare import prepare_data
from rnnkit.models import LanguageModel, SequenceClassifier, build_model
from rnnkit.summary import SummaryRow, format_summary, summarize, summary_from_config


def total_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_rows_count_every_parameter_once_even_when_tied():
    model = LanguageModel(30, embedding_dim=16, hidden_size=16, num_layers=2, tie_weights=True)
    rows = summarize(model, (torch.zeros(2, 7, dtype=torch.long),))
    assert sum(row.params for row in rows) == total_parameters(model)
    by_name = {row.name: row for row in rows}
    assert by_name["embedding"].params == 30 * 16
    assert by_name["decoder"].params == 30  # the tied weight is the embedding's; bias only
    assert by_name["rnn"].params == total_parameters(model.rnn)


def test_rows_follow_the_calls_with_the_shapes_of_a_real_forward():
    model = SequenceClassifier(40, 3, embedding_dim=6, hidden_size=5, num_layers=2,
                               bidirectional=True, cell="gru")  # fmt: skip
    x, lengths = torch.randint(1, 40, (4, 9)), torch.tensor([9, 2, 5, 1])
    rows = summarize(model, (x, lengths))
    with torch.no_grad():
        features = model.features(x)
        outputs, h_n = model.rnn(features, lengths=lengths)
        logits = model(x, lengths)
    assert [(row.name, row.type) for row in rows] == [
        ("word_dropout", "WordDropout"),
        ("embedding", "Embedding"),
        ("dropout", "Dropout"),
        ("rnn", "GRU"),
        ("dropout", "Dropout"),
        ("head", "Linear"),
    ]
    assert rows[0].output_shapes == (tuple(x.shape),)  # token ids, some replaced in training
    assert rows[1].output_shapes == (tuple(features.shape),)
    assert rows[3].output_shapes == (tuple(outputs.shape), tuple(h_n.shape))
    assert rows[3].output_shapes == ((4, 9, 10), (4, 4, 5))
    assert rows[-1].output_shapes == (tuple(logits.shape),)
    assert sum(row.params for row in rows) == total_parameters(model)


def test_summarize_leaves_the_model_as_it_found_it():
    model = LanguageModel(12, embedding_dim=4, hidden_size=6, dropout=0.5).train()
    summarize(model, (torch.zeros(1, 3, dtype=torch.long),))
    assert model.training
    assert all(not module._forward_hooks for module in model.modules())


def test_format_summary_has_the_rows_and_the_totals():
    model = LanguageModel(12, embedding_dim=4, hidden_size=6)
    model.embedding.weight.requires_grad_(False)
    text = format_summary(summarize(model, (torch.zeros(1, 3, dtype=torch.long),)), "Model: lm")
    lines = text.splitlines()
    assert lines[0] == "Model: lm"
    assert "Layer (type)" in text and "Output Shape" in text and "Param #" in text
    assert "rnn (LSTM)" in text and "[(1, 3, 6), (1, 1, 6), (1, 1, 6)]" in text
    total = total_parameters(model)
    assert f" Total params: {total:,}" in lines
    assert f" Trainable params: {total - 48:,}" in lines
    assert " Non-trainable params: 48" in lines


def test_shape_of_a_vector_output_reads_as_a_tuple():
    row = SummaryRow("pool", "Pool", ((5,),), 0, 0)
    assert "(5,)" in format_summary([row])


@pytest.fixture
def classifier_overrides(tmp_path) -> list[str]:
    """A bidirectional 2-layer LSTM classifier on a small JSONL file of three labels."""
    path = tmp_path / "reviews.jsonl"
    words = ["good", "bad", "fine", "dull", "great", "awful"]
    records = [
        {"text": " ".join(words[(i + k) % 6] for k in range(2 + i % 5)), "label": f"c{i % 3}"}
        for i in range(30)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return [
        "task=classification",
        "data.dataset=file",
        f"data.path={path}",
        "data.tokenizer=word",
        "data.max_len=20",
        "model.cell=lstm",
        "model.bidirectional=true",
        "model.num_layers=2",
        "model.hidden_size=8",
        "model.embedding_dim=4",
        "train.batch_size=4",
    ]


def test_summary_from_config_of_a_bidirectional_two_layer_classifier(classifier_overrides):
    config = load_config(overrides=classifier_overrides)
    text = summary_from_config(config)
    data = prepare_data(config)
    model = build_model("classification", config.model, data.tokenizer.vocab_size, len(data.labels))
    assert text.splitlines()[0] == (
        f'Model: "SequenceClassifier" (classification, vocabulary {data.tokenizer.vocab_size}, '
        "3 labels; input tokens (4, 20))"
    )
    assert "rnn (LSTM)" in text
    assert "[(4, 20, 16), (4, 4, 8), (4, 4, 8)]" in text  # output (B, T, 2H); h_n, c_n (2L, B, H)
    assert "head (Linear)" in text and "(4, 3)" in text
    assert f" Total params: {total_parameters(model):,}" in text.splitlines()


def test_cli_summary(classifier_overrides):
    app = typer.Typer()
    app.command()(summary_command)
    runner = CliRunner()
    args = [arg for override in classifier_overrides for arg in ("--set", override)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "rnn (LSTM)" in result.stdout and "Total params:" in result.stdout

    bad = runner.invoke(app, [*args, "-s", "model.hiden_size=3"])
    assert bad.exit_code == 2
    assert bad.stderr.startswith("error: ") and "model.hiden_size" in bad.stderr
