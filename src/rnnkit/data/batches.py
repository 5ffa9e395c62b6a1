"""Batches for training through time.

Two layouts:

* ``StreamChunks``: a language model's token stream cut into ``B`` contiguous streams, read
  ``bptt`` steps at a time, so batch ``k + 1`` continues batch ``k`` row by row and the recurrent
  state can be carried across batches (truncated BPTT).
* ``BucketBatchSampler`` + ``pad_batch``: variable-length examples grouped with others of similar
  length, padded on the right and passed with their ``lengths``.

Both cut one *global* batch per step and give each distributed rank its own slice of it, so a run
on N processes sees the same examples per step as a run on one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

__all__ = ["StreamChunks", "BucketBatchSampler", "pad_batch", "rank_slice"]


def rank_slice(size: int, rank: int, world_size: int) -> slice:
    """The rows of a global batch of ``size`` that ``rank`` of ``world_size`` takes.

    >>> rank_slice(8, 1, 2)
    slice(4, 8, None)
    """
    if size % world_size:
        raise ValueError(
            f"batch_size: expected a multiple of the number of processes ({world_size}), got {size}"
        )
    per_rank = size // world_size
    return slice(rank * per_rank, (rank + 1) * per_rank)


class StreamChunks(Dataset):
    """Contiguous (inputs, targets) chunks of a token stream, one batch per item.

    ``ids`` (N,) is cut into ``batch_size`` streams of equal length (the tail that does not fill
    a row is dropped); item ``k`` is ``(x, y)``, each (B_rank, t) with t <= bptt, where
    ``y`` is ``x`` shifted by one token. Use with ``DataLoader(batch_size=None)``.

    >>> chunks = StreamChunks(torch.arange(10), batch_size=2, bptt=2)
    >>> len(chunks), chunks[0][0].tolist(), chunks[0][1].tolist()
    (2, [[0, 1], [5, 6]], [[1, 2], [6, 7]])
    """

    def __init__(
        self, ids: Tensor, batch_size: int, bptt: int, *, rank: int = 0, world_size: int = 1
    ) -> None:
        if ids.dim() != 1:
            raise ValueError(f"token ids: expected a 1-D tensor, got shape {tuple(ids.shape)}")
        row = ids.numel() // batch_size
        if row < 2:
            raise ValueError(
                f"token stream of {ids.numel()} tokens is too short for batch_size={batch_size}: "
                "each stream needs at least 2 tokens"
            )
        streams = ids[: row * batch_size].view(batch_size, row)
        self.streams = streams[rank_slice(batch_size, rank, world_size)]
        self.bptt = bptt

    def __len__(self) -> int:
        return -(-(self.streams.shape[1] - 1) // self.bptt)

    def __getitem__(self, k: int) -> tuple[Tensor, Tensor]:
        if not 0 <= k < len(self):
            raise IndexError(k)
        start = k * self.bptt
        stop = min(start + self.bptt, self.streams.shape[1] - 1)
        return self.streams[:, start:stop], self.streams[:, start + 1 : stop + 1]


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of indices with similar lengths, reshuffled every epoch from ``(seed, epoch)``.

    Each epoch the examples are shuffled, cut into pools of ``pool_batches`` global batches,
    sorted by length inside a pool, and cut into global batches whose order is shuffled again;
    a rank yields its slice of every global batch. ``bucket=False`` keeps the shuffled order.
    The last incomplete global batch is dropped when ``drop_last`` (training) and kept otherwise.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        *,
        shuffle: bool = True,
        bucket: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pool_batches: int = 50,
    ) -> None:
        rank_slice(batch_size, rank, world_size)  # checks divisibility
        self.lengths = torch.as_tensor(list(lengths), dtype=torch.long)
        self.batch_size = batch_size
        self.shuffle, self.bucket, self.drop_last = shuffle, bucket, drop_last
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.pool_batches = pool_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch

    def _global_batches(self) -> list[Tensor]:
        n = len(self.lengths)
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        if self.bucket:
            pool = self.batch_size * self.pool_batches
            pools = [order[i : i + pool] for i in range(0, n, pool)]
            order = torch.cat(
                [p[torch.argsort(self.lengths[p], stable=True, descending=True)] for p in pools]
            )
        batches = list(order.split(self.batch_size))
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle and self.bucket:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator)]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self._global_batches():
            per_rank = -(-len(batch) // self.world_size)
            part = batch[self.rank * per_rank : (self.rank + 1) * per_rank]
            if len(part):
                yield part.tolist()

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def pad_batch(examples: Sequence[tuple], pad_id: int = 0) -> tuple[Tensor, ...]:
    """Right-pad token id lists: -> tokens (B, T_max) long, lengths (B,), targets[, chars].

    Targets are a (B,) tensor for one label per example, or a (B, T_max) tensor padded with -100
    (ignored by the loss) for one label per token. Examples with a third element (character ids
    of each word) also give chars (B, T_max, W_max), padded with 0.

    >>> tokens, lengths, targets = pad_batch([([5, 6, 7], 1), ([8], 0)])
    >>> tokens.tolist(), lengths.tolist(), targets.tolist()
    ([[5, 6, 7], [8, 0, 0]], [3, 1], [1, 0])
    """
    lengths = torch.tensor([len(example[0]) for example in examples], dtype=torch.long)
    width = max(int(lengths.max()), 1) if len(examples) else 1
    tokens = torch.full((len(examples), width), pad_id, dtype=torch.long)
    for i, example in enumerate(examples):
        tokens[i, : len(example[0])] = torch.as_tensor(example[0], dtype=torch.long)
    labels = [example[1] for example in examples]
    if labels and isinstance(labels[0], Sequence):
        targets = torch.full((len(examples), width), -100, dtype=torch.long)
        for i, label in enumerate(labels):
            targets[i, : len(label)] = torch.as_tensor(label, dtype=torch.long)
    else:
        targets = torch.as_tensor(labels, dtype=torch.long)
    if not examples or len(examples[0]) < 3:
        return tokens, lengths, targets
    letters = max((len(w) for example in examples for w in example[2]), default=1)
    chars = torch.zeros((len(examples), width, max(letters, 1)), dtype=torch.long)
    for i, example in enumerate(examples):
        for j, word in enumerate(example[2]):
            chars[i, j, : len(word)] = torch.as_tensor(word, dtype=torch.long)
    return tokens, lengths, targets, chars
