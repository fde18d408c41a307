"""Events along a timeline: windows in, events out, online, and a recording's verdict (numpy only).

- :func:`resolve_threshold`: the bundle's threshold, moved by ``sensitivity`` or replaced;
- :class:`EventTracker`: windows in, events out, online (hysteresis, merge gap, minimum
  duration; :class:`Hysteresis` holds the open/close counting the service's alerts share);
  :func:`find_events` runs it over a whole timeline;
- :func:`verdict`: the file-level verdict and the reason for it;
- :class:`EventSettings`: how ``detect`` and ``listen`` set a tracker up for a bundle.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from earshot._util.fs import atomic_file
from earshot.errors import ParameterError
from earshot.timeline.windows import EVENT_COLUMNS, TIMELINE_COLUMNS, WindowGeometry, WindowScore

__all__ = [
    "WindowGeometry",
    "WindowScore",
    "Event",
    "Hysteresis",
    "EventTracker",
    "EventSettings",
    "find_events",
    "resolve_threshold",
    "normal_level",
    "default_release",
    "event_row",
    "verdict",
    "write_timeline_csv",
    "write_events_csv",
    "TIMELINE_COLUMNS",
    "EVENT_COLUMNS",
]

log = logging.getLogger(__name__)


@dataclass
class Event:
    """A stretch of time judged anomalous.

    ``start_s``/``end_s`` are half a hop before the centre of the event's first window and
    half a hop after the centre of its last one.
    """

    start_s: float
    end_s: float
    peak_score: float
    mean_score: float
    n_windows: int = 0

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def row(self) -> dict[str, float]:
        return {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3),
                "peak_score": self.peak_score, "mean_score": self.mean_score}


def normal_level(bundle) -> float | None:
    """The typical score of a normal clip: the median of the bundle's calibration scores, or None."""
    scores = bundle.manifest.get("fitted", {}).get("calibration_scores") or []
    scores = np.asarray([s for s in scores if s is not None], dtype=np.float64)
    return float(np.median(scores)) if scores.size else None


def resolve_threshold(base: float, *, sensitivity: float | None = None, threshold: float | None = None,
                      reference: float | None = None) -> tuple[float, str]:
    """The threshold a timeline uses, and how it was chosen.

    Parameters
    ----------
    base : float
        The bundle's threshold (fitted on normal clips only).
    sensitivity : float, optional
        ``S > 0``: the margin between the typical normal score (``reference``) and the
        threshold is divided by ``S``: ``reference + (base - reference) / S``. ``S = 1`` keeps
        the bundle's threshold; ``S = 2`` halves the margin (more alarms); ``S = 0.5`` doubles
        it (fewer). Without a reference, 0 is used (the threshold itself is divided by ``S``).
    threshold : float, optional
        Use this value instead (overrides everything).
    reference : float, optional
        The typical normal score, :func:`normal_level`.

    Returns
    -------
    (float, str)
    """
    if threshold is not None and sensitivity is not None:
        raise ParameterError("--threshold and --sensitivity: give one of them, not both")
    if threshold is not None:
        if not math.isfinite(float(threshold)):
            raise ParameterError(f"threshold: expected a finite number, got {threshold!r}")
        return float(threshold), "given (--threshold)"
    if sensitivity is None or float(sensitivity) == 1.0:
        return float(base), "the model's (fitted on normal clips only)"
    s = float(sensitivity)
    if not (math.isfinite(s) and s > 0):
        raise ParameterError(f"sensitivity: expected a number > 0, got {sensitivity!r}")
    ref = 0.0 if reference is None else float(reference)
    value = ref + (float(base) - ref) / s
    return value, f"the model's {base:.4g} with sensitivity {s:g} (margin over the normal level {ref:.4g} divided by {s:g})"


@dataclass
class Hysteresis:
    """The open/close rule of every event here: counts of consecutive steps.

    An event opens after ``open_after`` consecutive steps above the threshold and closes after
    ``close_after`` consecutive steps that do not hold it, so one stray step neither opens nor
    closes it. :class:`EventTracker` runs it window by window; the service keeps its state
    (``active``, ``run_over``, ``run_under``) per machine between snippets.
    """

    active: bool = False
    run_over: int = 0
    run_under: int = 0

    def step(self, anomalous: bool, *, open_after: int = 1, close_after: int = 1,
             held: bool | None = None) -> str | None:
        """Feed one step; return ``"open"``, ``"close"`` or None.

        Parameters
        ----------
        anomalous : bool
            The step is above the threshold.
        held : bool, optional
            While an event is active, whether this step keeps it (a score at or above the
            release level); None: the same as ``anomalous``.
        """
        on = anomalous if (held is None or not self.active) else held
        if on:
            self.run_over, self.run_under = self.run_over + 1, 0
            if not self.active and self.run_over >= open_after:
                self.active = True
                return "open"
        else:
            self.run_over, self.run_under = 0, self.run_under + 1
            if self.active and self.run_under >= close_after:
                self.active = False
                return "close"
        return None


