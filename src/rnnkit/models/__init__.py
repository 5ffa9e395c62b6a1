"""Task models: embeddings, a recurrent stack and a head, for text in and labels or text out."""

from .build import build_model as build_model
from .classifier import SequenceClassifier as SequenceClassifier
from .generation import generate_ids as generate_ids
from .generation import sample_next as sample_next
from .language_model import LanguageModel as LanguageModel
from .recurrent import make_recurrent as make_recurrent
from .tagger import SequenceTagger as SequenceTagger

__all__ = [
    "build_model",
    "generate_ids",
    "LanguageModel",
    "make_recurrent",
    "sample_next",
    "SequenceClassifier",
    "SequenceTagger",
]
