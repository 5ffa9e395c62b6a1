"""Many-to-many (unaligned): an encoder-decoder with attention, the sequence-to-sequence skeleton.

Sequence shape: a right-padded source batch (B, S) with ``lengths`` (B,) goes in; a target of a
different length (B, T) comes out. A bidirectional ``rnnkit.GRU`` encoder reads the source with
``lengths=`` (padded steps output zeros, ``h_n`` is each sequence's own final state); a GRU
decoder starts from that state and, at every step, attends over the encoder outputs with
dot-product (Luong) attention, padded source steps masked out. Training uses teacher forcing
(the decoder reads the true previous token, the whole target in one call); inference decodes
greedily, one ``step`` at a time, feeding back its own predictions.

Task: reverse a sequence of digits, e.g. 3 1 4 1 5 -> 5 1 4 1 3, then EOS.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

import rnnkit

PAD, BOS, EOS = 0, 1, 2  # then digits 0..9 are tokens 3..12
VOCAB = 13
MIN_LEN, MAX_LEN = 3, 8


def make_batch(batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """-> source (B, S) padded with PAD, lengths (B,), target (B, S + 1) = reversed source, EOS,
    then PAD."""
    lengths = torch.randint(MIN_LEN, MAX_LEN + 1, (batch_size,), generator=generator)
    digits = torch.randint(3, VOCAB, (batch_size, MAX_LEN), generator=generator)
    steps = torch.arange(MAX_LEN)
    valid = steps < lengths.unsqueeze(1)  # (B, S)
    source = digits.masked_fill(~valid, PAD)
    # target[b, t] = source[b, lengths[b] - 1 - t] for t < lengths[b]
    index = (lengths.unsqueeze(1) - 1 - steps).clamp(min=0)  # (B, S)
    target = torch.cat([source.gather(1, index).masked_fill(~valid, PAD),
                        torch.full((batch_size, 1), PAD)], dim=1)  # fmt: skip
    target[torch.arange(batch_size), lengths] = EOS  # (B, S + 1)
    return source, lengths, target


class Seq2Seq(nn.Module):
    def __init__(self, hidden_size: int = 64) -> None:
        super().__init__()
        H = hidden_size
        self.embed = nn.Embedding(VOCAB, 32, padding_idx=PAD)
        self.encoder = rnnkit.GRU(32, H, batch_first=True, bidirectional=True)
        self.decoder = rnnkit.GRU(32, 2 * H, batch_first=True)  # width of encoder outputs
        self.combine = nn.Linear(4 * H, 2 * H)  # [context; decoder output] -> attentional state
        self.head = nn.Linear(2 * H, VOCAB)

    def encode(self, source: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """-> encoder outputs (B, S, 2H), source mask (B, S), decoder initial state (1, B, 2H)."""
        memory, h_n = self.encoder(self.embed(source), lengths=lengths)  # h_n (2, B, H)
        state = torch.cat([h_n[0], h_n[1]], dim=-1).unsqueeze(0)  # (1, B, 2H)
        mask = torch.arange(source.shape[1]) < lengths.unsqueeze(1)  # (B, S)
        return memory, mask, state

    def attend(self, query: Tensor, memory: Tensor, mask: Tensor) -> Tensor:
        """Luong dot attention: decoder outputs (B, T, 2H) over memory (B, S, 2H) -> logits."""
        scores = query @ memory.transpose(1, 2)  # (B, T, S)
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))  # never attend to PAD
        context = scores.softmax(-1) @ memory  # (B, T, 2H)
        attentional = torch.tanh(self.combine(torch.cat([context, query], dim=-1)))  # (B, T, 2H)
        return self.head(attentional)  # (B, T, VOCAB)

    def forward(self, source: Tensor, lengths: Tensor, target: Tensor) -> Tensor:
        """Teacher forcing: the decoder reads BOS + target[:, :-1] -> logits (B, T, VOCAB)."""
        memory, mask, state = self.encode(source, lengths)
        bos = torch.full_like(target[:, :1], BOS)
        decoder_input = torch.cat([bos, target[:, :-1]], dim=1)  # (B, T), shifted right
        query, _ = self.decoder(self.embed(decoder_input), state)  # (B, T, 2H)
        return self.attend(query, memory, mask)

    @torch.no_grad()
    def greedy_decode(self, source: Tensor, lengths: Tensor, max_steps: int) -> Tensor:
        """-> predicted tokens (B, max_steps), each step fed its own previous prediction."""
        memory, mask, state = self.encode(source, lengths)
        token = torch.full((source.shape[0],), BOS)  # (B,)
        predictions = []
        for _ in range(max_steps):
            query, state = self.decoder.step(self.embed(token), state)  # (B, 32) -> (B, 2H)
            logits = self.attend(query.unsqueeze(1), memory, mask)  # (B, 1, VOCAB)
            token = logits[:, 0].argmax(-1)  # (B,)
            predictions.append(token)
        return torch.stack(predictions, dim=1)  # (B, max_steps)


def main(steps: int = 200, batch_size: int = 64, seed: int = 0) -> dict[str, float]:
    torch.manual_seed(seed)
    data = torch.Generator().manual_seed(seed)
    model = Seq2Seq()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    for _ in range(steps):
        source, lengths, target = make_batch(batch_size, data)
        logits = model(source, lengths, target)  # (B, T, VOCAB)
        loss = F.cross_entropy(logits.transpose(1, 2), target, ignore_index=PAD)  # valid steps
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    model.eval()
    source, lengths, target = make_batch(500, data)
    predicted = model.greedy_decode(source, lengths, max_steps=target.shape[1])  # (B, T)
    valid = target != PAD  # reversed digits and EOS
    correct = (predicted == target) | ~valid
    return {
        "train_loss": loss.item(),
        "token_accuracy": correct[valid].float().mean().item(),
        "exact_match": correct.all(1).float().mean().item(),
        "chance": 1 / (VOCAB - 3),
    }


if __name__ == "__main__":
    torch.set_num_threads(1)  # a model this small only loses time syncing threads
    print(main())
