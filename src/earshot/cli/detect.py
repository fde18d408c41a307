"""``earshot detect``: when did a long recording sound wrong? Timeline, events, verdict, picture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from earshot.cli.options import EventGroup, MergeGapS, MinDurationS, ModelDir, Sensitivity, ThresholdOverride, WindowS
from earshot.errors import ParameterError


def _truth(path: Optional[Path]) -> list[tuple[float, float]] | None:
    """Known fault times from a JSON file with ``events: [{start_s, end_s}, ...]`` (synth's sidecar)."""
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [(float(e["start_s"]), float(e["end_s"])) for e in data["events"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ParameterError(f"--truth {path}: expected a JSON file with events [{{start_s, end_s}}] ({exc})") from None


def register(app: typer.Typer, out, err) -> None:
    @app.command()
    def detect(
        model_dir: ModelDir,
        recording: Annotated[Path, typer.Argument(metavar="RECORDING", help="A long recording (wav, flac...).")],
        window_s: WindowS = None,
        hop_s: Annotated[float, typer.Option(help="Time between window starts (s).")] = 0.1,
        sensitivity: Sensitivity = None,
        threshold: ThresholdOverride = None,
        min_duration_s: MinDurationS = None,
        merge_gap_s: MergeGapS = None,
        hysteresis: Annotated[float, typer.Option(help="An event ends this fraction of the way from the threshold down to the normal level (0: at the threshold).")] = 0.5,
        out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for timeline.csv, events.csv, verdict.json and timeline.png.")] = None,
        group: EventGroup = None,
        truth: Annotated[Optional[Path], typer.Option(help="JSON with the true fault times (events: [{start_s, end_s}]) to draw in the picture, e.g. synth's sidecar.")] = None,
        picture: Annotated[bool, typer.Option("--picture/--no-picture", help="Draw timeline.png (needs matplotlib).")] = True,
    ) -> None:
        """Per-window scores of a long recording, events (start, end, peak) and a verdict with its reason."""
        from earshot.bundle import load_model  # deferred: the library loads when a verb runs (fast --help)
        from earshot.pipeline.detect import detect_file  # deferred: as above
        from earshot.timeline import EventSettings  # deferred: as above

        known = _truth(truth)
        model = load_model(model_dir)
        settings = EventSettings(sensitivity=sensitivity, threshold=threshold, min_duration_s=min_duration_s,
                                 merge_gap_s=merge_gap_s, hysteresis=hysteresis)
        result = detect_file(model, recording, group=group, window_s=window_s, hop_s=hop_s, events=settings,
                             spectrogram=picture and out_dir is not None)
        s = result.settings
        if result.events:
            table = Table(title=f"{len(result.events)} event(s) in {recording}")
            for col in ("#", "start (s)", "end (s)", "duration (s)", "peak score", "mean score"):
                table.add_column(col, justify="right")
            for n, e in enumerate(result.events, start=1):
                table.add_row(str(n), f"{e.start_s:.1f}", f"{e.end_s:.1f}", f"{e.duration_s:.1f}",
                              f"{e.peak_score:.4g}", f"{e.mean_score:.4g}")
            out.print(table)
        out.print(f"verdict: {result.verdict['verdict'].upper()}: {result.verdict['reason']}")
        out.print(f"threshold {s['threshold']:.4g}: {s['threshold_source']}; windows of {s['window_s']:g} s every "
                  f"{s['hop_s']:g} s; events end below {s['release']:.4g}, last at least {s['min_duration_s']:g} s, "
                  f"merge across gaps under {s['merge_gap_s']:g} s")
        if out_dir is not None:
            draw = picture
            if draw:
                try:
                    import matplotlib  # noqa: F401  (deferred: asks whether the optional extra is installed)
                except ImportError:
                    err.print("earshot: warning: no timeline.png: matplotlib is not installed (pip install 'earshot[plots]')")
                    draw = False
            written = result.save(out_dir, picture=draw, truth=known)
            out.print("wrote " + ", ".join(str(p) for p in written.values()))
