"""Tiny Shakespeare char LM: validation loss (nats/char) over the whole validation split after
10 minutes of training. Run: ``python -m benchmarks.quality_shakespeare``."""

from benchmarks.quality import run_quality

if __name__ == "__main__":
    run_quality(
        "Tiny Shakespeare char LM",
        "configs/shakespeare_char.yaml",
        metric="loss",
        split="val",
        anchor="nanoGPT CPU recipe 1.54 after 10 min; plain 1x512 torch.nn.LSTM 1.48 after 10 min "
        "(same machine kind, figures from the issue)",
    )
