"""Tokenizers: text <-> ids by characters, words or byte-level BPE, fitted on the training split.

Every kind shares one interface (:class:`Tokenizer`): ``fit`` on the training texts, then
``encode``/``decode``; ``to_json`` gives plain JSON to save with a run and
:func:`tokenizer_from_json` reads it back. The special tokens ``<pad> <unk> <bos> <eos>`` have
ids 0, 1, 2, 3 in every kind, as in :class:`~rnnkit.data.vocabulary.Vocabulary`. ``encode`` adds
no ``<bos>``/``<eos>``; ``decode`` drops ``<pad>``, ``<bos>`` and ``<eos>`` and writes ``<unk>``.

``char``
    Every character is a token; no normalisation, so decoding a text without unknown characters
    gives it back exactly.

``word``
    The text is normalised, in this order:

    1. Unicode NFKC (compatibility forms fold: the ligature "ﬁ" becomes "fi", a full-width
       "Ａ" becomes "A");
    2. HTML line breaks ``<br>``, ``<br/>``, ``<br />`` (as in IMDB reviews) become spaces;
    3. lowercasing, if asked for;

    then split into words (letters, digits and underscores, with inner apostrophes ' or ’ kept, as
    in "don't") and single punctuation marks. Decoding joins the words with single spaces.

    >>> WordTokenizer().tokens("Don't stop!<br /><br />Ｆine ﬁlm...")
    ["Don't", 'stop', '!', 'Fine', 'film', '.', '.', '.']
    >>> WordTokenizer(lowercase=True).tokens("Don't  STOP!")
    ["don't", 'stop', '!']

``whitespace``
    Split on whitespace only, no normalisation: for text that comes tokenized (Penn Treebank,
    the words of a CoNLL-U file).

``bpe``
    Byte-level BPE (HF ``tokenizers``, as in GPT-2): the text is split on spaces and punctuation
    and each piece is read as UTF-8 bytes, so every text can be encoded and nothing is unknown.
    Merges are learned on the training split. Decoding gives the text back exactly (lowercased if
    asked for). A special token's spelling inside a text, e.g. "<eos>", is encoded as plain text.
    The 256 bytes and the 4 specials are always in the vocabulary, so ``max_size`` must be at
    least 260.

>>> tokenizer = make_tokenizer("char")
>>> tokenizer.fit(["abca"])
>>> tokenizer.encode("abz"), tokenizer.decode(tokenizer.encode("ab"))
([4, 5, 1], 'ab')
"""

from __future__ import annotations

import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Literal

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

from rnnkit.data.vocabulary import BOS, EOS, PAD, SPECIALS, UNK, Vocabulary

__all__ = [
    "Tokenizer",
    "CharTokenizer",
    "WordTokenizer",
    "WhitespaceTokenizer",
    "BPETokenizer",
    "TOKENIZER_KINDS",
    "make_tokenizer",
    "tokenizer_from_json",
]

TokenizerKind = Literal["char", "word", "whitespace", "bpe"]
DEFAULT_BPE_VOCAB_SIZE = 8000
_BYTE_ALPHABET_SIZE = 256
_BR_TAG = re.compile(r"<br\s*/?>", re.IGNORECASE)
_WORD_OR_PUNCTUATION = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")
_FRAMING_IDS = frozenset({SPECIALS.index(PAD), SPECIALS.index(BOS), SPECIALS.index(EOS)})


class Tokenizer(ABC):
    """Text <-> ids; ``fit`` it on the training split before use."""

    kind: str

    def __init__(self, *, lowercase: bool = False) -> None:
        self.lowercase = lowercase

    @abstractmethod
    def fit(self, texts: Iterable[str], *, min_freq: int = 1, max_size: int | None = None) -> None:
        """Build the vocabulary from ``texts``: tokens seen ``min_freq`` times, at most
        ``max_size`` of them counting the specials."""

    @abstractmethod
    def tokens(self, text: str) -> list[str]:
        """The token strings of ``text`` (before mapping to ids)."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Ids of ``text``'s tokens; unknown tokens map to ``<unk>``."""

    @abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``, without ``<pad>``, ``<bos>`` and ``<eos>``."""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids, specials included."""

    @abstractmethod
    def to_json(self) -> dict:
        """Plain JSON data that :func:`tokenizer_from_json` turns back into this tokenizer."""

    @property
    def pad_id(self) -> int:
        return SPECIALS.index(PAD)

    @property
    def unk_id(self) -> int:
        return SPECIALS.index(UNK)

    @property
    def bos_id(self) -> int:
        return SPECIALS.index(BOS)

    @property
    def eos_id(self) -> int:
        return SPECIALS.index(EOS)

    def _not_fitted(self) -> RuntimeError:
        return RuntimeError(f"{self.kind} tokenizer: call fit() on the training texts first")


