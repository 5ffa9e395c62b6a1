"""Smoke test of benchmarks/ab_inference_keep.py: its four kernel forwards run at a small size
and give the same outputs with and without keeping what backward reads. (No timing is
asserted.)"""

from __future__ import annotations

import torch
from benchmarks import ab_inference_keep


def test_each_kernel_forward_is_the_same_with_and_without_keeping():
    with torch.no_grad():
        for name, forward in ab_inference_keep.forwards(B=3, T=5, I=4, H=24).items():
            kept, dropped = forward(True), forward(False)
            assert kept[0].shape == (5, 3, 24), name
            for a, b in zip(kept, dropped, strict=True):
                assert torch.equal(a, b), name
