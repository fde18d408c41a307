"""Small folders of synthetic clips in the MIMII layout (``<machine>/<id>/<label>/00000000.wav``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from helpers.signals import SR, hum


def write_hum_clips(folder: Path, n: int, rng: np.random.Generator, *, fault: bool | str = False, start: int = 0,
                    seconds: float = 2.0, sr: int = SR) -> None:
    """Write ``n`` :func:`~helpers.signals.hum` clips (16-bit) named ``{start:08d}.wav`` onwards."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        sf.write(folder / f"{i:08d}.wav", hum(rng, seconds, sr, fault=fault), sr, subtype="PCM_16")


def write_hum_dataset(root: Path, rng: np.random.Generator, *, n_normal: int, n_abnormal: int,
                      ids: tuple[str, ...] = ("id_00",), machine: str = "fan", fault: bool | str = True,
                      seconds: float = 2.0) -> Path:
    """For each id in turn, ``n_normal`` plain hums then ``n_abnormal`` with ``fault``; returns ``root``."""
    for mid in ids:
        write_hum_clips(root / machine / mid / "normal", n_normal, rng, seconds=seconds)
        write_hum_clips(root / machine / mid / "abnormal", n_abnormal, rng, fault=fault, seconds=seconds)
    return root
