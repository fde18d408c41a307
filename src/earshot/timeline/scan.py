"""A whole recording through the streaming scorer (what ``earshot detect`` scores).

:func:`scan_file` pushes a file through a :class:`~earshot.timeline.scorer.StreamScorer` in large
blocks (flat memory however long the file, when it is at the model's rate);
:func:`earshot.pipeline.detect.detect_file` adds events, the verdict and the picture.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator

import numpy as np

from earshot.errors import AudioError
from earshot.timeline.scorer import StreamScorer
from earshot.timeline.sources import FileSource
from earshot.timeline.windows import WindowGeometry, WindowScore

__all__ = ["scan_file"]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------- a whole file
def scan_file(path: str | os.PathLike, bundle, geometry: WindowGeometry, *, channel: int | None = None,
              threads: int = 0, block_s: float = 10.0,
              on_frames: Callable[[np.ndarray], None] | None = None) -> Iterator[WindowScore]:
    """Every timeline window of a file, in order (``detect``): the file is pushed through a
    :class:`StreamScorer` in blocks of ``block_s`` seconds, so memory stays flat however long
    it is (when it is at the model's rate).

    Raises
    ------
    AudioError
        Unreadable file, digital silence, or a file shorter than one window.
    """
    source = FileSource(path, sr=bundle.features.sr, channel=channel, blocksize=int(block_s * bundle.features.sr),
                        realtime=False)
    n_expected = int(round(source.meta.frames * bundle.features.sr / source.meta.sr))
    if geometry.n_windows(n_expected) == 0:
        raise AudioError(f"{path}: too short ({source.duration_s:.2f} s) for one {geometry.window_s:g} s window")
    scorer = StreamScorer(bundle, geometry, threads=threads, on_frames=on_frames)
    silent = True
    for block in source.blocks():
        silent = silent and not np.any(block)
        yield from scorer.push(block)
    if silent:
        raise AudioError(f"{path}: every sample is zero (digital silence: a dead or unplugged microphone?)")
    yield from scorer.finish()
