"""A sequence of log-mel clips held in one contiguous frame buffer.

Training on thousands of clips must not hold each clip twice (once per clip, once
concatenated). :class:`FrameStore` keeps every frame of every clip in one C-contiguous
``(n_total_frames, n_mels)`` float32 array with clip offsets, and behaves like a sequence
of ``(n_mels, n_time)`` clips (transposed views, no copy), so any detector can take it
wherever it takes a list of log-mel clips.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from earshot.errors import ParameterError

__all__ = ["FrameStore"]


class FrameStore(Sequence):
    """Clips of log-mel frames in one buffer.

    Parameters
    ----------
    frames : np.ndarray
        Shape ``(n_total_frames, n_mels)``, float32, C-contiguous.
    offsets : np.ndarray
        Shape ``(n_clips + 1,)``, int64, increasing; clip ``i`` is
        ``frames[offsets[i]:offsets[i + 1]]``.
    """

    def __init__(self, frames: np.ndarray, offsets: np.ndarray):
        frames = np.ascontiguousarray(frames, dtype=np.float32)
        offsets = np.asarray(offsets, dtype=np.int64)
        if frames.ndim != 2:
            raise ParameterError(f"frames: expected shape (n_total_frames, n_mels), got {frames.shape}")
        if offsets.ndim != 1 or offsets.size < 1 or offsets[0] != 0 or offsets[-1] != len(frames):
            raise ParameterError("offsets: expected 0 first and len(frames) last")
        if np.any(np.diff(offsets) < 0):
            raise ParameterError("offsets: expected a non-decreasing sequence")
        self.frames = frames
        self.offsets = offsets

    @classmethod
    def from_clips(cls, clips: Iterable[np.ndarray]) -> "FrameStore":
        """Build from ``(n_mels, n_time)`` clips (one copy into the buffer)."""
        clips = list(clips)
        if not clips:
            raise ParameterError("clips: expected at least one clip, got none")
        lengths = [c.shape[1] for c in clips]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        frames = np.empty((int(offsets[-1]), clips[0].shape[0]), dtype=np.float32)
        for c, start, stop in zip(clips, offsets[:-1], offsets[1:]):
            frames[start:stop] = c.T
        return cls(frames, offsets)

    @classmethod
    def allocate(cls, lengths: Sequence[int], n_mels: int) -> "FrameStore":
        """An uninitialised store for clips of known lengths, to be filled in place."""
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return cls(np.empty((int(offsets[-1]), n_mels), dtype=np.float32), offsets)

    @property
    def n_mels(self) -> int:
        return int(self.frames.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        """Frames per clip, shape ``(n_clips,)``."""
        return np.diff(self.offsets)

    def clip_frames(self, i: int) -> np.ndarray:
        """Clip ``i`` as ``(n_time, n_mels)`` (a view)."""
        return self.frames[self.offsets[i] : self.offsets[i + 1]]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        return self.clip_frames(i).T

    def subset(self, indices: Sequence[int]) -> "FrameStore":
        """A new store with the given clips (copied)."""
        return FrameStore.from_clips([self[i] for i in indices]) if len(indices) else self._empty()

    def _empty(self) -> "FrameStore":
        return FrameStore(np.empty((0, self.n_mels), np.float32), np.zeros(1, np.int64))
