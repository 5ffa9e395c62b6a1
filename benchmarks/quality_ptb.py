"""Penn Treebank word LM: test perplexity after 60 minutes of training.
Run: ``python -m benchmarks.quality_ptb``."""

from benchmarks.quality import run_quality

if __name__ == "__main__":
    run_quality(
        "Penn Treebank word LM",
        "configs/ptb_word.yaml",
        metric="ppl",
        split="test",
        anchor="plain 2x200 LSTM 112.6 in 7 min here; Zaremba et al. 2014 small 115.9, "
        "medium 82.7 (39 epochs); AWD-LSTM 57.3",
    )
