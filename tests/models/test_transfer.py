"""Transfer learning: a classifier starts from a language model's encoder, unfreezing gradually."""

import pytest
import torch

import rnnkit.api
from rnnkit.models import LanguageModel, SequenceClassifier
from rnnkit.models.transfer import copy_encoder, freeze_for_epoch, unfreezing_groups


def test_encoder_weights_are_copied_into_the_forward_direction():
    lm = LanguageModel(30, 8, 8, 2)
    classifier = SequenceClassifier(30, 2, 8, 8, 2, bidirectional=True)
    copied, skipped = copy_encoder(classifier, lm)
    assert "embedding.weight" in copied and "rnn.weight_hh_l1" in copied
    assert all("reverse" not in name for name in copied)
    assert skipped == ["rnn.weight_ih_l1"]  # reads both directions: 16 wide, not 8
    assert torch.equal(classifier.rnn.weight_ih_l0, lm.rnn.weight_ih_l0)
    assert torch.equal(classifier.rnn.weight_hh_l1, lm.rnn.weight_hh_l1)
    unidirectional = SequenceClassifier(30, 2, 8, 8, 2)
    assert copy_encoder(unidirectional, lm)[1] == []
    assert torch.equal(unidirectional.rnn.weight_ih_l1, lm.rnn.weight_ih_l1)


def test_mismatched_sizes_are_named():
    with pytest.raises(ValueError, match=r"embedding.weight is \(30, 8\) in the language model"):
        copy_encoder(SequenceClassifier(31, 2, 8, 8), LanguageModel(30, 8, 8))
    with pytest.raises(ValueError, match="the language model has rnn.weight_ih_l1"):
        copy_encoder(SequenceClassifier(30, 2, 8, 8, 1), LanguageModel(30, 8, 8, 2))


def test_gradual_unfreezing_order():
    classifier = SequenceClassifier(30, 2, 8, 8, 2)
    groups = unfreezing_groups(classifier)
    assert [len(g) for g in groups] == [2, 4, 4, 1]  # head, rnn l1, rnn l0, embedding
    trainable = lambda: {n for n, p in classifier.named_parameters() if p.requires_grad}  # noqa: E731
    freeze_for_epoch(classifier, 0)
    assert trainable() == {"head.weight", "head.bias"}
    freeze_for_epoch(classifier, 1)
    assert "rnn.weight_hh_l1" in trainable() and "rnn.weight_hh_l0" not in trainable()
    freeze_for_epoch(classifier, 5)
    assert trainable() == {n for n, _ in classifier.named_parameters()}


def test_classifier_starts_from_a_language_model_run(tiny_text, tmp_path):
    """End to end: an LM run, then a classifier with init_from and gradual unfreezing."""
    import json

    from rnnkit.training.metrics_log import read_metrics
    from tests.training.conftest import train_tiny

    lm = train_tiny(tiny_text, tmp_path / "lm", "train.max_epochs=1")
    rows = [json.dumps({"text": "the king" if i % 2 else "a queen", "label": i % 2})
            for i in range(64)]  # fmt: skip
    (tmp_path / "reviews.jsonl").write_text("\n".join(rows))
    result = train_tiny(
        tmp_path / "reviews.jsonl", tmp_path / "cls", "task=classification",
        f"model.init_from={lm.run_dir}", "train.gradual_unfreezing=true", "train.max_epochs=3",
        "train.log_every_n_steps=1", "sample.prompt=x",
    )  # fmt: skip
    trained = rnnkit.api.load(result.run_dir)
    assert trained.tokenizer.to_json() == rnnkit.api.load(lm.run_dir).tokenizer.to_json()
    logged = read_metrics(result.run_dir / "metrics.csv")
    by_epoch = {e: {k for r in logged if r.get("epoch") == e for k in r} for e in (0.0, 1.0, 2.0)}
    assert "grad_norm/head" in by_epoch[0.0] and "grad_norm/rnn.l0" not in by_epoch[0.0]
    assert "grad_norm/rnn.l0" in by_epoch[1.0] and "grad_norm/embedding" not in by_epoch[1.0]
    assert "grad_norm/embedding" in by_epoch[2.0]
