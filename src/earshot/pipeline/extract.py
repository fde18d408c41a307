"""From recordings to log-mel frames: the feature store that training and cross-validation read.

Long recordings are cut into windows of the frames ``detect`` scores (:func:`long_recording_windows`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from earshot.errors import EarshotError, ParameterError
from earshot.features.cache import feature_reader
from earshot.features.config import FeatureConfig
from earshot.features.store import FrameStore
from earshot.io.audio import info

__all__ = ["Progress", "GROUP_BYS", "LONG_RECORDING_S", "extract_store", "long_recording_windows"]

log = logging.getLogger(__name__)

#: ``progress(stage, done, total)``; ``stage`` is a short description of the work.
Progress = Callable[[str, int, int], None]


GROUP_BYS = ("id", "machine", "none")


def _n_time(n_samples: int, config: FeatureConfig) -> int:
    return 1 + n_samples // config.hop_length


def _expected_samples(path: Path, sr: int) -> int:
    """Samples after decoding and resampling, from the header (resample_poly's length rule)."""
    meta = info(path)
    if meta.sr == sr:
        return int(meta.frames)
    g = math.gcd(int(sr), int(meta.sr))
    up, down = sr // g, meta.sr // g
    return int(math.ceil(meta.frames * up / down))


def extract_store(
    paths: Sequence[str | os.PathLike],
    config: FeatureConfig,
    *,
    channel: int | None = None,
    min_frames: int = 1,
    progress: Progress | None = None,
    cache=None,
    executor=None,
) -> FrameStore:
    """Decode and turn audio files into log-mel frames held in one buffer.

    The buffer is allocated once from the file headers, so training on thousands of clips
    holds each frame once.

    Parameters
    ----------
    paths : sequence of path-like or (path, start, stop)
        Whole files, or sample ranges ``[start, stop)`` of a file at ``config.sr`` (windows of a
        long recording, :func:`long_recording_windows`; a range takes the frames centred in it).
    config : FeatureConfig
    channel : int or None
        Channel to read (None: mean of all channels).
    min_frames : int
        Fewest frames a clip must give (the model's context); a shorter clip is an error
        naming the file.
    cache : path-like, FeatureCache, False or None
        On-disk feature cache (:mod:`earshot.features.cache`; None: ``$EARSHOT_CACHE`` if set).
    executor : str, Executor or None
        Where files are decoded (:mod:`earshot._util.executors`; None: ``$EARSHOT_EXECUTOR``, else
        in this process); parallel workers write features to disk, read back here in order.

    Returns
    -------
    FrameStore
        ``len(paths)`` clips of shape ``(n_mels, n_time_i)``.
    """
    # deferred: earshot.timeline (tens of ms) is not needed on the `earshot score` start-up path
    from earshot.timeline.windows import frame_span

    items = [(Path(p[0]), p[1], p[2]) if isinstance(p, tuple) else (Path(p), None, None) for p in paths]
    lengths = [_n_time(_expected_samples(p, config.sr), config) if a is None else int(np.diff(frame_span(a, b, config.hop_length))[0])
               for p, a, b in items]
    store = FrameStore.allocate(lengths, config.n_mels)
    file_log_mel = feature_reader(items, config, channel=channel, min_frames=min_frames, cache=cache,
                                  executor=executor, progress=progress)
    whole: tuple[Path | None, np.ndarray | None] = (None, None)  # a long recording's log-mel, for its windows
    for i, (path, start, stop) in enumerate(items):
        if start is None:
            logmel = file_log_mel(path, config, channel=channel, min_frames=min_frames)
        else:
            if whole[0] != path:
                whole = (path, file_log_mel(path, config, channel=channel))
            logmel = whole[1][:, slice(*frame_span(start, stop, config.hop_length))]
            if lengths[i] < min_frames:
                raise ParameterError(f"window_s: {path} is cut into windows of {lengths[i]} frames; the model needs {min_frames}")
        if logmel.shape[1] != lengths[i]:
            raise EarshotError(f"{path}: decoded length differs from its header ({logmel.shape[1]} vs {lengths[i]} frames)")
        store.frames[store.offsets[i] : store.offsets[i + 1]] = logmel.T
        if progress is not None:
            progress("features", i + 1, len(paths))
    return store


# ---------------------------------------------------------------------- long recordings
#: Training recordings longer than this many seconds are cut into windows (train on one long
#: normal recording, the AMULET workflow).
LONG_RECORDING_S = 30.0


def long_recording_windows(paths: Sequence[str | os.PathLike], config: FeatureConfig, *, window_s: float = 1.0,
                           long_s: float = LONG_RECORDING_S) -> list[tuple[Path, int | None, int | None]]:
    """Training items: ``(path, None, None)`` for a clip; for a recording longer than ``long_s``
    seconds, ``(path, start, stop)`` for each of its consecutive ``window_s`` windows (samples at
    ``config.sr``; a last partial window is dropped).

    These are the windows ``earshot detect --window-s`` scores (the same frames), so a model
    trained on a long recording has its threshold calibrated on windows like the timeline's.
    A group of one file (one recording, AMULET's way) is cut when longer than two windows:
    one clip cannot calibrate a threshold.
    """
    if not (isinstance(window_s, (int, float)) and math.isfinite(window_s) and window_s > 0):
        raise ParameterError(f"window_s: expected a positive number of seconds, got {window_s!r}")
    width = int(round(window_s * config.sr))
    if len(paths) == 1:
        long_s = min(long_s, 2 * window_s)
    items: list[tuple[Path, int | None, int | None]] = []
    for p in paths:
        n = _expected_samples(Path(p), config.sr)
        if n <= long_s * config.sr or n < width:
            items.append((Path(p), None, None))
        else:
            items.extend((Path(p), a, a + width) for a in range(0, n - width + 1, width))
    return items


