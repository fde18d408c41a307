"""Shared pytest fixtures: the real-data folder beside the repo, a seeded rng, a wav writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real"


@pytest.fixture
def shared_data() -> Path:
    """Path of ``../shared/data/real`` (real MIMII/DCASE/AMULET clips); skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared real data not found at {SHARED_DATA}")
    return SHARED_DATA.resolve()


@pytest.fixture
def rng() -> np.random.Generator:
    """A numpy Generator seeded 0 (fresh for every test)."""
    return np.random.default_rng(0)


@pytest.fixture
def write_wav() -> Callable[..., Path]:
    """``write_wav(path, y, sr, subtype="PCM_16") -> Path``: write a test clip with soundfile.

    ``y`` has shape ``(n_samples,)`` or ``(n_samples, n_channels)``; parent folders are made.
    """

    def _write(path: str | Path, y: np.ndarray, sr: int, subtype: str = "PCM_16") -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, np.asarray(y), sr, subtype=subtype)
        return p

    return _write


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for a module that trains (skips the module without torch).

    Small networks train fastest so, and on a shared 2-core machine OpenMP threads fight.
    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
