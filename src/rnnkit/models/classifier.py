"""Many-to-one: embedding -> recurrent stack -> masked pooling -> class logits."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..ops.masking import valid_mask
from .recurrent import make_recurrent
from .word_dropout import WordDropout

__all__ = ["SequenceClassifier", "AttentionPooling", "pool"]

POOLINGS = ("last", "mean", "max", "attention")


class AttentionPooling(nn.Module):
    """Additive attention over the valid steps (Bahdanau-style scoring, Yang et al. 2016):
    outputs (B, T, D), mask (B, T) -> (B, D) = sum_t softmax_t(v . tanh(W h_t + b)) h_t."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.project = nn.Linear(size, size)
        self.score = nn.Linear(size, 1, bias=False)

    def forward(self, outputs: Tensor, mask: Tensor) -> Tensor:
        scores = self.score(torch.tanh(self.project(outputs))).squeeze(-1)  # (B, T)
        weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)
        weights = torch.nan_to_num(weights)  # a zero-length sequence pools to zeros
        return torch.einsum("bt,btd->bd", weights, outputs)


def pool(
    outputs: Tensor,
    lengths: Tensor,
    how: str,
    bidirectional: bool,
    attention: AttentionPooling | None = None,
) -> Tensor:
    """outputs (B, T, D), lengths (B,) -> (B, D) over the valid steps only.

    ``last`` takes the state after the last valid token (for a bidirectional stack: the forward
    half at the last valid token and the backward half at the first token); ``mean``/``max``
    reduce over the valid steps; ``attention`` weighs them with ``attention``.
    """
    B, T, D = outputs.shape
    mask = valid_mask(lengths, T).to(outputs.device).transpose(0, 1)  # (B, T)
    if how == "attention":
        if attention is None:
            raise ValueError("pooling='attention' needs an AttentionPooling module")
        return attention(outputs, mask)
    if how == "mean":
        total = (outputs * mask.unsqueeze(-1)).sum(1)
        return total / lengths.clamp(min=1).to(outputs.dtype).unsqueeze(-1).to(outputs.device)
    if how == "max":
        return outputs.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1).clamp_min(-1e30)
    if how != "last":
        raise ValueError(f"pooling: expected one of {POOLINGS}, got {how!r}")
    last = (lengths.to(outputs.device) - 1).clamp(min=0)
    forward = outputs[torch.arange(B, device=outputs.device), last]
    if not bidirectional:
        return forward
    half = D // 2
    return torch.cat([forward[:, :half], outputs[:, 0, half:]], dim=-1)


class SequenceClassifier(nn.Module):
    """tokens (B, T), lengths (B,) -> logits (B, C)."""

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        embedding_dim: int = 64,
        hidden_size: int = 128,
        num_layers: int = 1,
        *,
        cell: str = "lstm",
        bidirectional: bool = False,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        layer_norm: bool = False,
        pooling: str = "last",
        padding_idx: int = 0,
        word_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.pooling, self.bidirectional = pooling, bidirectional
        self.word_dropout = WordDropout(word_dropout, padding_idx=padding_idx)
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        self.dropout = nn.Dropout(dropout)
        self.rnn = make_recurrent(
            cell,
            embedding_dim,
            hidden_size,
            num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            layer_norm=layer_norm,
        )
        size = hidden_size * (2 if bidirectional else 1)
        self.attention = AttentionPooling(size) if pooling == "attention" else None
        self.head = nn.Linear(size, num_classes)

    def features(self, tokens: Tensor) -> Tensor:
        """tokens (B, T) -> recurrent inputs (B, T, E)."""
        return self.dropout(self.embedding(self.word_dropout(tokens)))

    def readout(self, pooled: Tensor) -> Tensor:
        """pooled recurrent outputs (B, D) -> logits (B, C)."""
        return self.head(self.dropout(pooled))

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        outputs, _ = self.rnn(self.features(tokens), lengths=lengths)
        pooled = pool(outputs, lengths, self.pooling, self.bidirectional, self.attention)
        return self.readout(pooled)
