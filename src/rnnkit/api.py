"""The Python face of a trained run: ``rnnkit.load(run_dir)`` and what it can do.

Every CLI command is a thin layer over these: ``Trained.predict``, ``Trained.generate``,
``Trained.evaluate``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .bundle import Bundle, load_bundle
from .data.batches import pad_batch
from .data.prepare import MAX_WORD_CHARS
from .data.tokenizers import Tokenizer
from .data.vocabulary import SPECIALS
from .models.generation import generate_ids

__all__ = ["Trained", "load", "generate_text"]


def _stream_text(bundle: Bundle, prompt: str, max_tokens: int, **sampling: Any) -> Iterator[str]:
    """New text after ``prompt``, piece by piece. Word models write ``<eos>`` as a line break;
    special tokens that never end a training line (padding, unknown, start) are not produced;
    subwords are decoded as they complete characters."""
    tokenizer = bundle.tokenizer
    banned = [tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id]
    if tokenizer.kind in ("char", "bpe"):
        banned.append(tokenizer.eos_id)  # their streams end lines with a newline, not <eos>
    ids = encode_prompt(tokenizer, prompt)
    if not ids:
        raise ValueError("prompt: expected some text to continue, got an empty prompt")
    words = tokenizer.kind in ("word", "whitespace")
    after_line_break = prompt.endswith("\n")
    pending: list[int] = []
    for token_id in generate_ids(bundle.model, ids, max_tokens, banned=banned, **sampling):
        if not words:
            pending.append(token_id)
            text = tokenizer.decode(pending)
            if not text.endswith("\ufffd"):  # a multi-byte character still incomplete
                pending = []
                yield text
        elif token_id == tokenizer.eos_id:
            after_line_break = True
            yield "\n"
        else:
            token = tokenizer.decode([token_id])
            yield token if after_line_break else " " + token
            after_line_break = False
    if pending:
        yield tokenizer.decode(pending)


def encode_prompt(tokenizer: Tokenizer, prompt: str) -> list[int]:
    """A prompt as the model's training stream reads it: for word tokenizers every line break
    is ``<eos>`` (so ``"\\n"`` is a prompt too); other kinds encode the text as it is."""
    if tokenizer.kind not in ("word", "whitespace"):
        return tokenizer.encode(prompt)
    *lines, last = prompt.split("\n")
    ids = [i for line in lines for i in (*tokenizer.encode(line), tokenizer.eos_id)]
    return ids + tokenizer.encode(last)


def generate_text(bundle: Bundle, prompt: str, max_tokens: int, **sampling: Any) -> str:
    """Continue ``prompt`` with a language-model bundle (characters or words)."""
    return "".join(_stream_text(bundle, prompt, max_tokens, **sampling))


class Trained:
    """A trained model with its tokenizer and labels: predict, generate, evaluate."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.config, self.model = bundle.config, bundle.model
        self.tokenizer, self.labels = bundle.tokenizer, bundle.labels
        self.task = self.config.task

    def generate(
        self,
        prompt: str,
        max_tokens: int = 200,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        stream: bool = False,
    ) -> str | Iterator[str]:
        """Continue ``prompt``; with ``stream=True`` yield the new text piece by piece."""
        if self.task != "language_model":
            raise ValueError(f"generate needs a language-model run; this run is {self.task!r}")
        pieces = _stream_text(
            self.bundle,
            prompt,
            max_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
        )
        return pieces if stream else "".join(pieces)

    def _token_text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id]) or SPECIALS[token_id]

    @torch.no_grad()
    def predict(self, texts: str | list[str], top: int = 5) -> list[dict[str, Any]]:
        """Classification: label and probabilities per text. Labelling: (token, tag) pairs.
        Language model: the ``top`` most likely next tokens after each text."""
        if isinstance(texts, str):
            texts = [texts]
        self.model.eval()
        results = []
        for text in texts:
            max_len = self.config.data.max_len  # as training and evaluation cut examples
            if self.task == "labelling":  # words as they are (CoNLL-U), one tag each
                tokens = text.split()[:max_len]
                encoded = self.tokenizer.encode_tokens(tokens)
            else:
                tokens = self.tokenizer.tokens(text)
                encoded = self.tokenizer.encode(text)
                encoded = encoded[:max_len] if self.task == "classification" else encoded
            ids = torch.tensor([encoded or [self.tokenizer.unk_id]])
            lengths = torch.tensor([ids.shape[1]])
            if self.task == "classification":
                probabilities = self.model(ids, lengths).softmax(-1)[0]
                best = int(probabilities.argmax())
                results.append(
                    {
                        "text": text,
                        "label": self.labels[best],
                        "probabilities": {
                            label: float(p)
                            for label, p in zip(self.labels, probabilities, strict=True)
                        },
                    }
                )
            elif self.task == "labelling":
                chars = None
                if self.bundle.characters is not None:
                    words = [self.bundle.characters.encode(w)[:MAX_WORD_CHARS] for w in tokens]
                    chars = pad_batch([(ids[0].tolist(), 0, words)])[3]
                tags = self.model.predict(ids, lengths, chars)[0].tolist()
                results.append(
                    {"text": text, "tokens": tokens, "tags": [self.labels[t] for t in tags]}
                )
            else:
                logits, _ = self.model(ids)
                probabilities = logits[0, -1].softmax(-1)
                values, indices = probabilities.topk(min(top, self.tokenizer.vocab_size))
                results.append(
                    {
                        "text": text,
                        "next": [
                            {"token": self._token_text(i), "probability": float(p)}
                            for p, i in zip(values.tolist(), indices.tolist(), strict=True)
                        ],
                    }
                )
        return results

    def evaluate(
        self, split: str = "test", *, progress: bool = False, limit_batches: int | None = None
    ) -> dict[str, float]:
        """Metrics on a split of the run's dataset, encoded with the run's own tokenizer."""
        from .data.prepare import prepare_data
        from .training.tasks import make_task

        data = prepare_data(self.config, self.tokenizer, self.labels, self.bundle.characters)
        value = getattr(data, split, None) if split in ("train", "val", "test") else None
        if split not in ("train", "val", "test"):
            raise ValueError(f"split: expected 'train', 'val' or 'test', got {split!r}")
        if value is None or len(value) == 0:
            raise ValueError(f"the {split} split of {self.config.data.dataset!r} is empty")
        task = make_task(self.config, self.model, data)
        return task.evaluate(split, progress=progress, limit_batches=limit_batches)


def load(path: str | Path) -> Trained:
    """Load a run directory, a model bundle or a training checkpoint, ready to use."""
    return Trained(load_bundle(path))
