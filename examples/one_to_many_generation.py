"""One-to-many: generate a sequence one token at a time, carrying the recurrent state.

Sequence shape: training is many-to-many (B, T) -> (B, T, V) next-character logits, done in one
call over whole windows. Generation turns it into one-to-many: a prompt (1, P) is read in one
``forward`` call to get the state, then each new character (1,) goes through ``layer.step``
with the carried ``(h, c)``, so every generated token costs O(1) work, not a re-read of the text.

Task: a tiny character language model (``rnnkit.LSTM``) learns a short repeated phrase, then
continues it greedily from a prompt.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

import rnnkit

PHRASE = "hello, rnnkit! "
TEXT = PHRASE * 40
CHARS = sorted(set(TEXT))
STOI = {c: i for i, c in enumerate(CHARS)}


def encode(s: str) -> Tensor:
    return torch.tensor([STOI[c] for c in s])


class CharLM(nn.Module):
    def __init__(self, hidden_size: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(len(CHARS), 16)
        self.lstm = rnnkit.LSTM(16, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, len(CHARS))

    def forward(self, tokens: Tensor, state=None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """tokens (B, T) -> logits (B, T, V) and the state (h, c) after the last step."""
        y, state = self.lstm(self.embed(tokens), state)  # (B, T, 16) -> (B, T, H)
        return self.head(y), state

    @torch.no_grad()
    def generate(self, prompt: str, num_chars: int) -> str:
        logits, state = self(encode(prompt).unsqueeze(0))  # (1, P, V); state (1, 1, H) each
        next_id = logits[:, -1].argmax(-1)  # (1,)
        out = []
        for _ in range(num_chars):
            out.append(CHARS[next_id.item()])
            x_t = self.embed(next_id)  # (1,) -> (1, 16)
            y_t, state = self.lstm.step(x_t, state)  # (1, H); state carried, O(1) per token
            next_id = self.head(y_t).argmax(-1)  # greedy: (1, V) -> (1,)
        return "".join(out)


def main(steps: int = 100, batch_size: int = 32, window: int = 24, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    data = torch.Generator().manual_seed(seed)
    ids = encode(TEXT)  # (N,)
    model = CharLM()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    for _ in range(steps):
        starts = torch.randint(len(ids) - window - 1, (batch_size, 1), generator=data)
        chunk = ids[starts + torch.arange(window + 1)]  # (B, W + 1)
        logits, _ = model(chunk[:, :-1])  # inputs (B, W) -> (B, W, V)
        loss = F.cross_entropy(logits.flatten(0, 1), chunk[:, 1:].flatten())  # next character
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    model.eval()
    prompt = "hello"
    generated = model.generate(prompt, num_chars=3 * len(PHRASE))
    expected = (PHRASE * 4)[len(prompt) : len(prompt) + len(generated)]
    char_accuracy = sum(g == e for g, e in zip(generated, expected, strict=True)) / len(expected)
    return {
        "train_loss": loss.item(),
        "generated": prompt + generated,
        "char_accuracy": char_accuracy,
        "exact_match": generated == expected,
    }


if __name__ == "__main__":
    torch.set_num_threads(1)  # a model this small only loses time syncing threads
    print(main())
