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
