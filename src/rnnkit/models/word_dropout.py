"""Word dropout: while training, each real token becomes ``<unk>`` with probability ``p``.

The model learns what to do with words it has no embedding for, from the same contexts and (in
a tagger) the word's characters, which is what it meets with rare and unseen words at test time
(Kiperwasser & Goldberg 2016; Iyyer et al. 2015). Padding is never replaced.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..data.vocabulary import SPECIALS, UNK

__all__ = ["WordDropout"]


class WordDropout(nn.Module):
    """tokens (B, T) -> tokens (B, T) with ids replaced by ``unk_id`` at rate ``p`` in training;
    ids equal to ``padding_idx`` are kept. The identity in eval mode."""

    def __init__(self, p: float, unk_id: int = SPECIALS.index(UNK), padding_idx: int = 0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"word dropout: expected a probability in [0, 1), got {p!r}")
        self.p, self.unk_id, self.padding_idx = p, unk_id, padding_idx

    def forward(self, tokens: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return tokens
        drop = torch.rand(tokens.shape, device=tokens.device) < self.p
        drop &= tokens != self.padding_idx
        return tokens.masked_fill(drop, self.unk_id)

    def extra_repr(self) -> str:
        return f"p={self.p}, unk_id={self.unk_id}"
