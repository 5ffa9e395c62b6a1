"""rnnkit's torch-compatible layers against torch.nn, interleaved in one process.

For plain configurations rnnkit hands the call to torch.nn's kernel, so the ratio measures the
cost of rnnkit's checks (the issue's contract: never slower than torch.nn). The rnnkit-only
variants run rnnkit's Python time loop and are shown against plain torch.nn on the same shape.

    python benchmarks/bench_layers.py            # configs a and b (several minutes)
    python benchmarks/bench_layers.py --quick    # config a only
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import rnnkit
from benchmarks.common import interleaved_medians, machine_description

CONFIGS = {
    "a": dict(B=32, T=128, I=128, H=256, L=1),
    "b": dict(B=64, T=256, I=256, H=512, L=2),
}


def train_step(layer, x):
    def run():
        layer.zero_grad(set_to_none=True)
        y, _ = layer(x)
        y.sum().backward()

    return run


def infer(layer, x):
    def run():
        with torch.no_grad():
            layer(x)

    return run


def compare(title, ours, theirs, x, repeats, tokens):
    ours.load_state_dict(theirs.state_dict(), strict=False)
    rows = []
    for mode, make in (("train", train_step), ("inference", infer)):
        t = interleaved_medians({"rnnkit": make(ours, x), "torch.nn": make(theirs, x)}, repeats)
        rows.append(
            f"{title:<34} {mode:<9} rnnkit {t['rnnkit'] * 1e3:9.2f} ms  torch.nn "
            f"{t['torch.nn'] * 1e3:9.2f} ms  speed ratio {t['torch.nn'] / t['rnnkit']:.3f}x  "
            f"({tokens / t['rnnkit']:,.0f} tok/s)"
        )
    return rows


def streaming(ours, theirs, repeats):
    x = torch.randn(1, 256)

    def stepper(layer):
        def run():
            hx = None
            with torch.no_grad():
                for _ in range(100):
                    _, hx = layer(x.unsqueeze(0), hx)

        return run

    t = interleaved_medians({"rnnkit": stepper(ours), "torch.nn": stepper(theirs)}, repeats)
    return (
        f"{type(theirs).__name__ + ' streaming B=1 H=256':<34} step      rnnkit "
        f"{t['rnnkit'] * 1e4:9.1f} us  torch.nn {t['torch.nn'] * 1e4:9.1f} us  "
        f"speed ratio {t['torch.nn'] / t['rnnkit']:.3f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="config a only, fewer repeats")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(machine_description())
    print(f"median of {args.repeats} interleaved repeats; ratio = torch.nn time / rnnkit time\n")
    for name in ["a"] if args.quick else ["a", "b"]:
        c = CONFIGS[name]
        print(f"config {name}: {c}")
        x = torch.randn(c["T"], c["B"], c["I"])
        tokens = c["T"] * c["B"]
        repeats = args.repeats if name == "a" else max(3, args.repeats // 2)
        shape = (c["I"], c["H"], c["L"])
        for kind in ("LSTM", "GRU", "RNN"):
            for bidirectional in (False, True) if kind == "LSTM" else (False,):
                theirs = getattr(nn, kind)(*shape, bidirectional=bidirectional)
                ours = getattr(rnnkit, kind)(*shape, bidirectional=bidirectional)
                title = f"{kind}{' bidirectional' if bidirectional else ''}"
                for row in compare(title, ours, theirs, x, repeats, tokens):
                    print(row)
        if name == "a":
            plain = nn.LSTM(*shape)
            for option in ({"peephole": True}, {"layer_norm": True}, {"recurrent_dropout": 0.25}):
                variant = rnnkit.LSTM(*shape, **option)
                title = f"LSTM {next(iter(option))} (rnnkit loop)"
                print(compare(title, variant, plain, x, max(3, repeats // 2), tokens)[0])
        print()
    print(streaming(rnnkit.LSTM(256, 256), nn.LSTM(256, 256), args.repeats))
    print(streaming(rnnkit.GRU(256, 256), nn.GRU(256, 256), args.repeats))


if __name__ == "__main__":
    main()
