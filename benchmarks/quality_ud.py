"""UD English EWT UPOS tagging: test accuracy after 20 minutes of training.
Run: ``python -m benchmarks.quality_ud``."""

from benchmarks.quality import run_quality

if __name__ == "__main__":
    run_quality(
        "UD English EWT UPOS",
        "configs/ud_upos.yaml",
        metric="acc",
        split="test",
        anchor="BiLSTM taggers with pretrained embeddings reach ~95-97% (from the issue)",
    )
