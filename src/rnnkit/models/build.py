"""Build a task's model from the ``model`` section of a config."""

from __future__ import annotations

from torch import nn

from ..config import ModelConfig
from .classifier import SequenceClassifier
from .language_model import LanguageModel
from .tagger import SequenceTagger

__all__ = ["build_model"]


def build_model(
    task: str, config: ModelConfig, vocab_size: int, num_labels: int = 0, num_chars: int = 0
) -> nn.Module:
    """The model for ``task`` ('language_model', 'classification' or 'labelling');
    ``num_chars`` sizes a tagger's character embedding."""
    common = dict(
        embedding_dim=config.embedding_dim,
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        cell=config.cell,
        dropout=config.dropout,
        recurrent_dropout=config.recurrent_dropout,
        layer_norm=config.layer_norm,
    )
    if task != "labelling" and (config.crf or config.char_embedding_dim):
        raise ValueError(
            "model.crf and model.char_embedding_dim are for task labelling; got task " + repr(task)
        )
    if task == "language_model" and config.word_dropout:
        raise ValueError(
            "model.word_dropout is for classification and labelling (a language model predicts "
            f"the words it reads); got {config.word_dropout} with task language_model"
        )
    if task == "language_model":
        if config.bidirectional:
            raise ValueError("model.bidirectional: a language model reads left to right; got true")
        return LanguageModel(vocab_size, **common, tie_weights=config.tie_weights)
    if task == "classification":
        return SequenceClassifier(
            vocab_size,
            num_labels,
            **common,
            bidirectional=config.bidirectional,
            pooling=config.pooling,
            word_dropout=config.word_dropout,
        )
    if task == "labelling":
        return SequenceTagger(
            vocab_size,
            num_labels,
            **common,
            bidirectional=config.bidirectional,
            crf=config.crf,
            num_chars=num_chars,
            char_embedding_dim=config.char_embedding_dim,
            char_hidden_size=config.char_hidden_size,
            word_dropout=config.word_dropout,
        )
    raise ValueError(f"task: expected language_model, classification or labelling, got {task!r}")
