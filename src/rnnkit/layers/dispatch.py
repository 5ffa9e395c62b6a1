"""Which implementation a layer runs: torch's fused kernel where it applies, else rnnkit's loop.

``reference_implementation()`` forces rnnkit's own time loop (and the step loop instead of the
scan for minGRU/minLSTM) everywhere: the slow, obvious path that the fast ones are tested
against.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_FORCE_REFERENCE: ContextVar[bool] = ContextVar("rnnkit_force_reference", default=False)


@contextmanager
def reference_implementation() -> Iterator[None]:
    """Run every rnnkit layer through its reference Python time loop inside this block.

    >>> import torch, rnnkit
    >>> lstm = rnnkit.LSTM(3, 4)
    >>> x = torch.randn(5, 2, 3)
    >>> with rnnkit.reference_implementation():
    ...     slow, _ = lstm(x)
    >>> torch.allclose(slow, lstm(x)[0], atol=1e-6)
    True
    """
    token = _FORCE_REFERENCE.set(True)
    try:
        yield
    finally:
        _FORCE_REFERENCE.reset(token)


def reference_forced() -> bool:
    return _FORCE_REFERENCE.get()
