"""IMDB sentiment: test accuracy after 30 minutes of training from scratch.
Run: ``python -m benchmarks.quality_imdb``."""

from benchmarks.quality import run_quality

if __name__ == "__main__":
    run_quality(
        "IMDB sentiment",
        "configs/imdb.yaml",
        metric="acc",
        split="test",
        anchor="plain BiLSTM 88.0% after 3 epochs here; Keras BiLSTM example 81.5%; "
        "Maas et al. 2011 88.9%",
    )
