"""Timeline windows: which samples, log-mel frames and model windows make up timeline window
``k`` (:class:`WindowGeometry`, ``[k * hop, k * hop + window)`` in samples), one scored window
(:class:`WindowScore`), and the CSV columns of timelines and events.

How a window is scored: the bundle's graph gives one error per model window (a context window
of ``n_frames`` frames for the dense autoencoder, a sequence for the LSTM autoencoder) over the
continuous log-mel of the recording; timeline window ``k``'s score is the bundle's aggregate
(``mean`` by default) of the errors of the model windows lying wholly inside its frames, i.e.
the window is scored exactly as a clip of ``window_s`` seconds is scored in training, without
the clip-edge padding. Training on long recordings cuts them into windows of the same frames
(:func:`frame_span`), so a model trained the AMULET way is calibrated on the very windows
``detect`` scores.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from earshot.errors import ParameterError

__all__ = [
    "DEFAULT_WINDOW_S",
    "EVENT_COLUMNS",
    "TIMELINE_COLUMNS",
    "WindowGeometry",
    "WindowScore",
    "frame_span",
    "model_window_hop",
]

log = logging.getLogger(__name__)


TIMELINE_COLUMNS = ("start_s", "end_s", "score", "threshold", "is_anomalous")
EVENT_COLUMNS = ("start_s", "end_s", "peak_score", "mean_score")
#: Window length (s) when none is asked for and the model can score one this short.
DEFAULT_WINDOW_S = 1.0


def frame_span(start: int, stop: int, hop_length: int) -> tuple[int, int]:
    """Log-mel frames whose centres lie in samples ``[start, stop)``: frames ``[t0, t1)``.

    Frame ``t`` is centred on sample ``t * hop_length`` (librosa's ``center=True``).
    """
    return -(-int(start) // hop_length), -(-int(stop) // hop_length)


def model_window_hop(bundle) -> int:
    """Frames between the starts of a bundle's model windows: ``fitted.windows.hop_frames``,
    else the ``window_hop`` or ``hop_frames`` parameter, else 1 (a window at every frame)."""
    m = bundle.manifest
    declared = (m.get("fitted", {}).get("windows") or {}).get("hop_frames")
    params = m.get("model", {}).get("params", {})
    for value in (declared, params.get("window_hop"), params.get("hop_frames")):
        if value is not None:
            return int(value)
    return 1


@dataclass(frozen=True)
class WindowGeometry:
    """Where timeline window ``k`` lies in samples, log-mel frames and model windows.

    Parameters
    ----------
    sr, n_fft, hop_length : int
        The bundle's feature parameters.
    window_samples, hop_samples : int
        Timeline window length and hop in samples.
    model_frames : int
        Frames per model window (the bundle's ``min_frames``).
    model_hop : int
        Frames between consecutive model windows (1 for context windows; ``window_hop`` for
        the LSTM autoencoder).
    """

    sr: int
    n_fft: int
    hop_length: int
    window_samples: int
    hop_samples: int
    model_frames: int
    model_hop: int = 1

    @classmethod
    def for_bundle(cls, bundle, *, window_s: float | None = None, hop_s: float = 0.1) -> "WindowGeometry":
        """The geometry of ``bundle`` (a loaded :class:`~earshot.bundle.Bundle`) for these windows.

        ``window_s=None`` takes 1 s, or the shortest window the model can always score when
        that is longer (rounded up to 0.1 s; e.g. a CNN whose patches span 32 frames).
        """
        if getattr(bundle, "input", "logmel") == "waveform":  # a waveform-input encoder: no log-mel windows
            bundle.refuse_waveform_input("a timeline (detect, listen)")
        f = bundle.features
        if window_s is None:
            need = (int(bundle.min_frames) + model_window_hop(bundle) - 1) * f.hop_length / f.sr
            window_s = max(DEFAULT_WINDOW_S, math.ceil(round(need * 10, 6)) / 10)
        for name, value in (("window_s", window_s), ("hop_s", hop_s)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ParameterError(f"{name}: expected a positive number of seconds, got {value!r}")
        geo = cls(sr=f.sr, n_fft=f.n_fft, hop_length=f.hop_length,
                  window_samples=int(round(window_s * f.sr)), hop_samples=max(1, int(round(hop_s * f.sr))),
                  model_frames=int(bundle.min_frames), model_hop=model_window_hop(bundle))
        geo.check()
        return geo

    def check(self) -> None:
        """Every window must hold at least one model window, wherever it starts."""
        need = self.model_frames + self.model_hop - 1
        have = self.window_samples // self.hop_length  # frames in the worst alignment
        if have < need:
            shortest = need * self.hop_length / self.sr
            raise ParameterError(
                f"window_s: {self.window_samples / self.sr:g} s is too short for this model "
                f"(its windows span {self.model_frames} frames every {self.model_hop}; use at least {shortest:.2f} s)")

    @property
    def window_s(self) -> float:
        return self.window_samples / self.sr

    @property
    def hop_s(self) -> float:
        return self.hop_samples / self.sr

    def n_windows(self, n_samples: int) -> int:
        """Whole windows in a recording of ``n_samples`` samples."""
        if n_samples < self.window_samples:
            return 0
        return (n_samples - self.window_samples) // self.hop_samples + 1

    def bounds_s(self, k: int) -> tuple[float, float]:
        """Start and end of window ``k`` in seconds."""
        start = k * self.hop_samples
        return start / self.sr, (start + self.window_samples) / self.sr

    def frames(self, k: int) -> tuple[int, int]:
        """Frames ``[t0, t1)`` of window ``k``."""
        start = k * self.hop_samples
        return frame_span(start, start + self.window_samples, self.hop_length)

    def model_windows(self, k: int) -> tuple[int, int]:
        """Model windows ``[i0, i1)`` lying wholly inside window ``k``'s frames."""
        t0, t1 = self.frames(k)
        i0 = -(-t0 // self.model_hop)
        i1 = (t1 - self.model_frames) // self.model_hop + 1
        return i0, i1

    def n_frames_total(self, n_samples: int) -> int:
        """Log-mel frames of a whole recording (as :func:`earshot.features.log_mel`)."""
        return 1 + (n_samples + 2 * (self.n_fft // 2) - self.n_fft) // self.hop_length


@dataclass(frozen=True)
class WindowScore:
    """One timeline row."""

    index: int
    start_s: float
    end_s: float
    score: float

    @property
    def centre_s(self) -> float:
        return 0.5 * (self.start_s + self.end_s)


