"""``earshot train``: one detector per machine/id, its threshold calibrated on normal clips only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from earshot.cli.channel_option import Channels, resolve_channels
from earshot.cli.common import fmt_cell, parse_params, progress_bars
from earshot.cli.options import Channel, DataArg, Device, HopLength, NFft, NMels

#: The model kinds, in the order of :data:`earshot.detection.DETECTORS` (a test keeps them equal;
#: written out here because importing the registry loads numpy and scipy, and `--help` stays fast).
MODEL_KINDS = ("dense-ae", "gauss", "knn", "embed", "auto", "lstm-ae", "cnn", "encoder")


def register(app: typer.Typer, out, err) -> None:
    @app.command()
    def train(
        data: DataArg,
        out_dir: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write.")],
        model: Annotated[str, typer.Option(help=f"Detector kind: {' | '.join(MODEL_KINDS)} (docs/models.md: which one when).")] = "dense-ae",
        group_by: Annotated[str, typer.Option(help="One model per: id | machine | none.")] = "id",
        epochs: Annotated[Optional[int], typer.Option(help="Training epochs (default: the model's, 30 for dense-ae).")] = None,
        batch_size: Annotated[Optional[int], typer.Option(help="Windows per training step (default: the model's, 512 for dense-ae, 32 for cnn).")] = None,
        n_mels: NMels = 128,
        n_frames: Annotated[Optional[int], typer.Option(help="Context frames per window (default: the model's, 5 for dense-ae, 32 for cnn).")] = None,
        n_fft: NFft = 1024,
        hop_length: HopLength = 512,
        sr: Annotated[int, typer.Option(help="Sample rate to decode at (Hz); other rates are resampled.")] = 16000,
        channel: Channel = None,
        channels: Channels = None,
        threshold: Annotated[str, typer.Option(help="gamma:q | percentile:p | mean-std:k | max | value:x")] = "gamma:0.9",
        aggregate: Annotated[str, typer.Option(help="Window errors to clip score: mean | max | quantile:q")] = "mean",
        split_file: Annotated[Optional[Path], typer.Option(help="CSV with path,split[,label] overriding the split.")] = None,
        labels: Annotated[Optional[Path], typer.Option(help="CSV path,label[,fault] (e.g. confirmed or rejected alarms): those clips become training clips with those labels (an unsupervised model still trains on normal ones only); supervised models (cnn) need some. A fault column (fault type of label-1 rows, free text) stores the fault signatures in the model: score then names the closest fault of each flagged clip.")] = None,
        seed: Annotated[int, typer.Option(help="Random seed (split, initial weights, shuffling).")] = 0,
        param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="Extra detector parameter KEY=VALUE (repeatable), e.g. -p hidden=64.")] = None,
        window_s: Annotated[float, typer.Option(help="Recordings longer than 30 s are cut into windows of this length (s); use detect's --window-s.")] = 1.0,
        device: Device = "auto",
    ) -> None:
        """Train one detector per machine/id on normal clips; calibrate its threshold on normal clips only."""
        from earshot.features.config import FeatureConfig  # deferred: the library loads when a verb runs (fast --help)
        from earshot.pipeline import train as run_train  # deferred: as above
        from earshot.detection import SHARED_OPTIONS, detector_params, frames_needed  # deferred: as above

        # the shared options a detector has no parameter for (e.g. --epochs for gauss) are left out
        common = {"epochs": epochs, "batch_size": batch_size, "threshold": threshold, "aggregate": aggregate,
                  "n_frames": n_frames, "device": device}
        params = {**detector_params(model, common, optional=SHARED_OPTIONS), **parse_params(param or [])}
        if params.get("device", "auto") != "auto":  # checked before any audio is read
            from earshot.detection import resolve_device  # deferred: imports torch, only when a device is named
            resolve_device(params["device"])
        n_frames = frames_needed(model, params)
        features = FeatureConfig(sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                                 n_frames=n_frames if isinstance(n_frames, int) and n_frames > 0 else 5)
        with progress_bars() as progress:
            result = run_train(data, out_dir, model=model, model_params=params, features=features,
                               channel=resolve_channels(channel, channels),
                               group_by=group_by, split_file=split_file, seed=seed, progress=progress, labels=labels,
                               window_s=window_s)
        table = Table(title=f"trained {len(result.groups)} model(s) -> {result.path}")
        for col in ("group", "clips", "threshold", "method", "fitted on", "false alarms (held-out)", "seconds"):
            table.add_column(col)
        for g, s in result.groups.items():
            table.add_row(g, str(s["n_clips"]), fmt_cell(s["threshold"], 4), s["threshold_method"], s["threshold_source"],
                          fmt_cell(s["false_alarm_rate"], 2), fmt_cell(s["fit_seconds"], 1))
        out.print(table)
        for g, s in result.groups.items():
            if s.get("faults"):  # train --labels with a fault column
                out.print(f"{g}: fault signatures of {s['faults']['n_clips']} anomalies stored "
                          f"({', '.join(s['faults']['faults'])})", markup=False, highlight=False)
        for g, why in result.skipped.items():
            err.print(f"earshot: warning: group {g} skipped: {why}")
