"""Long recordings and live streams: samples in, timeline windows and events out, with flat memory.

- :class:`WindowGeometry` (:mod:`.windows`): which samples, frames and model windows make up
  timeline window ``k``; :class:`EventTracker` (:mod:`.events`): windows in, events out, online,
  with hysteresis, merge gap and minimum duration (the one event engine: ``detect``, ``listen``
  and the service's alerts use it); :func:`verdict`: a recording's verdict and its reason.

One code path for ``earshot detect`` (a whole file pushed in large blocks) and ``earshot
listen`` (a microphone, or a file streamed at real-time pace, through a ring buffer):

- :class:`FrameStream` (:mod:`.frames`) turns samples into log-mel frames as they arrive,
  equal to :func:`earshot.features.log_mel` of the whole signal;
- :class:`StreamScorer` (:mod:`.scorer`) runs the bundle's ONNX scoring graph over new frames
  only and turns the model-window errors into timeline windows
  (:class:`earshot.timeline.WindowGeometry`);
- :class:`RingBuffer` (:mod:`.ring`) decouples the producer (the audio callback, or a
  file-reading thread) from the scorer;
- :class:`FileSource`, :class:`DeviceSource` (sounddevice, the ``live`` extra) and
  :func:`list_input_devices` (:mod:`.sources`) are the producers; :class:`StreamResampler`
  (:mod:`.resample`) converts a sound card's rate to the model's block by block;
- :func:`monitor` (:mod:`.live`) is the consumer loop of ``listen``, with :class:`Recorder`
  (``--record``) and :class:`EventLog` (``--events``) writing as it goes;
- :func:`scan_file` (:mod:`.scan`) pushes a whole file through the scorer in large blocks
  (``detect``; :func:`earshot.pipeline.detect.detect_file` adds events, verdict and picture);
- :class:`SpectrogramSink` (:mod:`.spectrogram`) keeps a picture-sized spectrogram as frames pass.

Everything kept between calls is bounded by the window length, the model's context and the
ring's capacity, never by how long the stream has run. Imports numpy, soundfile and
onnxruntime; sounddevice only when a device is opened. The public names are re-exported
here: import them from :mod:`earshot.timeline`, not from the submodules.
"""

from __future__ import annotations

from earshot.timeline.events import (
    Event,
    EventSettings,
    EventTracker,
    Hysteresis,
    default_release,
    event_row,
    find_events,
    normal_level,
    resolve_threshold,
    verdict,
    write_events_csv,
    write_timeline_csv,
)
from earshot.timeline.frames import FrameStream
from earshot.timeline.live import EventLog, MonitorSummary, Recorder, monitor
from earshot.timeline.resample import StreamResampler
from earshot.timeline.ring import RingBuffer
from earshot.timeline.scan import scan_file
from earshot.timeline.scorer import StreamScorer
from earshot.timeline.sources import DeviceSource, FileSource, list_input_devices
from earshot.timeline.spectrogram import SpectrogramSink
from earshot.timeline.windows import (
    DEFAULT_WINDOW_S,
    EVENT_COLUMNS,
    TIMELINE_COLUMNS,
    WindowGeometry,
    WindowScore,
    frame_span,
    model_window_hop,
)

__all__ = [
    "DEFAULT_WINDOW_S",
    "EVENT_COLUMNS",
    "TIMELINE_COLUMNS",
    "WindowGeometry",
    "WindowScore",
    "Event",
    "EventTracker",
    "Hysteresis",
    "EventSettings",
    "frame_span",
    "model_window_hop",
    "find_events",
    "resolve_threshold",
    "normal_level",
    "default_release",
    "event_row",
    "verdict",
    "write_timeline_csv",
    "write_events_csv",
    "FrameStream",
    "StreamScorer",
    "RingBuffer",
    "FileSource",
    "DeviceSource",
    "StreamResampler",
    "Recorder",
    "EventLog",
    "MonitorSummary",
    "monitor",
    "scan_file",
    "SpectrogramSink",
    "list_input_devices",
]
