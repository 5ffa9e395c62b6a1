"""Vocabularies: token <-> id maps with special tokens, saved as JSON beside a run's weights."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["PAD", "UNK", "BOS", "EOS", "SPECIALS", "Vocabulary"]

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)


@dataclass
class Vocabulary:
    """Tokens in id order; the specials come first, so ``<pad>`` is id 0.

    >>> v = Vocabulary.build(["abca"], min_freq=1)
    >>> v.encode("abz"), v.decode(v.encode("ab"))
    ([4, 5, 1], ['a', 'b'])
    """

    tokens: list[str]
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.index = {token: i for i, token in enumerate(self.tokens)}
        missing = [s for s in SPECIALS if s not in self.index]
        if missing:
            raise ValueError(
                f"vocabulary: expected the special tokens {SPECIALS}, missing {missing}"
            )
        if len(self.index) != len(self.tokens):
            raise ValueError("vocabulary: tokens must be unique")

    @classmethod
    def build(
        cls, sequences: Iterable[Sequence[str]], *, min_freq: int = 1, max_size: int | None = None
    ) -> Vocabulary:
        """Count tokens; keep those seen ``min_freq`` times, most frequent first (ties by token)."""
        counts: Counter[str] = Counter()
        for sequence in sequences:
            counts.update(sequence)
        kept = sorted(
            (t for t, n in counts.items() if n >= min_freq and t not in SPECIALS),
            key=lambda t: (-counts[t], t),
        )
        if max_size is not None:
            kept = kept[: max(0, max_size - len(SPECIALS))]
        return cls(list(SPECIALS) + kept)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def pad_id(self) -> int:
        return self.index[PAD]

    @property
    def unk_id(self) -> int:
        return self.index[UNK]

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of ``tokens``; unknown tokens map to ``<unk>``."""
        unk = self.unk_id
        return [self.index.get(t, unk) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[i] for i in ids]

    def to_json(self) -> dict:
        return {"tokens": self.tokens}

    @classmethod
    def from_json(cls, data: dict) -> Vocabulary:
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ValueError("vocabulary JSON: expected {'tokens': [str, ...]}")
        return cls(tokens)
