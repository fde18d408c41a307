"""``earshot detect``: a whole recording through the streaming scorer.

:func:`scan_file` pushes a file through a :class:`~earshot.stream.scorer.StreamScorer` in large
blocks (flat memory however long the file, when it is at the model's rate);
:func:`detect_file` adds the event tracker, the verdict and a picture-sized spectrogram, and
returns a :class:`DetectResult` that can save itself (CSV, JSON, PNG; matplotlib only for
the picture).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from earshot.errors import AudioError, ParameterError
from earshot.stream.scorer import StreamScorer
from earshot.stream.sources import FileSource
from earshot.timeline import Event, EventSettings, WindowGeometry, WindowScore

__all__ = ["scan_file", "DetectResult", "detect_file"]

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


# ---------------------------------------------------------------------- detect: a whole file
@dataclass
class DetectResult:
    """What :func:`detect_file` found in one recording."""

    path: Path
    group: str | None
    duration_s: float
    windows: list[WindowScore]
    events: list[Event]
    verdict: dict[str, Any]
    settings: dict[str, Any]
    spectrogram: np.ndarray | None = None
    seconds_per_column: float | None = None
    mel_hz: np.ndarray | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-safe summary: verdict, reason, settings and events."""
        return {"path": str(self.path), "group": self.group, "duration_s": round(self.duration_s, 3),
                **self.verdict, "settings": self.settings, "events": [e.row() | {"n_windows": e.n_windows}
                                                                      for e in self.events]}

    def save(self, out_dir: str | os.PathLike, *, picture: bool = True,
             truth: list[tuple[float, float]] | None = None) -> dict[str, Path]:
        """Write ``timeline.csv``, ``events.csv``, ``verdict.json`` and (with ``picture``)
        ``timeline.png`` into ``out_dir``; each file appears whole or not at all."""
        import json

        from earshot._fs import atomic_file
        from earshot.timeline import write_events_csv, write_timeline_csv

        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise ParameterError(f"--out {out}: expected a folder, got a file")
        out.mkdir(parents=True, exist_ok=True)
        written = {"timeline": out / "timeline.csv", "events": out / "events.csv", "verdict": out / "verdict.json"}
        write_timeline_csv(written["timeline"], self.windows, self.settings["threshold"])
        write_events_csv(written["events"], self.events)
        with atomic_file(written["verdict"]) as fh:
            json.dump(self.summary(), fh, indent=2)
            fh.write("\n")
        if picture:
            written["picture"] = out / "timeline.png"
            png = self.picture(truth=truth)
            with atomic_file(written["picture"], "wb") as fh:
                fh.write(png)
        return written

    def picture(self, *, truth: list[tuple[float, float]] | None = None) -> bytes:
        """The timeline picture (PNG bytes; needs matplotlib)."""
        from earshot.plots_timeline import timeline_figure

        return timeline_figure(self.windows, self.events, threshold=self.settings["threshold"],
                               release=self.settings["release"], spectrogram=self.spectrogram,
                               seconds_per_column=self.seconds_per_column, mel_hz=self.mel_hz,
                               duration_s=self.duration_s, verdict=self.verdict, truth=truth,
                               title=self.path.name)


def detect_file(model, path: str | os.PathLike, *, group: str | None = None, window_s: float | None = None,
                hop_s: float = 0.1, events: EventSettings | None = None, threads: int = 0,
                spectrogram: bool = True) -> DetectResult:
    """Per-window scores, events and a verdict for one long recording.

    Parameters
    ----------
    model : earshot.bundle.ModelSet or earshot.bundle.Bundle
        With several groups, ``group`` (or the file's path, parsed as in training) picks one.
    path : path-like
        The recording.
    window_s, hop_s : float
        Timeline window length and hop (seconds).
    events : EventSettings, optional
        Threshold, sensitivity, hysteresis, minimum duration, merge gap.
    threads : int
        onnxruntime threads (0: its default).
    spectrogram : bool
        Keep a picture-sized spectrogram (for :meth:`DetectResult.picture`).

    Returns
    -------
    DetectResult
    """
    from earshot.timeline import verdict

    if hasattr(model, "bundle_for"):
        group, bundle = model.bundle_for(path, group)
    else:
        bundle = model
    geometry = WindowGeometry.for_bundle(bundle, window_s=window_s, hop_s=hop_s)
    tracker, settings = (events or EventSettings()).tracker(bundle, geometry)
    from earshot.io.audio import info

    meta = info(path)  # an unreadable file is one error line, before any advice about it
    _warn_calibration(bundle, geometry)
    n = int(round(meta.frames * bundle.features.sr / meta.sr))
    sink = None
    if spectrogram:
        from earshot.plots_timeline import SpectrogramSink

        sink = SpectrogramSink(geometry.n_frames_total(n), bundle.features.n_mels)
    windows: list[WindowScore] = []
    found: list[Event] = []
    for w in scan_file(path, bundle, geometry, channel=bundle.channel, threads=threads,
                       on_frames=sink.add if sink else None):
        windows.append(w)
        found += tracker.update(w)
    found += tracker.finish()
    v = verdict(found, n_windows=len(windows), n_above=tracker.n_above, threshold=settings["threshold"],
                min_duration_s=settings["min_duration_s"], duration_s=n / bundle.features.sr,
                max_event_s=len(windows) * geometry.hop_s)
    result = DetectResult(Path(path), group, n / bundle.features.sr, windows, found, v, settings)
    if sink is not None:
        from earshot.plots import mel_band_centres

        f = bundle.features
        result.spectrogram = sink.image
        result.seconds_per_column = sink.frames_per_column * f.hop_length / f.sr
        result.mel_hz = mel_band_centres(sr=f.sr, n_fft=f.n_fft, n_mels=f.n_mels, fmin=f.fmin, fmax=f.fmax)
    return result


def _warn_calibration(bundle, geometry: WindowGeometry) -> None:
    """Warn when the threshold was fitted on clips much longer than the timeline's windows."""
    clip_s = bundle.manifest.get("training", {}).get("clip_s")
    if clip_s and clip_s > 2.5 * geometry.window_s:
        log.warning("the threshold was fitted on %.3g s clips; %.3g s windows score noisier, so more of them cross it "
                    "(events still need their minimum duration). Training on long recordings cuts them into "
                    "windows of --window-s, which calibrates the threshold on windows like these.",
                    clip_s, geometry.window_s)
