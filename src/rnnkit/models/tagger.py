"""Many-to-many, aligned: one tag per token."""

from __future__ import annotations

from torch import Tensor, nn

from .recurrent import make_recurrent

__all__ = ["SequenceTagger"]


class SequenceTagger(nn.Module):
    """tokens (B, T), lengths (B,) -> tag logits (B, T, C); padded steps are zeros."""

    def __init__(
        self,
        vocab_size: int,
        num_tags: int,
        embedding_dim: int = 64,
        hidden_size: int = 128,
        num_layers: int = 1,
        *,
        cell: str = "lstm",
        bidirectional: bool = True,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        layer_norm: bool = False,
        padding_idx: int = 0,
    ) -> None:
        super().__init__()
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
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), num_tags)

    def features(self, tokens: Tensor) -> Tensor:
        """tokens (B, T) -> recurrent inputs (B, T, E)."""
        return self.dropout(self.embedding(tokens))

    def readout(self, outputs: Tensor) -> Tensor:
        """recurrent outputs (..., D) -> tag logits (..., C)."""
        return self.head(self.dropout(outputs))

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        outputs, _ = self.rnn(self.features(tokens), lengths=lengths)
        return self.readout(outputs)