class EventTracker:
    """Windows in, events out, one window at a time (the same code for files and live streams).

    1. **Hysteresis.** A segment opens when a window's score goes above ``threshold`` and
       stays open while scores stay at or above ``release`` (``release <= threshold``), so a
       dip that does not go below ``release`` does not cut it. With ``open_after`` /
       ``close_after`` above 1 (the service's alerts), it opens only after that many
       consecutive windows above the threshold (from the first of them) and closes only after
       that many consecutive windows below ``release`` (:class:`Hysteresis`).
    2. **Minimum duration.** A segment shorter than ``min_duration_s`` is dropped: a burst of
       noise raises the windows containing it (one window length of them), and raises no alarm.
    3. **Merging.** A segment that lasted long enough and starts within ``merge_gap_s`` of the
       previous event's end is merged into it (fragments of one fault make one event). Short
       segments are never merged into anything, so merging cannot create an event.

    Event boundaries are half a hop before the centre of the first window and half a hop after
    the centre of the last one.

    Parameters
    ----------
    threshold : float
        Level above which a window is anomalous.
    release : float or None
        Level below which an open segment closes (``<= threshold``); None: a window holds an
        open segment only when it is above the threshold.
    hop_s : float
        Time between window starts.
    min_duration_s : float
        Shortest event reported.
    merge_gap_s : float
        Events closer than this are merged.
    open_after, close_after : int
        Consecutive windows that open / close a segment (1: the window itself).
    """

    def __init__(self, *, threshold: float, release: float | None, hop_s: float, min_duration_s: float,
                 merge_gap_s: float, open_after: int = 1, close_after: int = 1):
        if release is not None and release > threshold:
            raise ParameterError(f"release: expected a level <= threshold {threshold:.4g}, got {release:.4g}")
        for name, value in (("min_duration_s", min_duration_s), ("merge_gap_s", merge_gap_s)):
            if not (math.isfinite(value) and value >= 0):
                raise ParameterError(f"{name}: expected a number of seconds >= 0, got {value!r}")
        for name, count in (("open_after", open_after), ("close_after", close_after)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ParameterError(f"{name}: expected an integer >= 1, got {count!r}")
        self.threshold = float(threshold)
        self.release = None if release is None else float(release)
        self.half_hop = 0.5 * float(hop_s)
        self.min_duration_s = float(min_duration_s)
        self.merge_gap_s = float(merge_gap_s)
        self.open_after = open_after
        self.close_after = close_after
        self._state = Hysteresis()
        self._run: list[WindowScore] = []  # windows above the threshold not yet opening a segment
        self._tail: list[WindowScore] = []  # windows below release not yet closing the open segment
        self._open: dict[str, Any] | None = None  # the segment being extended
        self._pending: dict[str, Any] | None = None  # the last event: it may still absorb a segment
        self._gap = [0.0, 0]  # sum and count of the scores since _pending ended (for its mean if it merges)
        self.n_windows = 0
        self.n_above = 0
        self.n_events = 0

    @staticmethod
    def _new(w: WindowScore) -> dict[str, Any]:
        return {"first": w.centre_s, "last": w.centre_s, "peak": w.score, "sum": w.score, "n": 1}

    @staticmethod
    def _extend(e: dict[str, Any], w: WindowScore) -> None:
        e["last"] = w.centre_s
        e["peak"] = max(e["peak"], w.score)
        e["sum"] += w.score
        e["n"] += 1

    def _event(self, e: dict[str, Any]) -> Event:
        return Event(e["first"] - self.half_hop, e["last"] + self.half_hop, float(e["peak"]),
                     float(e["sum"] / e["n"]), int(e["n"]))

    def _long_enough(self, e: dict[str, Any]) -> bool:
        return (e["last"] - e["first"]) + 2 * self.half_hop + 1e-9 >= self.min_duration_s

    def _gap_to(self, start_centre: float) -> float:
        return (start_centre - self.half_hop) - (self._pending["last"] + self.half_hop)

    def _finalise(self) -> list[Event]:
        e, self._pending = self._pending, None
        self._gap = [0.0, 0]
        if e is None:
            return []
        self.n_events += 1
        return [self._event(e)]

    def _close(self) -> list[Event]:
        """The open segment ended: drop it, merge it into the pending event, or make it pending."""
        seg, self._open = self._open, None
        if not self._long_enough(seg):
            if self._pending is not None:  # its windows lie in the pending event's gap
                self._gap[0] += seg["sum"]
                self._gap[1] += seg["n"]
            return []
        done: list[Event] = []
        if self._pending is not None and self._gap_to(seg["first"]) <= self.merge_gap_s + 1e-9:
            e = self._pending
            e["last"] = seg["last"]
            e["peak"] = max(e["peak"], seg["peak"])
            e["sum"] += self._gap[0] + seg["sum"]
            e["n"] += self._gap[1] + seg["n"]
            self._gap = [0.0, 0]
            return done
        done += self._finalise()
        self._pending = seg
        return done

    def _quiet(self, w: WindowScore) -> list[Event]:
        """A window outside any segment: it lies in the pending event's gap, or ends it."""
        if self._pending is None:
            return []
        if self._gap_to(w.centre_s + 2 * self.half_hop) > self.merge_gap_s + 1e-9:
            return self._finalise()  # no segment can start within the gap any more
        self._gap[0] += w.score
        self._gap[1] += 1
        return []

    def update(self, w: WindowScore) -> list[Event]:
        """Take the next window; return the events this window finalised (usually none)."""
        self.n_windows += 1
        above = w.score > self.threshold
        self.n_above += int(above)
        held = None if self.release is None else w.score >= self.release
        was_open = self._open is not None
        what = self._state.step(above, open_after=self.open_after, close_after=self.close_after, held=held)
        done: list[Event] = []
        if was_open:
            if what == "close":
                tail, self._tail = [*self._tail, w], []
                done += self._close()
                for q in tail:
                    done += self._quiet(q)
            elif self._state.run_under == 0:  # held: the dip in the tail (if any) was not an end
                for q in (*self._tail, w):
                    self._extend(self._open, q)
                self._tail = []
            else:
                self._tail.append(w)
            return done
        if what == "open":
            run, self._run = [*self._run, w], []
            if self._pending is not None and self._gap_to(run[0].centre_s) > self.merge_gap_s + 1e-9:
                done += self._finalise()
            self._open = self._new(run[0])
            for q in run[1:]:
                self._extend(self._open, q)
            return done
        if above:
            self._run.append(w)
            return done
        quiet, self._run = [*self._run, w], []
        for q in quiet:
            done += self._quiet(q)
        return done

    def finish(self) -> list[Event]:
        """End of the stream: close what is open and report what is pending."""
        done: list[Event] = []
        if self._open is not None:
            done += self._close()
        for q in (*self._run, *self._tail):
            done += self._quiet(q)
        self._run, self._tail, self._state = [], [], Hysteresis()
        return done + self._finalise()

    def alarm(self) -> Event | None:
        """The event in progress (open and at least ``min_duration_s`` long, merged with the
        pending event when it will be), else None."""
        e = self._open
        if e is None or not self._long_enough(e):
            return None
        if self._pending is not None and self._gap_to(e["first"]) <= self.merge_gap_s + 1e-9:
            p = self._pending
            return Event(p["first"] - self.half_hop, e["last"] + self.half_hop, float(max(p["peak"], e["peak"])),
                         float((p["sum"] + self._gap[0] + e["sum"]) / (p["n"] + self._gap[1] + e["n"])),
                         int(p["n"] + self._gap[1] + e["n"]))
        return self._event(e)


def default_release(threshold: float, reference: float | None, hysteresis: float) -> float:
    """The level that closes an event: ``hysteresis`` of the way from the threshold down to the
    typical normal score (``reference``, or 0 when unknown)."""
    if not (math.isfinite(hysteresis) and 0.0 <= hysteresis <= 1.0):
        raise ParameterError(f"hysteresis: expected a number in [0, 1], got {hysteresis!r}")
    ref = 0.0 if reference is None else float(reference)
    if ref >= threshold:  # a threshold below the normal level: no room for hysteresis
        return float(threshold)
    return float(threshold - hysteresis * (threshold - ref))


def find_events(windows: Iterable[WindowScore], **tracker: Any) -> list[Event]:
    """Run an :class:`EventTracker` (keyword parameters) over a whole timeline."""
    t = EventTracker(**tracker)
    events: list[Event] = []
    for w in windows:
        events += t.update(w)
    return events + t.finish()


def verdict(events: Sequence[Event], *, n_windows: int, n_above: int, threshold: float,
            min_duration_s: float, duration_s: float, max_event_s: float | None = None) -> dict[str, Any]:
    """The file-level verdict and the reason for it.

    A recording is anomalous when it holds at least one event (a stretch of windows above the
    threshold lasting at least ``min_duration_s``); isolated windows above the threshold are
    counted in the reason but do not make the file anomalous. ``max_event_s`` (the longest
    event the recording's windows allow) lets the reason say when the recording is too short
    for any event.

    Returns
    -------
    dict
        ``verdict`` (``"anomalous"`` or ``"normal"``), ``is_anomalous``, ``reason``,
        ``n_events``, ``anomalous_s`` (total event time), ``n_windows``, ``n_above``.
    """
    share = f"{n_above}/{n_windows} windows ({100.0 * n_above / max(n_windows, 1):.1f} %) above the threshold {threshold:.4g}"
    if events:
        total = sum(e.duration_s for e in events)
        worst = max(events, key=lambda e: e.peak_score)
        first = events[0]
        reason = (f"{len(events)} event(s) totalling {total:.1f} s of {duration_s:.1f} s; first from "
                  f"{first.start_s:.1f} s to {first.end_s:.1f} s; highest peak {worst.peak_score:.4g} at "
                  f"{worst.start_s:.1f}-{worst.end_s:.1f} s ({worst.peak_score / threshold:.1f}x the threshold)"
                  if threshold > 0 else
                  f"{len(events)} event(s) totalling {total:.1f} s of {duration_s:.1f} s; first from "
                  f"{first.start_s:.1f} s to {first.end_s:.1f} s; highest peak {worst.peak_score:.4g}")
        return {"verdict": "anomalous", "is_anomalous": True, "reason": reason, "n_events": len(events),
                "anomalous_s": round(total, 3), "n_windows": n_windows, "n_above": n_above}
    if n_above:
        reason = f"no event: {share}, but never for {min_duration_s:g} s or more"
    else:
        reason = f"no event: no window above the threshold {threshold:.4g}"
    if max_event_s is not None and max_event_s + 1e-9 < min_duration_s:
        reason += (f" (this recording allows events of at most {max_event_s:.1f} s: score it as a clip with "
                   "`earshot score`, or lower --min-duration-s)")
    return {"verdict": "normal", "is_anomalous": False, "reason": reason, "n_events": 0, "anomalous_s": 0.0,
            "n_windows": n_windows, "n_above": n_above}


def write_timeline_csv(path: str | os.PathLike, windows: Iterable[WindowScore], threshold: float) -> None:
    """``start_s, end_s, score, threshold, is_anomalous`` per window, written atomically."""
    with atomic_file(path, newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(TIMELINE_COLUMNS)
        for row in windows:
            w.writerow([f"{row.start_s:.3f}", f"{row.end_s:.3f}", f"{row.score:.6g}", f"{threshold:.6g}",
                        int(row.score > threshold)])


def write_events_csv(path: str | os.PathLike, events: Iterable[Event]) -> None:
    """``start_s, end_s, peak_score, mean_score`` per event, written atomically."""
    with atomic_file(path, newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(EVENT_COLUMNS)
        for e in events:
            w.writerow(event_row(e))


def event_row(e: Event) -> list[str]:
    """One events-CSV row (as text), shared by ``detect`` and ``listen``."""
    return [f"{e.start_s:.3f}", f"{e.end_s:.3f}", f"{e.peak_score:.6g}", f"{e.mean_score:.6g}"]


@dataclass(frozen=True)
class EventSettings:
    """How windows become events (``detect`` and ``listen`` share these).

    Parameters
    ----------
    sensitivity : float, optional
        See :func:`resolve_threshold` (None or 1: the bundle's threshold).
    threshold : float, optional
        A threshold to use instead of the bundle's.
    min_duration_s : float, optional
        Shortest event; None: three windows (a burst of noise raises the windows that contain
        it, one window length of them; two bursts close together, two).
    merge_gap_s : float, optional
        Events closer than this merge; None: one window.
    hysteresis : float
        Where an event ends: this fraction of the way from the threshold down to the normal
        level (0: at the threshold, no hysteresis).
    """

    sensitivity: float | None = None
    threshold: float | None = None
    min_duration_s: float | None = None
    merge_gap_s: float | None = None
    hysteresis: float = 0.5

    def tracker(self, bundle, geometry: WindowGeometry) -> tuple[EventTracker, dict[str, Any]]:
        """An :class:`EventTracker` for ``bundle`` and what it was set up with (JSON-safe)."""
        ref = normal_level(bundle)
        value, how = resolve_threshold(bundle.threshold_, sensitivity=self.sensitivity, threshold=self.threshold,
                                       reference=ref)
        release = default_release(value, ref, float(self.hysteresis))
        min_d = 3.0 * geometry.window_s if self.min_duration_s is None else float(self.min_duration_s)
        gap = geometry.window_s if self.merge_gap_s is None else float(self.merge_gap_s)
        tracker = EventTracker(threshold=value, release=release, hop_s=geometry.hop_s, min_duration_s=min_d,
                               merge_gap_s=gap)
        info = {"threshold": value, "threshold_source": how, "model_threshold": float(bundle.threshold_),
                "normal_level": ref, "release": release, "hysteresis": float(self.hysteresis),
                "min_duration_s": min_d, "merge_gap_s": gap, "window_s": geometry.window_s, "hop_s": geometry.hop_s,
                "aggregate": bundle.aggregate}
        return tracker, info
