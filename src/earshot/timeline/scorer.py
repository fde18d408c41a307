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
        g = geometry
        # Sized for the first window, a hop and a sound card's block of up to 8192 samples (a larger
        # block grows them once): pushing blocks then copies into them and allocates nothing.
        block = 8192
        self._frames = FrameStream(bundle.features, capacity=g.window_samples + g.hop_samples + 2 * g.n_fft + block)
        self._on_frames = on_frames
        # Frames from _fbuf_start on (_fbuf_len of them) and model-window errors from _err_start
        # on (_err_len).
        frames = -(-(g.window_samples + g.hop_samples + block) // g.hop_length) + g.model_frames + g.model_hop + 2
        self._fbuf = np.empty((frames, bundle.features.n_mels), np.float32)
        self._fbuf_start = self._fbuf_len = 0
        self._errors = np.empty(frames // max(1, g.model_hop) + 2, np.float64)
        self._err_start = self._err_len = 0
        self._next_model = 0  # next model window to score
        self.next_window = 0  # next timeline window
        self.onnx_seconds = 0.0
        self.onnx_calls = 0

    @property
    def n_samples(self) -> int:
        """Samples pushed so far."""
        return self._frames.n_samples

    def push(self, samples: np.ndarray) -> list[WindowScore]:
        """Add samples (mono, float32, at the bundle's rate); return the windows now complete.

        The samples are copied into a preallocated buffer; frames are computed and the model
        runs (once, over every model window the new windows need) only when a timeline window
        has become complete, i.e. once per hop in a stream of blocks shorter than the hop.
        """
        self._frames.append(samples)
        return self._advance()

    def finish(self) -> list[WindowScore]:
        """End of the stream: score the last frames (zero-padded) and the last whole windows."""
        self._frames.close()
        out = self._advance()
        self._take_frames(self._frames.total)  # the frames no window needed (for on_frames' picture)
        return out

    def _last_window(self) -> int:
        """The last timeline window whose samples and frames are all there (-1: none)."""
        g = self.geometry
        k = g.n_windows(self.n_samples) - 1
        ready = self._frames.ready
        while k >= self.next_window and (g.model_windows(k)[1] - 1) * g.model_hop + g.model_frames > ready:
            k -= 1  # (its last model window needs frames not computable yet)
        return k

    def _advance(self) -> list[WindowScore]:
        k_last = self._last_window()
        if k_last < self.next_window:
            return []
        g = self.geometry
        i_stop = g.model_windows(k_last)[1]
        if i_stop > self._next_model:
            self._score(i_stop)
        out: list[WindowScore] = []
        for k in range(self.next_window, k_last + 1):
            i0, i1 = g.model_windows(k)
            errs = self._errors[i0 - self._err_start : i1 - self._err_start]
            start_s, end_s = g.bounds_s(k)
            out.append(WindowScore(k, start_s, end_s, aggregate(errs, self.aggregate)))
        self.next_window = k_last + 1
        keep_from = g.model_windows(self.next_window)[0]
        if keep_from > self._err_start:
            drop = min(keep_from - self._err_start, self._err_len)
            self._errors[: self._err_len - drop] = self._errors[drop : self._err_len]
            self._err_start += drop
            self._err_len -= drop
        return out

    def _take_frames(self, t_stop: int) -> None:
        """Compute frames up to ``t_stop`` into the frame buffer (and hand them to on_frames)."""
        new = self._frames.compute(t_stop)
        if not len(new):
            return
        if self._on_frames is not None:
            self._on_frames(new)
        drop = max(0, min(self._next_model * self.geometry.model_hop - self._fbuf_start, self._fbuf_len))
        keep = self._fbuf_len - drop
        if keep + len(new) > len(self._fbuf):
            grown = np.empty((max(2 * len(self._fbuf), keep + len(new)), self._fbuf.shape[1]), np.float32)
            grown[:keep] = self._fbuf[drop : self._fbuf_len]
            self._fbuf = grown
        elif drop:
            self._fbuf[:keep] = self._fbuf[drop : self._fbuf_len]
        self._fbuf_start += drop
        self._fbuf[keep : keep + len(new)] = new
        self._fbuf_len = keep + len(new)

    def _score(self, i_stop: int) -> None:
        """Run the model once over model windows ``[_next_model, i_stop)``."""
        g = self.geometry
        n = i_stop - self._next_model
        self._take_frames((i_stop - 1) * g.model_hop + g.model_frames)
        a = self._next_model * g.model_hop - self._fbuf_start
        b = (i_stop - 1) * g.model_hop + g.model_frames - self._fbuf_start
        x = self._fbuf[a:b][None]  # a view: rows of a C-contiguous float32 array
        started = time.perf_counter()
        (errors,) = self._session.run(None, {"logmel": x})
        self.onnx_seconds += time.perf_counter() - started
        self.onnx_calls += 1
        if errors.shape != (1, n):
            raise EarshotError(
                f"{self.bundle.path}: the scoring graph gave {errors.shape[-1]} windows for {x.shape[1]} frames, "
                f"expected {n} (windows of {g.model_frames} frames every {g.model_hop}); this model cannot be streamed")
        if self._err_len + n > len(self._errors):
            grown = np.empty(max(2 * len(self._errors), self._err_len + n), np.float64)
            grown[: self._err_len] = self._errors[: self._err_len]
            self._errors = grown
        self._errors[self._err_len : self._err_len + n] = errors[0]
        self._err_len += n
        self._next_model = i_stop
