"""Shared pytest fixtures: the real-data folder beside the repo, a seeded rng, a wav writer,
one torch thread, a fake sound card, the service tests' databases (``service_db``: SQLite and a
throw-away PostgreSQL started once per session, see ``helpers/postgres.py``).

Plain helpers (signals, spectra, small data sets and models, the fake ``sounddevice``) live in
the ``helpers`` package beside this file; pytest puts ``tests/`` on ``sys.path`` (no
``__init__.py`` here, the default ``prepend`` import mode), so test modules import them as
``from helpers.signals import hum``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers.fake_sounddevice import FakeDevice, FakeSoundDevice, install
from helpers.postgres import postgres_url, service_db  # noqa: F401  (fixtures: a throw-away PostgreSQL)
from helpers.torch_threads import single_torch_thread

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
    pytest.importorskip("torch")
    with single_torch_thread():
        yield


@pytest.fixture
def fake_sd(monkeypatch) -> Callable[..., FakeSoundDevice]:
    """``fake_sd(*devices, default_input=0)`` puts a fake sounddevice with these
    :class:`~helpers.fake_sounddevice.FakeDevice` s in ``sys.modules`` for the test."""

    def _install(*devices: FakeDevice, default_input: int = 0) -> FakeSoundDevice:
        return install(monkeypatch, *devices, default_input=default_input)

    return _install


def pytest_terminal_summary(terminalreporter) -> None:
    """One summary line: how many service tests ran against the throw-away PostgreSQL server."""
    counts = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        reports = terminalreporter.stats.get(outcome, [])
        n = sum(1 for r in reports if "postgresql" in getattr(r, "nodeid", "") and getattr(r, "when", "call") in
                ("call", "setup") and (outcome != "passed" or r.when == "call"))
        if n:
            counts[outcome] = n
    if counts:
        terminalreporter.write_line("PostgreSQL: " + ", ".join(f"{n} {k}" for k, n in counts.items())
                                    + " (service tests run against a throw-away server; the same tests ran on SQLite)")
