"""``earshot detect``: a whole recording through the streaming scorer, with events, a verdict
and a picture.

:func:`detect_file` runs :func:`earshot.timeline.scan_file` with the event tracker, the verdict
and a picture-sized spectrogram, and returns a :class:`DetectResult` that can save itself (CSV,
JSON, PNG; matplotlib only for the picture).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from earshot._util.fs import atomic_file
from earshot.errors import ParameterError
from earshot.io.audio import info
from earshot.io.channels import refuse_fused_stream
from earshot.plots.exploration import mel_band_centres
from earshot.plots.timeline import timeline_figure
from earshot.timeline import (
    Event,
    EventSettings,
    SpectrogramSink,
    WindowGeometry,
    WindowScore,
    scan_file,
    verdict,
    write_events_csv,
    write_timeline_csv,
)

__all__ = ["DetectResult", "detect_file"]

log = logging.getLogger(__name__)


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
    if hasattr(model, "bundle_for"):
        group, bundle = model.bundle_for(path, group)
    else:
        bundle = model
    refuse_fused_stream(bundle.channel, "detect")
    bundle.check_streams("detect")
    geometry = WindowGeometry.for_bundle(bundle, window_s=window_s, hop_s=hop_s)
    tracker, settings = (events or EventSettings()).tracker(bundle, geometry)
    meta = info(path)  # an unreadable file is one error line, before any advice about it
    _warn_calibration(bundle, geometry)
    n = int(round(meta.frames * bundle.features.sr / meta.sr))
    sink = None
    if spectrogram:
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
