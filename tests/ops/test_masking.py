"""The masking helpers against straightforward per-sequence Python."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.ops.masking import reverse_valid_prefix, valid_mask


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=5))
def test_reverse_valid_prefix_reverses_only_the_prefix_and_is_an_involution(lengths):
    T = 6
    x = torch.arange(T * len(lengths)).reshape(T, len(lengths), 1).float()
    lengths_t = torch.tensor(lengths)
    got = reverse_valid_prefix(x, lengths_t)
    for b, n in enumerate(lengths):
        want = list(reversed(x[:n, b, 0].tolist())) + x[n:, b, 0].tolist()
        assert got[:, b, 0].tolist() == want
    assert torch.equal(reverse_valid_prefix(got, lengths_t), x)


def test_valid_mask_marks_steps_before_each_length():
    mask = valid_mask(torch.tensor([0, 2, 3]), 3)
    assert mask.T.tolist() == [[False] * 3, [True, True, False], [True] * 3]
