"""The classifier's masked pooling: padding never changes a sequence's result."""

import pytest
import torch

from rnnkit.models import SequenceClassifier
from rnnkit.models.classifier import AttentionPooling, pool


@pytest.mark.parametrize("pooling", ["last", "mean", "max", "attention"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padded_batch_equals_each_sequence_alone(pooling, bidirectional):
    model = SequenceClassifier(20, 3, 8, 6, cell="gru", bidirectional=bidirectional,
                               pooling=pooling).eval()  # fmt: skip
    lengths = torch.tensor([5, 2, 7, 1])
    tokens = torch.randint(1, 20, (4, 7))
    tokens[torch.arange(7) >= lengths[:, None]] = 0
    batch = model(tokens, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone = model(tokens[i : i + 1, :n], lengths[i : i + 1])
        torch.testing.assert_close(batch[i : i + 1], alone, rtol=1e-5, atol=1e-6)


def test_mean_and_max_by_hand():
    outputs = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [-5.0], [7.0]]])
    lengths = torch.tensor([2, 3])
    assert pool(outputs, lengths, "mean", False).flatten().tolist() == [2.0, pytest.approx(4 / 3)]
    assert pool(outputs, lengths, "max", False).flatten().tolist() == [3.0, 7.0]
    assert pool(outputs, lengths, "last", False).flatten().tolist() == [3.0, 7.0]


def test_attention_weights_are_a_distribution_over_valid_steps():
    attention = AttentionPooling(4)
    outputs = torch.randn(2, 5, 4)
    mask = torch.tensor([[True, True, False, False, False], [True] * 5])
    pooled = attention(outputs, mask)
    scores = attention.score(torch.tanh(attention.project(outputs))).squeeze(-1)
    weights = scores[0, :2].softmax(-1)
    torch.testing.assert_close(pooled[0], weights @ outputs[0, :2])


def test_unknown_pooling_is_named():
    with pytest.raises(ValueError, match="pooling: expected one of"):
        pool(torch.zeros(1, 2, 3), torch.tensor([2]), "median", False)
