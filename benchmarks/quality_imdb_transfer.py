"""IMDB sentiment with transfer learning: a language model pretrained on the training reviews
(``configs/imdb_lm.yaml``) starts the classifier of ``configs/imdb.yaml``, which is fine-tuned
with gradual unfreezing; compare with ``quality_imdb`` (the same classifier from scratch).
Run: ``python -m benchmarks.quality_imdb_transfer``."""

from benchmarks.quality import run_quality

if __name__ == "__main__":
    run_quality(
        "IMDB sentiment, LM-pretrained",
        "configs/imdb.yaml",
        metric="acc",
        split="test",
        anchor="the same classifier from scratch (python -m benchmarks.quality_imdb); "
        "ULMFiT (Howard & Ruder 2018) 95.4% with a 3-layer AWD-LSTM pretrained on Wikitext-103",
        pretrain="configs/imdb_lm.yaml",
        fixed=("train.gradual_unfreezing=true",),
    )
