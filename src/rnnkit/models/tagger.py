"""Many-to-many, aligned: one tag per token, optionally from character features and a CRF."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..layers import LSTM
from .crf import CRF
from .recurrent import make_recurrent
from .word_dropout import WordDropout

__all__ = ["SequenceTagger", "CharacterEncoder"]


class CharacterEncoder(nn.Module):
    """Each word from its characters: chars (B, T, W) -> (B, T, 2 * hidden_size), the final
    states of a bidirectional LSTM over the word's characters (id 0 is padding; a padded word
    gives zeros)."""

    def __init__(self, num_chars: int, embedding_dim: int, hidden_size: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_chars, embedding_dim, padding_idx=0)
        self.rnn = LSTM(embedding_dim, hidden_size, batch_first=True, bidirectional=True)

    def forward(self, chars: Tensor) -> Tensor:
        B, T, W = chars.shape
        flat = chars.reshape(B * T, W)
        _, (h_n, _) = self.rnn(self.embedding(flat), lengths=(flat != 0).sum(-1))
        return torch.cat([h_n[0], h_n[1]], dim=-1).view(B, T, -1)


class SequenceTagger(nn.Module):
    """tokens (B, T), lengths (B,)[, chars (B, T, W)] -> tag scores (B, T, C).

    With ``crf=True`` the scores are the CRF's emissions: train with ``self.crf.nll`` and decode
    with ``self.crf.decode_tensor`` (Viterbi); otherwise they are softmax logits.
    """

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
        crf: bool = False,
        num_chars: int = 0,
        char_embedding_dim: int = 0,
        char_hidden_size: int = 32,
        word_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.word_dropout = WordDropout(word_dropout, padding_idx=padding_idx)
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        self.chars = (
            CharacterEncoder(num_chars, char_embedding_dim, char_hidden_size)
            if char_embedding_dim > 0
            else None
        )
        input_size = embedding_dim + (2 * char_hidden_size if self.chars is not None else 0)
        self.dropout = nn.Dropout(dropout)
        self.rnn = make_recurrent(
            cell,
            input_size,
            hidden_size,
            num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            layer_norm=layer_norm,
        )
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), num_tags)
        self.crf = CRF(num_tags) if crf else None

    def features(self, tokens: Tensor, chars: Tensor | None = None) -> Tensor:
        """tokens (B, T)[, chars (B, T, W)] -> recurrent inputs (B, T, E [+ 2 * char hidden])."""
        embedded = self.embedding(self.word_dropout(tokens))
        if self.chars is not None:
            if chars is None:
                raise ValueError("this tagger reads characters: pass chars (B, T, W)")
            embedded = torch.cat([embedded, self.chars(chars)], dim=-1)
        return self.dropout(embedded)

    def readout(self, outputs: Tensor) -> Tensor:
        """recurrent outputs (..., D) -> tag scores (..., C)."""
        return self.head(self.dropout(outputs))

    def forward(self, tokens: Tensor, lengths: Tensor, chars: Tensor | None = None) -> Tensor:
        outputs, _ = self.rnn(self.features(tokens, chars), lengths=lengths)
        return self.readout(outputs)

    @torch.no_grad()
    def predict(self, tokens: Tensor, lengths: Tensor, chars: Tensor | None = None) -> Tensor:
        """Tag ids (B, T): Viterbi with a CRF, argmax otherwise; padded steps hold -100."""
        scores = self(tokens, lengths, chars)
        mask = (
            torch.arange(tokens.shape[1], device=tokens.device) < lengths.to(tokens.device)[:, None]
        )
        if self.crf is not None:
            return self.crf.decode_tensor(scores, mask)
        return scores.argmax(-1).masked_fill(~mask, -100)
