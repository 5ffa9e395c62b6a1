"""A/B of inference (autograd off) through rnnkit's kernels, interleaved in one process: each
kernel's forward keeping what a backward pass would read, for every step (``keep=True``, what
training does and what inference did before), against keeping one step at a time
(``keep=False``, what inference does now).

Run: ``python -m benchmarks.ab_inference_keep [--repeats 11]``. Prints, per kernel and config
(a: B=32 T=128 I=128 H=256, b: B=64 T=256 I=256 H=512, one direction, one layer), the median
milliseconds of a forward call with each setting and their ratio. The LSTM runs with lengths
uniform in [T/4, T] (a plain LSTM infers with torch.nn's kernel, with lengths with rnnkit's).
Outputs of the two settings are checked equal first.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

import torch

from benchmarks.bench_speed import CONFIGS
from benchmarks.common import interleaved_medians, machine_description
from rnnkit.kernels import elman, gru, lstm, lstm_ln


def forwards(B: int, T: int, I: int, H: int) -> dict[str, Callable[[bool], object]]:
    """kernel name -> (keep -> outputs of one forward call through its autograd Function)."""
    g = torch.Generator().manual_seed(0)

    def rand(*shape: int, scale: float = 0.05) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    x, h0 = rand(T, B, I, scale=1.0), torch.zeros(B, H)
    lengths = torch.randint(T // 4, T + 1, (B,), generator=g).sort(descending=True).values
    batch_sizes = [int((lengths > t).sum()) for t in range(T)]
    w_rnn = [rand(H, I), rand(H, H), rand(H), rand(H)]
    w_gru = [rand(3 * H, I), rand(3 * H, H), rand(3 * H), rand(3 * H)]
    w_lstm = [rand(4 * H, I), rand(4 * H, H), rand(4 * H), rand(4 * H)]
    ones = torch.ones(4 * H)
    w_ln = [w_lstm[0], ones, w_lstm[2], w_lstm[1], w_lstm[3], ones, torch.ones(H), torch.zeros(H)]
    return {
        "RNN tanh": lambda keep: elman.ElmanFunction.apply(
            x, h0, *w_rnn, None, [], elman.ACTIVATIONS["tanh"], keep
        ),
        "GRU": lambda keep: gru.GRUFunction.apply(x, h0, *w_gru, None, [], keep),
        "LSTM, lengths": lambda keep: lstm.LSTMFunction.apply(
            x, h0, h0, *w_lstm, None, None, None, batch_sizes, keep
        ),
        "LSTM layer_norm": lambda keep: lstm_ln.LayerNormLSTMFunction.apply(
            x, h0, h0, *w_ln, None, None, None, [], keep
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args()
    print(f"machine: {machine_description()}")
    print(f"heap: MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', 'unset')}")
    print(f"median of {args.repeats} interleaved rounds, ms per forward call, autograd off")
    print(f"{'kernel':<18}{'config':<8}{'keep=True':>11}{'keep=False':>12}{'ratio':>8}")
    with torch.no_grad():
        for config in ("a", "b"):
            s = CONFIGS[config]
            for name, forward in forwards(s.B, s.T, s.I, s.H).items():
                kept, dropped = forward(True), forward(False)
                if not all(torch.equal(a, b) for a, b in zip(kept, dropped, strict=True)):
                    raise AssertionError(f"{name}: outputs differ between the two settings")
                medians = interleaved_medians(
                    {"kept": lambda f=forward: f(True), "one step": lambda f=forward: f(False)},
                    args.repeats,
                )
                kept_ms, step_ms = 1e3 * medians["kept"], 1e3 * medians["one step"]
                ratio = kept_ms / step_ms
                print(f"{name:<18}{config:<8}{kept_ms:>11.2f}{step_ms:>12.2f}{ratio:>7.2f}x")


if __name__ == "__main__":
    main()
