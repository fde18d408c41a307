"""A training job's progress: the callback :func:`earshot.pipeline.train` calls, turned into
the job's ``progress`` (0-1) and ``stage`` columns, written at most every 0.2 s."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["training_progress"]

#: Seconds between two progress writes (the last step of a stage is always written).
_EVERY_S = 0.2


def training_progress(update: Callable[..., None], *, end: float, prefix: str = "") -> Callable[[str, int, int], None]:
    """A ``progress(stage, done, total)`` callback for :func:`earshot.pipeline.train`.

    Parameters
    ----------
    update : callable
        ``update(progress=..., stage=...)``: writes the job's columns.
    end : float
        The job's progress when training ends (features take 0.05-0.25, training 0.25-``end``;
        what comes after training has the rest).
    prefix : str
        Put before the stage's name (``"supervised "``: ``"supervised training 3/30"``).
    """
    stages = {"features": (0.05, 0.25), "training": (0.25, end)}
    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        key = "training" if stage.endswith("training") else "features"
        lo, hi = stages[key]
        now = time.monotonic()
        if now - last[0] < _EVERY_S and done < total:
            return
        last[0] = now
        update(progress=lo + (hi - lo) * done / max(total, 1), stage=f"{prefix}{key} {done}/{total}")

    return progress