class _VocabularyTokenizer(Tokenizer):
    """A tokenizer whose ids come from a :class:`Vocabulary` of its token strings."""

    def __init__(self, *, lowercase: bool = False) -> None:
        super().__init__(lowercase=lowercase)
        self._vocabulary: Vocabulary | None = None

    @property
    def vocabulary(self) -> Vocabulary:
        if self._vocabulary is None:
            raise self._not_fitted()
        return self._vocabulary

    def fit(self, texts: Iterable[str], *, min_freq: int = 1, max_size: int | None = None) -> None:
        self._vocabulary = Vocabulary.build(
            (self.tokens(text) for text in texts), min_freq=min_freq, max_size=max_size
        )

    def fit_tokens(
        self, sequences: Iterable[list[str]], *, min_freq: int = 1, max_size: int | None = None
    ) -> None:
        """Fit on text that is already split into tokens (CoNLL-U words, say); ``lowercase``
        applies to them as to text."""
        self._vocabulary = Vocabulary.build(
            (self._case(tokens) for tokens in sequences), min_freq=min_freq, max_size=max_size
        )

    def encode(self, text: str) -> list[int]:
        return self.vocabulary.encode(self.tokens(text))

    def encode_tokens(self, tokens: Iterable[str]) -> list[int]:
        """Ids of tokens that are already split (unknown ones -> ``<unk>``)."""
        return self.vocabulary.encode(self._case(list(tokens)))

    def _case(self, tokens: list[str]) -> list[str]:
        return [t.lower() for t in tokens] if self.lowercase else tokens

    def _decoded_tokens(self, ids: Iterable[int]) -> list[str]:
        return self.vocabulary.decode(i for i in ids if i not in _FRAMING_IDS)

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def to_json(self) -> dict:
        return {"kind": self.kind, "lowercase": self.lowercase, **self.vocabulary.to_json()}

    @classmethod
    def from_json(cls, data: dict) -> _VocabularyTokenizer:
        tokenizer = cls(lowercase=_lowercase_field(data))
        try:
            tokenizer._vocabulary = Vocabulary.from_json({"tokens": data.get("tokens")})
        except ValueError as error:
            raise ValueError(f"{cls.kind} tokenizer JSON: {error}") from None
        return tokenizer


class CharTokenizer(_VocabularyTokenizer):
    """Every character is a token; decoding joins them."""

    kind = "char"

    def tokens(self, text: str) -> list[str]:
        return list(text.lower() if self.lowercase else text)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self._decoded_tokens(ids))


class WordTokenizer(_VocabularyTokenizer):
    """Words and punctuation marks of the normalised text (see the module docstring)."""

    kind = "word"

    def tokens(self, text: str) -> list[str]:
        text = _BR_TAG.sub(" ", unicodedata.normalize("NFKC", text))
        if self.lowercase:
            text = text.lower()
        return _WORD_OR_PUNCTUATION.findall(text)

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self._decoded_tokens(ids))


class WhitespaceTokenizer(_VocabularyTokenizer):
    """Whitespace-separated tokens, nothing else: for corpora that come tokenized (Penn
    Treebank, CoNLL-U), where ``<unk>`` in the text is the unknown token."""

    kind = "whitespace"

    def tokens(self, text: str) -> list[str]:
        return (text.lower() if self.lowercase else text).split()

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self._decoded_tokens(ids))


