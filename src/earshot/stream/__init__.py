"""Streaming scoring: samples in, timeline windows out, with flat memory.

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
- :func:`scan_file` and :func:`detect_file` (:mod:`.detect`) are ``detect``: a whole file,
  its events and verdict (:class:`DetectResult`).

Everything kept between calls is bounded by the window length, the model's context and the
ring's capacity, never by how long the stream has run. Imports numpy, soundfile and
onnxruntime; sounddevice only when a device is opened. The public names are re-exported
here: import them from :mod:`earshot.stream`, not from the submodules.
"""

from __future__ import annotations

from earshot.stream.detect import DetectResult, detect_file, scan_file
from earshot.stream.frames import FrameStream
from earshot.stream.live import EventLog, MonitorSummary, Recorder, monitor
from earshot.stream.resample import StreamResampler
from earshot.stream.ring import RingBuffer
from earshot.stream.scorer import StreamScorer
from earshot.stream.sources import DeviceSource, FileSource, list_input_devices

__all__ = [
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
    "detect_file",
    "DetectResult",
    "list_input_devices",
]
