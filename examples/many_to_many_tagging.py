"""Many-to-many (aligned): one tag per input token, with a loss over the valid steps only.

Sequence shape: a right-padded batch (B, T) of token ids plus ``lengths`` (B,) goes in, and
(B, T) tags come out, one per input position. A bidirectional ``rnnkit.GRU`` with ``lengths=``
gives each token both its left and its right context: the reverse direction starts at each
sequence's own last token, not at the padding, and the outputs at padded steps are zero. The
loss and the accuracy are averaged over the valid steps only.

Task: tag each token 1 if it is larger than the next token, else 0 (the last token has no next
token: 0). The answer depends on the right context, which a forward-only RNN cannot see.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

import rnnkit

VOCAB = 10  # tokens 0..9
MIN_LEN, MAX_LEN = 3, 12


def make_batch(batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """-> tokens (B, T), lengths (B,), tags (B, T); tags at padded steps are meaningless."""
    tokens = torch.randint(VOCAB, (batch_size, MAX_LEN), generator=generator)
    lengths = torch.randint(MIN_LEN, MAX_LEN + 1, (batch_size,), generator=generator)
    next_token = tokens.roll(-1, dims=1)  # (B, T); wraps around at the end, fixed below
    is_last = torch.arange(MAX_LEN) == (lengths - 1).unsqueeze(1)  # (B, T)
    tags = ((tokens > next_token) & ~is_last).long()  # (B, T)
    return tokens, lengths, tags


class Tagger(nn.Module):
    def __init__(self, hidden_size: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.gru = rnnkit.GRU(16, hidden_size, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden_size, 2)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        x = self.embed(tokens)  # (B, T) -> (B, T, 16)
        y, _ = self.gru(x, lengths=lengths)  # (B, T, 2H): forward ++ reverse, zero when padded
        return self.head(y)  # (B, T, 2) tag logits


def masked_loss_and_accuracy(logits: Tensor, tags: Tensor, lengths: Tensor) -> tuple[Tensor, float]:
    valid = torch.arange(tags.shape[1]) < lengths.unsqueeze(1)  # (B, T) bool
    loss = F.cross_entropy(logits[valid], tags[valid])  # (N_valid, 2) vs (N_valid,)
    accuracy = (logits.argmax(-1) == tags)[valid].float().mean().item()
    return loss, accuracy


def main(steps: int = 100, batch_size: int = 64, seed: int = 0) -> dict[str, float]:
    torch.manual_seed(seed)
    data = torch.Generator().manual_seed(seed)
    model = Tagger()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    for _ in range(steps):
        tokens, lengths, tags = make_batch(batch_size, data)
        loss, _ = masked_loss_and_accuracy(model(tokens, lengths), tags, lengths)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    model.eval()
    with torch.no_grad():
        tokens, lengths, tags = make_batch(1000, data)
        _, accuracy = masked_loss_and_accuracy(model(tokens, lengths), tags, lengths)
        valid = torch.arange(MAX_LEN) < lengths.unsqueeze(1)
        majority = 1 - tags[valid].float().mean().item()  # always predicting 0
    return {"train_loss": loss.item(), "token_accuracy": accuracy, "majority_baseline": majority}


if __name__ == "__main__":
    torch.set_num_threads(1)  # a model this small only loses time syncing threads
    print(main())