class BPETokenizer(Tokenizer):
    """Byte-level BPE from HF ``tokenizers``; merges learned by ``fit``."""

    kind = "bpe"

    def __init__(self, *, lowercase: bool = False) -> None:
        super().__init__(lowercase=lowercase)
        self._hf: HFTokenizer | None = None

    @property
    def hf_tokenizer(self) -> HFTokenizer:
        """The underlying HF ``tokenizers.Tokenizer``."""
        if self._hf is None:
            raise self._not_fitted()
        return self._hf

    def fit(self, texts: Iterable[str], *, min_freq: int = 1, max_size: int | None = None) -> None:
        """Learn merges until ``max_size`` ids (default 8000); a merge must occur ``min_freq``
        times."""
        vocab_size = DEFAULT_BPE_VOCAB_SIZE if max_size is None else max_size
        smallest = len(SPECIALS) + _BYTE_ALPHABET_SIZE
        if vocab_size < smallest:
            raise ValueError(
                f"bpe tokenizer: max_size must be at least {smallest} "
                f"(the {len(SPECIALS)} specials and {_BYTE_ALPHABET_SIZE} bytes), got {vocab_size}"
            )
        hf = HFTokenizer(models.BPE(unk_token=UNK))
        if self.lowercase:
            hf.normalizer = normalizers.Lowercase()
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_freq,
            special_tokens=list(SPECIALS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        hf.train_from_iterator(iter(texts), trainer=trainer)
        self._use(hf)

    def _use(self, hf: HFTokenizer) -> None:
        """Adopt ``hf`` after checking its specials' ids; special spellings in text stay text."""
        ids = [hf.token_to_id(token) for token in SPECIALS]
        if ids != list(range(len(SPECIALS))):
            raise ValueError(f"bpe tokenizer: expected {SPECIALS} to have ids 0..3, got {ids}")
        hf.encode_special_tokens = True  # not kept by to_str(), so set on every load
        self._hf = hf

    def tokens(self, text: str) -> list[str]:
        """Byte-level token strings (a leading space shows as "Ġ")."""
        return self.hf_tokenizer.encode(text, add_special_tokens=False).tokens

    def encode(self, text: str) -> list[int]:
        return self.hf_tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        kept = [i for i in ids if i not in _FRAMING_IDS]
        return self.hf_tokenizer.decode(kept, skip_special_tokens=False)

    @property
    def vocab_size(self) -> int:
        return self.hf_tokenizer.get_vocab_size(with_added_tokens=True)

    def to_json(self) -> dict:
        return {"kind": self.kind, "lowercase": self.lowercase, "hf": self.hf_tokenizer.to_str()}

    @classmethod
    def from_json(cls, data: dict) -> BPETokenizer:
        tokenizer = cls(lowercase=_lowercase_field(data))
        serialized = data.get("hf")
        if not isinstance(serialized, str):
            raise ValueError("bpe tokenizer JSON: expected 'hf', the HF tokenizer's JSON string")
        try:
            hf = HFTokenizer.from_str(serialized)
        except Exception as error:  # the Rust side raises a bare Exception
            raise ValueError(f"bpe tokenizer JSON: 'hf' is not an HF tokenizer: {error}") from None
        tokenizer._use(hf)
        return tokenizer


TOKENIZER_KINDS: dict[str, type[Tokenizer]] = {
    "char": CharTokenizer,
    "word": WordTokenizer,
    "whitespace": WhitespaceTokenizer,
    "bpe": BPETokenizer,
}


def make_tokenizer(kind: TokenizerKind, *, lowercase: bool = False) -> Tokenizer:
    """An unfitted tokenizer of ``kind``: ``"char"``, ``"word"`` or ``"bpe"``."""
    return _tokenizer_class(kind)(lowercase=lowercase)


def tokenizer_from_json(data: dict) -> Tokenizer:
    """The tokenizer that ``to_json`` saved; reads data only, never runs code."""
    if not isinstance(data, dict):
        raise ValueError(f"tokenizer JSON: expected an object, got {type(data).__name__}")
    return _tokenizer_class(data.get("kind")).from_json(data)


def _tokenizer_class(kind: object) -> type[Tokenizer]:
    if kind not in TOKENIZER_KINDS:
        raise ValueError(
            f"tokenizer: expected kind 'char', 'word', 'whitespace' or 'bpe', got {kind!r}"
        )
    return TOKENIZER_KINDS[kind]


def _lowercase_field(data: dict) -> bool:
    lowercase = data.get("lowercase", False)
    if not isinstance(lowercase, bool):
        raise ValueError(f"tokenizer JSON: expected 'lowercase' true or false, got {lowercase!r}")
    return lowercase
