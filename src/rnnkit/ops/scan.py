"""A scan for the linear recurrence h_t = a_t ⊙ h_{t-1} + b_t (minGRU/minLSTM, masked steps).

Unrolled, h_t = (∏_{s≤t} a_s) h_0 + Σ_{s≤t} (∏_{s<k≤t} a_k) b_s. Within a chunk of C steps this
is one matrix product with the lower-triangular decay matrix L[t, s] = exp(A_t - A_s), where
A = cumsum(log a): every exponent is ≤ 0, so nothing overflows and no division by a vanishing
product is needed (the weakness of cumprod- and log-space scans). Chunks are chained through
their last state, so the work is O(T·C) and the sequential depth T/C.
"""

from __future__ import annotations

import torch
from torch import Tensor


def linear_scan(log_a: Tensor, b: Tensor, h0: Tensor, chunk_size: int = 32) -> Tensor:
    """Solve h_t = exp(log_a_t) ⊙ h_{t-1} + b_t for all t.

    log_a, b: (T, B, H); h0: (B, H). Returns h: (T, B, H).
    """
    num_steps = log_a.shape[0]
    causal = torch.ones(chunk_size, chunk_size, dtype=torch.bool, device=log_a.device).tril()
    chunks = []
    h = h0
    for start in range(0, num_steps, chunk_size):
        la, bb = log_a[start : start + chunk_size], b[start : start + chunk_size]  # (C, B, H)
        size = la.shape[0]
        A = la.cumsum(0)  # (C, B, H): log ∏_{s≤t} a_s within the chunk
        exponent = A.unsqueeze(1) - A.unsqueeze(0)  # (C_t, C_s, B, H)
        mask = causal[:size, :size].reshape(size, size, 1, 1)
        decay = torch.where(
            mask, exponent, torch.full((), -torch.inf, dtype=A.dtype, device=A.device)
        ).exp()
        h_chunk = torch.einsum("tsbh,sbh->tbh", decay, bb) + A.exp() * h
        chunks.append(h_chunk)
        h = h_chunk[-1]
    return torch.cat(chunks, 0)
