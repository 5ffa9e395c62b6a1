"""The tagger: character features and the CRF output, trained end to end on a tiny CoNLL-U."""

import torch

import rnnkit.api
from rnnkit.models import SequenceTagger
from tests.training.conftest import train_tiny


def test_character_features_make_unseen_words_taggable():
    tagger = SequenceTagger(10, 3, 8, 6, num_chars=12, char_embedding_dim=4, char_hidden_size=5)
    tokens = torch.tensor([[4, 5, 0]])
    chars = torch.tensor([[[4, 5, 0], [6, 0, 0], [0, 0, 0]]])
    scores = tagger(tokens, torch.tensor([2]), chars)
    assert scores.shape == (1, 3, 3)
    # a padded word (all-zero characters) contributes zeros from the character encoder
    assert torch.equal(tagger.chars(chars)[0, 2], torch.zeros(10))


def test_crf_prediction_pads_with_minus_100():
    tagger = SequenceTagger(10, 3, 8, 6, crf=True).eval()
    predicted = tagger.predict(torch.tensor([[4, 5, 6], [7, 0, 0]]), torch.tensor([3, 1]))
    assert predicted[1, 1:].tolist() == [-100, -100]
    assert bool((predicted[0] >= 0).all())


def _conllu(path, sentences):
    lines = []
    for words, tags in sentences:
        lines += [
            f"{i + 1}\t{w}\t{w}\t{t}\t_\t_\t0\tdep\t_\t_"
            for i, (w, t) in enumerate(zip(words, tags, strict=True))
        ]
        lines.append("")
    path.write_text("\n".join(lines))


def test_char_crf_tagger_learns_suffix_tags(tmp_path):
    """Tags follow the suffix (-ing VERB, -ly ADV, else NOUN): words of stems never seen in
    training ("boldly", "calming") are tagged right from their characters."""
    generator = torch.Generator().manual_seed(0)
    stems = ["walk", "talk", "jump", "read", "play", "sing", "quick", "slow", "calm", "bold"]
    kinds = [("ing", "VERB"), ("ly", "ADV"), ("", "NOUN")]
    sentences = []
    for _ in range(200):
        n = int(torch.randint(2, 6, (1,), generator=generator))
        picks = torch.randint(0, 8, (n,), generator=generator).tolist()  # stems 8, 9 held out
        forms = torch.randint(0, 3, (n,), generator=generator).tolist()
        sentences.append(
            (
                [stems[p] + kinds[f][0] for p, f in zip(picks, forms, strict=True)],
                [kinds[f][1] for f in forms],
            )
        )
    _conllu(tmp_path / "train.conllu", sentences)
    result = train_tiny(
        tmp_path / "train.conllu",
        tmp_path / "run",
        "task=labelling",
        "model.bidirectional=true",
        "model.crf=true",
        "model.char_embedding_dim=8",
        "model.char_hidden_size=12",
        "train.max_epochs=15",
        "optim.lr=0.02",
        "sample.prompt=x",
    )
    assert result.metrics["val_acc"] >= 0.95
    trained = rnnkit.api.load(result.run_dir)
    [prediction] = trained.predict("boldly calming walk")
    assert prediction["tags"] == ["ADV", "VERB", "NOUN"]
