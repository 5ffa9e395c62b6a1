"""The main job for now: train a small LSTM on the adding problem and report its progress.

The adding problem (Hochreiter & Schmidhuber 1997) is the classic long-range memory test: each
sequence holds random numbers in [0, 1] and two markers; the target is the sum of the two
marked numbers, however far apart they are. Predicting the mean (1.0) scores an MSE of about
0.167; a network that remembers scores near 0. Sequences have different lengths, so the batch
is right-padded and the LSTM reads ``lengths``.

    python -m rnnkit.demo [--steps 600] [--max-len 30] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import Tensor, nn

import rnnkit


def adding_batch(
    batch_size: int, min_len: int, max_len: int, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """-> inputs (T, B, 2) = (value, marker), lengths (B,), targets (B,)."""
    lengths = torch.randint(min_len, max_len + 1, (batch_size,), generator=generator)
    values = torch.rand(max_len, batch_size, generator=generator)
    markers = torch.zeros(max_len, batch_size)
    targets = torch.empty(batch_size)
    for b, n in enumerate(lengths.tolist()):
        first = int(torch.randint(0, n // 2, (1,), generator=generator))
        second = int(torch.randint(n // 2, n, (1,), generator=generator))
        markers[[first, second], b] = 1.0
        targets[b] = values[first, b] + values[second, b]
    padding = torch.arange(max_len).unsqueeze(1) >= lengths.unsqueeze(0)  # (T, B)
    values[padding] = 0.0
    return torch.stack([values, markers], dim=-1), lengths, targets


class AddingModel(nn.Module):
    """Many-to-one regression: LSTM over the sequence, a linear read-out of h_n."""

    def __init__(self, hidden_size: int = 64) -> None:
        super().__init__()
        self.lstm = rnnkit.LSTM(2, hidden_size, forget_bias=1.0)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        _, (h_n, _) = self.lstm(x, lengths=lengths)  # h_n (1, B, H): state at each last step
        return self.head(h_n[-1]).squeeze(-1)  # (B,)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--max-len", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    train_gen = torch.Generator().manual_seed(args.seed)
    test_gen = torch.Generator().manual_seed(args.seed + 1)
    min_len = args.max_len // 2
    test_x, test_lengths, test_y = adding_batch(1000, min_len, args.max_len, test_gen)
    model = AddingModel()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    print(f"rnnkit {rnnkit.__version__}: LSTM(2, 64) on the adding problem, "
          f"lengths {min_len}-{args.max_len}, {args.steps} steps of {args.batch_size}")  # fmt: skip
    print("baseline (always predict 1.0): test MSE "
          f"{nn.functional.mse_loss(torch.ones_like(test_y), test_y):.4f}")  # fmt: skip
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        x, lengths, y = adding_batch(args.batch_size, min_len, args.max_len, train_gen)
        loss = nn.functional.mse_loss(model(x, lengths), y)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 100 == 0 or step == args.steps:
            with torch.no_grad():
                test_mse = nn.functional.mse_loss(model(test_x, test_lengths), test_y).item()
            print(f"step {step:5d}  train MSE {loss.item():.4f}  test MSE {test_mse:.4f}  "
                  f"({time.perf_counter() - start:.0f} s)")  # fmt: skip
    print(f"result: test MSE {test_mse:.4f} on 1000 held-out sequences")
    return {"test_mse": test_mse}


if __name__ == "__main__":
    main()
