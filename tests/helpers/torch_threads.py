"""One torch intra-op thread while small networks train."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def single_torch_thread():
    """Train with one torch thread: on a shared 2-core machine OpenMP threads fight (4x slower)."""
    import torch  # deferred: helpers that do not train must import without torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
