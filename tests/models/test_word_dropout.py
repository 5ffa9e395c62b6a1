"""Word dropout replaces real tokens by <unk> at its rate in training only, never padding."""

import pytest
import torch

from rnnkit.config import ModelConfig
from rnnkit.data.vocabulary import SPECIALS, UNK
from rnnkit.models import SequenceClassifier, SequenceTagger
from rnnkit.models.build import build_model
from rnnkit.models.word_dropout import WordDropout


def test_rate_padding_and_unk_id():
    torch.manual_seed(0)
    tokens = torch.randint(4, 1000, (200, 500))
    tokens[:, 400:] = 0  # padding
    dropped = WordDropout(0.2).train()(tokens)
    changed = dropped != tokens
    assert torch.equal(dropped[:, 400:], tokens[:, 400:])
    assert bool((dropped[changed] == SPECIALS.index(UNK)).all())
    rate = changed[:, :400].float().mean().item()
    assert abs(rate - 0.2) < 0.005, rate  # 80,000 draws: the standard error is 0.0014


def test_identity_in_eval_mode_and_at_zero():
    tokens = torch.randint(0, 50, (4, 9))
    assert torch.equal(WordDropout(0.5).eval()(tokens), tokens)
    assert torch.equal(WordDropout(0.0).train()(tokens), tokens)


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_bad_rate_is_refused(p):
    with pytest.raises(ValueError, match=r"word dropout: expected a probability in \[0, 1\)"):
        WordDropout(p)


def test_models_see_unk_in_training_only():
    """With a rate near 1 a training forward pass reads (almost) only <unk>, so it differs from
    the eval pass, which reads the tokens; with rate 0 the two passes agree."""
    torch.manual_seed(0)
    tokens, lengths = torch.randint(4, 30, (3, 7)), torch.tensor([7, 5, 2])
    for make in (
        lambda p: SequenceClassifier(30, 2, 8, 6, word_dropout=p),
        lambda p: SequenceTagger(30, 3, 8, 6, word_dropout=p),
    ):
        model = make(0.99)
        assert not torch.allclose(model.train()(tokens, lengths), model.eval()(tokens, lengths))
        model = make(0.0)
        assert torch.allclose(model.train()(tokens, lengths), model.eval()(tokens, lengths))


def test_language_model_refuses_word_dropout():
    with pytest.raises(ValueError, match="model.word_dropout is for classification and labelling"):
        build_model("language_model", ModelConfig(word_dropout=0.1), vocab_size=10)
