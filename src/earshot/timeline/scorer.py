"""Streaming scoring: :class:`StreamScorer` runs the bundle's ONNX scoring graph over new
frames only and turns the model-window errors into timeline windows
(:class:`earshot.timeline.WindowGeometry`).

Memory is bounded by the timeline window and the model's context. Imports onnxruntime only
when a scorer is built.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from earshot.detection.aggregate import aggregate
from earshot.errors import EarshotError
from earshot.timeline.frames import FrameStream
from earshot.timeline.windows import WindowGeometry, WindowScore

__all__ = ["StreamScorer"]


class StreamScorer:
    """Samples in, scored timeline windows out.

    Parameters
    ----------
    bundle : earshot.bundle.Bundle
        The model (features, scoring graph, aggregate).
    geometry : WindowGeometry
        Timeline window and hop (:meth:`WindowGeometry.for_bundle`).
    threads : int
        onnxruntime intra-op threads (1 for a monitor that must leave the machine alone; 0 for
        onnxruntime's default).
    on_frames : callable, optional
        Called with every batch of new log-mel frames ``(n_new, n_mels)`` (for pictures).

    Notes
    -----
    Window ``k`` (samples ``[k * hop, k * hop + window)``) is emitted once its last model
    window is scored, i.e. ``n_fft - n_fft // 2`` samples after the window's end, and only if
    the stream holds the whole window. Its score is the bundle's aggregate of the errors of the
    model windows inside its frames (see :mod:`earshot.timeline`).
    """

    def __init__(self, bundle, geometry: WindowGeometry, *, threads: int = 1,
                 on_frames: Callable[[np.ndarray], None] | None = None):
        self.bundle = bundle
        self.geometry = geometry
        self.aggregate = bundle.aggregate
        self._session = bundle.new_session(threads)  # 0: onnxruntime's default, all cores
        self._frames = FrameStream(bundle.features)
        self._on_frames = on_frames
        n_mels = bundle.features.n_mels
        self._fbuf = np.empty((0, n_mels), np.float32)  # frames from _fbuf_start on
        self._fbuf_start = 0
        self._next_model = 0  # next model window to score
        self._errors = np.empty(0, np.float64)  # model-window errors from _err_start on
        self._err_start = 0
        self.next_window = 0  # next timeline window
        self.onnx_seconds = 0.0

    @property
    def n_samples(self) -> int:
        """Samples pushed so far."""
        return self._frames.n_samples

    def push(self, samples: np.ndarray) -> list[WindowScore]:
        """Add samples (mono, float32, at the bundle's rate); return the windows now complete."""
        return self._advance(self._frames.push(samples))

    def finish(self) -> list[WindowScore]:
        """End of the stream: score the last frames (zero-padded) and the last whole windows."""
        return self._advance(self._frames.flush())

    def _advance(self, new: np.ndarray) -> list[WindowScore]:
        g = self.geometry
        if len(new):
            if self._on_frames is not None:
                self._on_frames(new)
            self._fbuf = np.concatenate([self._fbuf, new]) if len(self._fbuf) else new
        n_frames = self._fbuf_start + len(self._fbuf)
        if n_frames >= g.model_frames:
            last = (n_frames - g.model_frames) // g.model_hop
            if last >= self._next_model:
                a = self._next_model * g.model_hop - self._fbuf_start
                b = last * g.model_hop + g.model_frames - self._fbuf_start
                x = np.ascontiguousarray(self._fbuf[a:b][None], dtype=np.float32)
                started = time.perf_counter()
                (errors,) = self._session.run(None, {"logmel": x})
                self.onnx_seconds += time.perf_counter() - started
                if errors.shape != (1, last + 1 - self._next_model):
                    raise EarshotError(
                        f"{self.bundle.path}: the scoring graph gave {errors.shape[-1]} windows for {x.shape[1]} frames, "
                        f"expected {last + 1 - self._next_model} (windows of {g.model_frames} frames every "
                        f"{g.model_hop}); this model cannot be streamed")
                self._errors = np.concatenate([self._errors, errors[0].astype(np.float64)])
                self._next_model = last + 1
            drop = self._next_model * g.model_hop - self._fbuf_start
            if drop > 0:
                self._fbuf = self._fbuf[drop:]
                self._fbuf_start += drop
        out: list[WindowScore] = []
        while True:
            k = self.next_window
            if k * g.hop_samples + g.window_samples > self.n_samples:
                break
            i0, i1 = g.model_windows(k)
            if i1 > self._next_model:
                break
            errs = self._errors[i0 - self._err_start : i1 - self._err_start]
            start_s, end_s = g.bounds_s(k)
            out.append(WindowScore(k, start_s, end_s, aggregate(errs, self.aggregate)))
            self.next_window = k + 1
            keep_from = g.model_windows(k + 1)[0]
            if keep_from > self._err_start:
                self._errors = self._errors[keep_from - self._err_start :]
                self._err_start = keep_from
        return out
