"""A linear-chain conditional random field: the structured output layer of a sequence tagger.

For emissions e (T, C) and a tag sequence y of length T the score is

    s(y) = start[y_0] + sum_t e[t, y_t] + sum_{t>=1} transitions[y_{t-1}, y_t] + end[y_{T-1}]

and p(y) = exp(s(y)) / Z with Z summed over all C^T sequences by the forward algorithm; decoding
finds argmax_y s(y) by Viterbi. Everything is batch-first. A batch comes with a boolean ``mask``
(B, T) that is a right-padded prefix: row b is True for its first ``lengths[b]`` steps and False
after. Every sequence must have at least one step. Emissions and tags at padded steps are ignored,
whatever they hold (NaN emissions, tag -100), so a padded batch scores each sequence exactly as
it would score alone.

Shape legend: B batch, T time steps, C tags.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..ops.validation import check_floating

__all__ = ["CRF", "PAD_TAG"]

PAD_TAG = -100
"""The tag written at padded steps by :meth:`CRF.decode_tensor` (the ``ignore_index`` of
``torch.nn.functional.cross_entropy``)."""

REDUCTIONS = ("sum", "mean", "none")


class CRF(nn.Module):
    """Linear-chain CRF over ``num_tags`` tags.

    Parameters: ``transitions`` (C, C), the score of moving from tag i to tag j;
    ``start_transitions`` (C,) and ``end_transitions`` (C,), the scores of the first and the last
    tag. All are initialised uniformly in [-0.1, 0.1], as in pytorch-crf.

    >>> crf = CRF(3)
    >>> emissions, mask = torch.randn(2, 4, 3), torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]).bool()
    >>> [len(path) for path in crf.decode(emissions, mask)]
    [4, 2]
    >>> crf.log_likelihood(emissions, torch.zeros(2, 4, dtype=torch.long), mask).shape
    torch.Size([2])
    """

    def __init__(self, num_tags: int) -> None:
        super().__init__()
        if not isinstance(num_tags, int) or isinstance(num_tags, bool) or num_tags <= 0:
            raise ValueError(f"CRF: num_tags must be a positive int; got {num_tags!r}")
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags))
        self.start_transitions = nn.Parameter(torch.empty(num_tags))
        self.end_transitions = nn.Parameter(torch.empty(num_tags))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for parameter in (self.transitions, self.start_transitions, self.end_transitions):
            nn.init.uniform_(parameter, -0.1, 0.1)

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}"

    def log_likelihood(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """log p(tags | emissions) = s(tags) - log Z per sequence.

        emissions (B, T, C) float, tags (B, T) integer (any value at padded steps),
        mask (B, T) bool -> (B,).
        """
        lengths = self._check(emissions, mask, tags)
        emissions = emissions.masked_fill(~mask.unsqueeze(-1), 0.0)
        tags = tags.long().masked_fill(~mask, 0)
        return self._score(emissions, tags, mask, lengths) - self._log_partition(emissions, mask)

    def nll(self, emissions: Tensor, tags: Tensor, mask: Tensor, reduction: str = "sum") -> Tensor:
        """Negative log-likelihood, the training loss: -log_likelihood reduced over the batch.

        emissions (B, T, C), tags (B, T), mask (B, T) -> () for ``"sum"`` and ``"mean"`` (the
        mean over sequences), (B,) for ``"none"``.
        """
        if reduction not in REDUCTIONS:
            raise ValueError(f"CRF: reduction must be one of {REDUCTIONS}; got {reduction!r}")
        loss = -self.log_likelihood(emissions, tags, mask)
        if reduction == "sum":
            return loss.sum()
        if reduction == "mean":
            return loss.mean()
        return loss

    def decode(self, emissions: Tensor, mask: Tensor) -> list[list[int]]:
        """Viterbi: the highest-scoring tag sequence of each row, ``lengths[b]`` tags long.

        emissions (B, T, C), mask (B, T) -> B lists of ints.
        """
        paths = self.decode_tensor(emissions, mask)
        lengths = mask.sum(1).tolist()
        return [path[:n] for path, n in zip(paths.tolist(), lengths, strict=True)]

    @torch.no_grad()
    def decode_tensor(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """Viterbi as a tensor: emissions (B, T, C), mask (B, T) -> (B, T) long, the best tags at
        valid steps and ``PAD_TAG`` (-100) at padded ones, ready for token-level metrics."""
        self._check(emissions, mask)
        emissions = emissions.masked_fill(~mask.unsqueeze(-1), 0.0)
        score = self.start_transitions + emissions[:, 0]  # (B, C): best path ending in each tag
        backpointers = []  # T-1 tensors (B, C): the best previous tag for each tag at step t
        for t in range(1, emissions.shape[1]):
            candidates = score.unsqueeze(2) + self.transitions  # (B, C_prev, C_next)
            best, previous = candidates.max(1)
            score = torch.where(mask[:, t, None], best + emissions[:, t], score)
            backpointers.append(previous)
        # A padded step leaves the score as it was, so the final score is each row's score at its
        # last valid step; walking back, the current tag only moves at valid steps.
        tag = (score + self.end_transitions).argmax(1)  # (B,): the best last tag
        paths = torch.full(mask.shape, PAD_TAG, dtype=torch.long, device=emissions.device)
        for t in range(emissions.shape[1] - 1, 0, -1):
            paths[:, t] = torch.where(mask[:, t], tag, PAD_TAG)
            previous = backpointers[t - 1].gather(1, tag.unsqueeze(1)).squeeze(1)
            tag = torch.where(mask[:, t], previous, tag)
        paths[:, 0] = tag
        return paths

    def _score(self, emissions: Tensor, tags: Tensor, mask: Tensor, lengths: Tensor) -> Tensor:
        """s(tags) per sequence: emissions (B, T, C) zero at padded steps, tags (B, T) valid
        everywhere, mask (B, T), lengths (B,) -> (B,)."""
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2).sum(1)
        moves = self.transitions[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
        moved = (moves * mask[:, 1:]).sum(1)
        last = tags.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)
        return self.start_transitions[tags[:, 0]] + emitted + moved + self.end_transitions[last]

    def _log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """log Z by the forward algorithm: emissions (B, T, C), mask (B, T) -> (B,)."""
        alpha = self.start_transitions + emissions[:, 0]  # (B, C): log-sum over paths to each tag
        for t in range(1, emissions.shape[1]):
            step = torch.logsumexp(alpha.unsqueeze(2) + self.transitions, dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t, None], step, alpha)
        return torch.logsumexp(alpha + self.end_transitions, dim=1)

    def _check(self, emissions: Tensor, mask: Tensor, tags: Tensor | None = None) -> Tensor:
        """Validate the inputs and return the lengths (B,) the mask encodes."""
        check_floating("emissions", emissions, "CRF", self.transitions.dtype)
        if emissions.dim() != 3 or emissions.shape[2] != self.num_tags:
            raise ValueError(
                f"CRF: expected emissions of shape (B, T, {self.num_tags}); "
                f"got {tuple(emissions.shape)}"
            )
        batch_shape = tuple(emissions.shape[:2])
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
            raise TypeError(f"CRF: mask must be a bool tensor; got {got}")
        if tuple(mask.shape) != batch_shape:
            raise ValueError(
                f"CRF: expected mask of shape {batch_shape} like emissions; got {tuple(mask.shape)}"
            )
        lengths = mask.sum(1)
        empty = (lengths == 0).nonzero().flatten().tolist()
        if empty or batch_shape[1] == 0:
            raise ValueError(
                f"CRF: every sequence needs at least one valid step; rows {empty} of the mask "
                f"have none (shape {batch_shape})"
            )
        prefix = torch.arange(batch_shape[1], device=mask.device) < lengths.unsqueeze(1)
        holes = (mask != prefix).any(1).nonzero().flatten().tolist()
        if holes:
            raise ValueError(
                f"CRF: the mask must be a right-padded prefix (True steps, then False ones); "
                f"rows {holes} are not"
            )
        if tags is not None:
            self._check_tags(tags, mask, batch_shape)
        return lengths

    def _check_tags(self, tags: Tensor, mask: Tensor, batch_shape: tuple[int, ...]) -> None:
        if not isinstance(tags, Tensor) or tags.dtype.is_floating_point or tags.dtype == torch.bool:
            got = tags.dtype if isinstance(tags, Tensor) else type(tags).__name__
            raise TypeError(f"CRF: tags must be an integer tensor; got {got}")
        if tuple(tags.shape) != batch_shape:
            raise ValueError(
                f"CRF: expected tags of shape {batch_shape} like emissions; got {tuple(tags.shape)}"
            )
        valid = tags[mask]
        outside = (valid < 0) | (valid >= self.num_tags)
        if outside.any():
            raise ValueError(
                f"CRF: tags at valid steps must lie in [0, {self.num_tags}); "
                f"got {valid[outside].unique().tolist()}"
            )
