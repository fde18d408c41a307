"""``earshot listen``: live monitoring from a microphone (or a file streamed like one)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from earshot.cli.options import EventGroup, MergeGapS, MinDurationS, OptionalModelDir, Sensitivity, ThresholdOverride, WindowS
from earshot.errors import ParameterError


def _device(text: Optional[str]):
    """``--device``: a PortAudio index (digits) or a name."""
    if text is None:
        return None
    return int(text) if text.strip().lstrip("-").isdigit() else text


def _check_options(model_dir: Optional[Path], *, fast: bool, input_file: Optional[Path], device: Optional[str],
                   blocksize: int, stall_s: Optional[float]) -> None:
    """The combinations of options listen refuses, one line each."""
    if model_dir is None:
        raise ParameterError("MODEL: expected a model directory (or --list-devices)")
    if fast and input_file is None:
        raise ParameterError("--fast: only with --input FILE (a device delivers at its own pace)")
    if input_file is not None and device is not None:
        raise ParameterError("--device and --input: give one of them, not both")
    if blocksize < 16:
        raise ParameterError(f"--blocksize: expected at least 16 samples, got {blocksize}")
    if stall_s is not None and input_file is not None:
        raise ParameterError("--stall-s: only with a device (a file has no hung device to watch for)")
    if stall_s is not None and not stall_s >= 0:
        raise ParameterError(f"--stall-s: expected 0 (off) or a number of seconds, got {stall_s:g}")


def _print_devices(out, devices: list[dict]) -> None:
    """``--list-devices``: one line per input device, ``*`` marks the default."""
    if not devices:
        out.print("no audio input devices found")
    for d in devices:
        out.print(f"{d['index']:>3}{' *' if d['default'] else '  '} {d['name']}  "
                  f"({d['channels']} ch, {d['default_sr']:g} Hz)")


def _summary_line(summary, wall: float, fast: bool) -> str:
    """What was heard, in one line, when listening ends."""
    speed = f" ({summary.seconds / wall:.0f}x real time)" if fast and wall > 0 else ""
    return (f"listened to {summary.seconds:.1f} s of audio in {wall:.1f} s{speed}: {summary.n_windows} windows, "
            f"{summary.n_above} above the threshold, {summary.events} event(s)"
            f"{'; interrupted' if summary.interrupted else ''}"
            f"{f'; {summary.dropped_samples} samples dropped (the scorer fell behind)' if summary.dropped_samples else ''}"
            f"{f'; {summary.input_overflows} input overflow(s) (audio lost by the sound card)' if summary.input_overflows else ''}")


def register(app: typer.Typer, out, err) -> None:
    @app.command()
    def listen(
        model_dir: OptionalModelDir = None,
        device: Annotated[Optional[str], typer.Option(help="Input device (index or name; see --list-devices). Default: the system's default input.")] = None,
        input_file: Annotated[Optional[Path], typer.Option("--input", help="Stream this audio file instead of a device, at real-time pace.")] = None,
        fast: Annotated[bool, typer.Option("--fast", help="With --input: as fast as the scorer goes, not at real-time pace.")] = False,
        list_devices: Annotated[bool, typer.Option("--list-devices", help="List the audio input devices and exit.")] = False,
        record: Annotated[Optional[Path], typer.Option(help="Also write the audio heard to this wav file.")] = None,
        events_csv: Annotated[Path, typer.Option("--events", help="CSV log the events are appended to as they end.")] = Path("listen-events.csv"),
        window_s: WindowS = None,
        hop_s: Annotated[float, typer.Option(help="Time between window starts (s): a verdict this often.")] = 0.1,
        sensitivity: Sensitivity = None,
        threshold: ThresholdOverride = None,
        min_duration_s: MinDurationS = None,
        merge_gap_s: MergeGapS = None,
        hysteresis: Annotated[float, typer.Option(help="An event ends this fraction of the way from the threshold down to the normal level.")] = 0.5,
        group: EventGroup = None,
        channel: Annotated[Optional[int], typer.Option(help="Input channel (0-based); default: the model's, else the mean of a mono or stereo input (the first channel of a device with more).")] = None,
        duration_s: Annotated[Optional[float], typer.Option("--duration-s", help="Stop after this much audio (s); default: until the input ends or Ctrl-C.")] = None,
        print_every_s: Annotated[float, typer.Option(help="Rolling verdict every this many seconds of audio (0: every window).")] = 1.0,
        blocksize: Annotated[int, typer.Option(help="Samples per audio block (the sound card's period).")] = 1024,
        stall_s: Annotated[Optional[float], typer.Option("--stall-s", help="End with an error when the device delivers no audio for this long (s): hung, or gone without an error. Default: 5 s (4 blocks if longer); 0: wait for ever.")] = None,
    ) -> None:
        """Listen live: a rolling verdict, events logged to CSV as they end; Ctrl-C to stop."""
        from earshot.io.channels import refuse_fused_stream  # deferred: the library loads when a verb runs (fast --help)
        from earshot.timeline import (  # deferred: as above (sounddevice only when a device is opened)
            DeviceSource, EventLog, EventSettings, FileSource, Recorder, StreamScorer, WindowGeometry,
            list_input_devices, monitor)

        if list_devices:
            _print_devices(out, list_input_devices())
            return
        _check_options(model_dir, fast=fast, input_file=input_file, device=device, blocksize=blocksize, stall_s=stall_s)
        from earshot.bundle import load_model  # deferred: as above

        model = load_model(model_dir)
        if group is None and len(model.bundles) > 1:
            raise ParameterError(f"--group: the model has groups {', '.join(model.groups)}; name the one to listen with")
        name, bundle = model.bundle_for(input_file or "-", group) if group else next(iter(model.bundles.items()))
        geometry = WindowGeometry.for_bundle(bundle, window_s=window_s, hop_s=hop_s)
        settings = EventSettings(sensitivity=sensitivity, threshold=threshold, min_duration_s=min_duration_s,
                                 merge_gap_s=merge_gap_s, hysteresis=hysteresis)
        tracker, info = settings.tracker(bundle, geometry)
        sr = bundle.features.sr
        use_channel = channel if channel is not None else bundle.channel
        refuse_fused_stream(use_channel, "listen", "pass --channel N to listen to one of them")
        if input_file is not None:
            source = FileSource(input_file, sr=sr, channel=use_channel, blocksize=blocksize, realtime=not fast)
            what = f"{input_file} ({'as fast as possible' if fast else 'real-time pace'})"
        else:
            source = DeviceSource(_device(device), sr=sr, channel=use_channel, blocksize=blocksize, stall_s=stall_s)
            source.probe()  # no device: one line before anything is written; chooses the rate to open it at
            rate = source.device_sr or sr
            what = (f"input device {device if device is not None else '(default)'} at {rate} Hz"
                    f"{f', resampled to {sr} Hz' if rate != sr else ''}")
        scorer = StreamScorer(bundle, geometry, threads=1)
        log = EventLog(events_csv)
        recorder = Recorder(record, sr) if record is not None else None
        def on_start() -> None:  # once the input is open: a device that will not open says so alone
            err.print(f"listening to {what} with {model_dir} ({name}); threshold {info['threshold']:.4g} "
                      f"({info['threshold_source']}); events -> {events_csv}; Ctrl-C to stop")

        state = {"next_print": 0.0, "alarm": None}

        def on_window(w, t) -> None:
            alarm = t.alarm()
            if alarm is not None and state["alarm"] is None:
                out.print(f"{w.end_s:9.1f} s  ALARM: anomalous since {alarm.start_s:.1f} s")
            state["alarm"] = alarm
            if w.end_s + 1e-9 >= state["next_print"]:
                state["next_print"] = w.end_s + print_every_s
                verdict = (f"ANOMALY since {alarm.start_s:.1f} s" if alarm is not None
                           else "above threshold" if w.score > t.threshold else "normal")
                out.print(f"{w.end_s:9.1f} s  score {w.score:9.4g}  threshold {t.threshold:.4g}  {verdict}")

        def on_event(e) -> None:
            log.write(e)
            out.print(f"event: {e.start_s:.1f}-{e.end_s:.1f} s ({e.duration_s:.1f} s), peak {e.peak_score:.4g}, "
                      f"mean {e.mean_score:.4g} -> {events_csv}")

        started = time.perf_counter()
        ok = False
        try:
            summary = monitor(source, scorer, tracker, on_window=on_window, on_event=on_event, recorder=recorder,
                              max_seconds=duration_s, on_start=on_start)
            ok = True
        finally:
            log.close(create=ok)
            if recorder is not None:
                if ok:
                    recorder.close()
                else:
                    recorder.discard()
        out.print(_summary_line(summary, time.perf_counter() - started, fast))
        if record is not None:
            out.print(f"recorded: {record}")
