"""Many-to-one: classify a whole variable-length sequence from the final state.

Sequence shape: a right-padded batch (B, T) of token ids plus ``lengths`` (B,) goes in, one
label per sequence comes out. A bidirectional ``rnnkit.LSTM`` reads each sequence with
``lengths=``: padded steps are skipped, the reverse direction starts at each sequence's own last
token, and ``h_n`` holds the state at each sequence's last valid step (forward) and first step
(reverse), so the classifier can read it directly, with no gather and no packing.

Task: which of three symbols occurs most often in the sequence (ties excluded); chance is 1/3.
The padding is filled with random symbols on purpose: with ``lengths`` the model never sees it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

import rnnkit

NUM_SYMBOLS = 3  # symbols are 0, 1, 2; no padding id is needed, lengths say where data ends
MIN_LEN, MAX_LEN = 4, 12


def make_batch(batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Random sequences with a unique most-frequent symbol -> (tokens, lengths, labels).

    tokens (B, MAX_LEN), right-padded with random junk; lengths (B,); labels (B,).
    """
    tokens = torch.randint(NUM_SYMBOLS, (batch_size, MAX_LEN), generator=generator)
    lengths = torch.randint(MIN_LEN, MAX_LEN + 1, (batch_size,), generator=generator)
    valid = torch.arange(MAX_LEN) < lengths.unsqueeze(1)  # (B, T)
    counts = F.one_hot(tokens, NUM_SYMBOLS).mul(valid.unsqueeze(-1)).sum(1)  # (B, NUM_SYMBOLS)
    top2 = counts.topk(2, dim=1).values  # (B, 2)
    unique = top2[:, 0] > top2[:, 1]  # drop sequences whose top count is tied
    return tokens[unique], lengths[unique], counts[unique].argmax(1)


class MajorityClassifier(nn.Module):
    def __init__(self, hidden_size: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(NUM_SYMBOLS, 8)
        self.lstm = rnnkit.LSTM(8, hidden_size, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden_size, NUM_SYMBOLS)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        x = self.embed(tokens)  # (B, T) -> (B, T, 8)
        _, (h_n, _) = self.lstm(x, lengths=lengths)  # h_n: (D=2, B, H), never batch-first
        final = torch.cat([h_n[0], h_n[1]], dim=-1)  # forward last step ++ reverse: (B, 2H)
        return self.head(final)  # (B, NUM_SYMBOLS)


def main(steps: int = 100, batch_size: int = 64, seed: int = 0) -> dict[str, float]:
    torch.manual_seed(seed)
    data = torch.Generator().manual_seed(seed)
    model = MajorityClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    for _ in range(steps):
        tokens, lengths, labels = make_batch(batch_size, data)
        loss = F.cross_entropy(model(tokens, lengths), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    model.eval()
    with torch.no_grad():
        tokens, lengths, labels = make_batch(1000, data)
        logits = model(tokens, lengths)
        accuracy = (logits.argmax(1) == labels).float().mean().item()
        # The padding is ignored: re-drawing it changes nothing.
        junk = torch.randint(NUM_SYMBOLS, tokens.shape, generator=data)
        repadded = torch.where(torch.arange(MAX_LEN) < lengths.unsqueeze(1), tokens, junk)
        padding_effect = (model(repadded, lengths) - logits).abs().max().item()
    return {
        "train_loss": loss.item(),
        "test_accuracy": accuracy,
        "chance": 1 / NUM_SYMBOLS,
        "padding_effect": padding_effect,
    }


if __name__ == "__main__":
    torch.set_num_threads(1)  # a model this small only loses time syncing threads
    print(main())
