"""Vocabulary, token-stream chunks for truncated BPTT, bucketing and padding."""

import json

import pytest
import torch

from rnnkit.data.batches import BucketBatchSampler, StreamChunks, pad_batch
from rnnkit.data.vocabulary import PAD, SPECIALS, UNK, Vocabulary


def test_vocabulary_orders_by_frequency_and_maps_unknowns():
    vocab = Vocabulary.build([["b", "a", "a", "c", "c", "c"]], min_freq=2)
    assert vocab.tokens == [*SPECIALS, "c", "a"]
    assert vocab.encode(["a", "b", "zzz"]) == [5, vocab.unk_id, vocab.unk_id]
    assert vocab.pad_id == 0 and vocab.tokens[0] == PAD and vocab.tokens[1] == UNK


def test_vocabulary_max_size_counts_the_specials():
    vocab = Vocabulary.build([list("aaabbc")], max_size=6)
    assert vocab.tokens == [*SPECIALS, "a", "b"]


def test_vocabulary_json_round_trip():
    vocab = Vocabulary.build([list("hello world")])
    assert Vocabulary.from_json(json.loads(json.dumps(vocab.to_json()))).tokens == vocab.tokens


def test_vocabulary_rejects_bad_json():
    with pytest.raises(ValueError, match="expected the special tokens"):
        Vocabulary(["a", "b"])
    with pytest.raises(ValueError, match=r"expected \{'tokens'"):
        Vocabulary.from_json({"tokens": "abc"})


def test_stream_chunks_continue_row_by_row():
    ids = torch.arange(103)
    chunks = StreamChunks(ids, batch_size=4, bptt=7)
    streams = ids[:100].view(4, 25)
    xs = torch.cat([chunks[k][0] for k in range(len(chunks))], dim=1)
    ys = torch.cat([chunks[k][1] for k in range(len(chunks))], dim=1)
    assert torch.equal(xs, streams[:, :-1])  # every input once, in order
    assert torch.equal(ys, streams[:, 1:])  # targets are the next tokens
    assert chunks[len(chunks) - 1][0].shape == (4, 24 - 7 * 3)


def test_stream_chunks_split_rows_between_ranks():
    ids = torch.arange(80)
    whole = StreamChunks(ids, batch_size=4, bptt=5)
    parts = [StreamChunks(ids, batch_size=4, bptt=5, rank=r, world_size=2) for r in range(2)]
    for k in range(len(whole)):
        assert torch.equal(torch.cat([p[k][0] for p in parts]), whole[k][0])
    with pytest.raises(ValueError, match="expected a multiple of the number of processes"):
        StreamChunks(ids, batch_size=3, bptt=5, rank=0, world_size=2)
    with pytest.raises(ValueError, match="too short"):
        StreamChunks(torch.arange(5), batch_size=4, bptt=5)


def test_bucket_sampler_covers_everything_and_groups_lengths():
    lengths = torch.randint(1, 200, (1000,)).tolist()
    sampler = BucketBatchSampler(lengths, batch_size=10, seed=3)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    shuffled = BucketBatchSampler(lengths, batch_size=10, seed=3, bucket=False)
    spread_unbucketed = sum(
        max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in shuffled
    )
    assert spread < spread_unbucketed / 5


def test_bucket_sampler_epochs_differ_and_repeat():
    sampler = BucketBatchSampler(list(range(1, 101)), batch_size=10, seed=0)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    sampler.set_epoch(0)
    assert list(sampler) == first and second != first


def test_bucket_sampler_ranks_take_slices_of_the_same_global_batch():
    lengths = list(range(1, 41))
    whole = list(BucketBatchSampler(lengths, batch_size=8, drop_last=True, seed=1))
    parts = [
        list(
            BucketBatchSampler(lengths, batch_size=8, drop_last=True, seed=1, rank=r, world_size=2)
        )
        for r in range(2)
    ]
    assert [a + b for a, b in zip(*parts, strict=True)] == whole


def test_pad_batch_per_token_targets():
    tokens, lengths, targets = pad_batch([([1, 2, 3], [0, 1, 0]), ([4], [1])], pad_id=0)
    assert tokens.tolist() == [[1, 2, 3], [4, 0, 0]]
    assert lengths.tolist() == [3, 1]
    assert targets.tolist() == [[0, 1, 0], [1, -100, -100]]
