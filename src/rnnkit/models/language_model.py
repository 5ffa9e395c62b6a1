"""Next-token language model: embedding -> recurrent stack -> vocabulary logits."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from .recurrent import make_recurrent

__all__ = ["LanguageModel"]


class LanguageModel(nn.Module):
    """tokens (B, T) -> logits (B, T, V), carrying the recurrent state between calls.

    ``tie_weights`` shares the embedding matrix with the output layer (needs
    ``embedding_dim == hidden_size``); ``dropout`` applies to the embeddings, between layers and
    before the output layer.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 64,
        hidden_size: int = 256,
        num_layers: int = 1,
        *,
        cell: str = "lstm",
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        layer_norm: bool = False,
        tie_weights: bool = False,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.dropout = nn.Dropout(dropout)
        self.rnn = make_recurrent(
            cell,
            embedding_dim,
            hidden_size,
            num_layers,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            layer_norm=layer_norm,
        )
        self.decoder = nn.Linear(hidden_size, vocab_size)
        if tie_weights:
            if embedding_dim != hidden_size:
                raise ValueError(
                    f"tie_weights needs embedding_dim == hidden_size, got {embedding_dim} "
                    f"and {hidden_size}"
                )
            self.decoder.weight = self.embedding.weight

    def features(self, tokens: Tensor) -> Tensor:
        """tokens (B, T) -> recurrent inputs (B, T, E)."""
        return self.dropout(self.embedding(tokens))

    def readout(self, outputs: Tensor) -> Tensor:
        """recurrent outputs (..., H) -> logits (..., V)."""
        return self.decoder(self.dropout(outputs))

    def forward(self, tokens: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """tokens (B, T), state from the previous call or None -> (logits (B, T, V), state)."""
        outputs, state = self.rnn(self.features(tokens), state)
        return self.readout(outputs), state
