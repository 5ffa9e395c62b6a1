"""Sampling the next token, and generating text one token at a time with carried state."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from .language_model import LanguageModel

__all__ = ["sample_next", "generate_ids"]


def sample_next(
    logits: Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """logits (B, V) -> next token ids (B,).

    ``temperature == 0`` is greedy (argmax). ``top_k`` keeps the k most likely tokens; ``top_p``
    keeps the smallest set whose probability reaches p (nucleus sampling).
    """
    if temperature < 0:
        raise ValueError(f"temperature: expected a value >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k: expected a positive integer, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p: expected a value in (0, 1], got {top_p}")
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) >= top_p  # keep the token that crosses p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probabilities = logits.softmax(-1)
    return torch.multinomial(probabilities, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def generate_ids(
    model: LanguageModel,
    prompt: Sequence[int],
    max_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    banned: Sequence[int] = (),
) -> Iterator[int]:
    """Yield ``max_tokens`` new token ids after ``prompt``, one at a time.

    The prompt is read once; every new token costs one recurrent step, the state carried
    forward (O(1) work per token, whatever the length so far). ``banned`` ids (padding, say)
    are never produced.
    """
    if not prompt:
        raise ValueError("prompt: expected at least one token")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    if seed is not None:
        generator.manual_seed(seed)
    else:
        generator.seed()
    was_training = model.training
    model.eval()
    try:
        logits, state = model(torch.tensor([list(prompt)], device=device))
        for _ in range(max_tokens):
            last = logits[:, -1]
            if banned:
                last = last.index_fill(-1, torch.tensor(list(banned), device=device), float("-inf"))
            token = sample_next(
                last,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                generator=generator,
            )
            yield int(token)
            logits, state = model(token.view(1, 1), state)
    finally:
        model.train(was_training)
