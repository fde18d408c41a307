"""``earshot cv``: leave-one-machine-out / stratified k-fold cross-validation, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from earshot._util.fs import atomic_file
from earshot.cli.channel_option import Channels, resolve_channels
from earshot.cli.common import fmt_cell, parse_params, progress_bars
from earshot.cli.options import Channel, Device, HopLength, NFft, NMels
from earshot.errors import ParameterError


def register(app: typer.Typer, out, err) -> None:
    @app.command()
    def cv(
        data: Annotated[Path, typer.Argument(metavar="DATA", help="Labelled data (any layout); its own train/test split is ignored.")],
        by: Annotated[str, typer.Option(help="id: hold out each machine id (within its machine type); machine: each "
                                             "machine type; fold: stratified k-fold only.")] = "id",
        model: Annotated[str, typer.Option(help="Detector kind (any registered: dense-ae, cnn, ...).")] = "dense-ae",
        folds: Annotated[Optional[int], typer.Option(help="k of the stratified k-fold (default: the number of ids "
                                                          "per machine type; 5 with --by fold).")] = None,
        epochs: Annotated[Optional[int], typer.Option(help="Training epochs (default: the model's).")] = None,
        n_mels: NMels = 128,
        n_fft: NFft = 1024,
        hop_length: HopLength = 512,
        sr: Annotated[int, typer.Option(help="Sample rate to decode at (Hz).")] = 16000,
        channel: Channel = None,
        channels: Channels = None,
        threshold: Annotated[Optional[str], typer.Option(help="Threshold method (default: the model's, gamma:0.9).")] = None,
        seed: Annotated[int, typer.Option(help="Random seed (folds, initial weights, shuffling).")] = 0,
        param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="Extra detector parameter KEY=VALUE (repeatable).")] = None,
        split_file: Annotated[Optional[Path], typer.Option(help="CSV path,split[,label]: only its labels are used.")] = None,
        json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the full result as JSON here.")] = None,
        report_dir: Annotated[Optional[Path], typer.Option("--report", help="Write cv.html (self-contained) and cv.json into this folder.")] = None,
        executor: Annotated[Optional[str], typer.Option(help="Where folds train: serial | processes | dask (default: "
                                                             "$EARSHOT_EXECUTOR, else serial).")] = None,
        workers: Annotated[Optional[int], typer.Option(help="Worker processes for --executor processes/dask.")] = None,
        device: Device = "auto",
    ) -> None:
        """Cross-validate a model: random split vs leave-one-machine-out, side by side."""
        from earshot._util.executors import executor_scope  # deferred: the library loads when a verb runs (fast --help)
        from earshot.features.config import FeatureConfig  # deferred: as above
        from earshot.pipeline.crossval import cross_validate  # deferred: as above
        from earshot.reports.crossval import cv_json, write_cv_report  # deferred: as above (and matplotlib)

        if report_dir is not None and report_dir.exists() and not report_dir.is_dir():
            raise ParameterError(f"--report {report_dir}: expected a folder, got a file")
        features = FeatureConfig(sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
        rule = resolve_channels(channel, channels)
        params = {"epochs": epochs, "threshold": threshold, "device": device, **parse_params(param or [])}
        if device != "auto":  # checked before any audio is read
            from earshot.detection import resolve_device  # deferred: imports torch, only when a device is named
            resolve_device(device)
        with progress_bars() as progress:
            with executor_scope(executor, workers=workers) as ex:
                result = cross_validate(data, by=by, model=model, folds=folds, model_params=params, features=features,
                                        channel=rule, split_file=split_file, seed=seed, progress=progress, executor=ex)
        schemes = [s for s in ("random", "leave-one-out") if s in result["schemes"]]
        keys = ("auc", "pauc", "precision", "recall", "f1", "accuracy")
        table = Table(title=f"{model} on {data}: cross-validation by {by} ({result['n_clips']} labelled clips)")
        for col in ("scheme", "summary", "AUC", "pAUC", "precision", "recall", "F1", "accuracy"):
            table.add_column(col, justify="left" if col in ("scheme", "summary") else "right")
        for s in schemes:
            sc = result["schemes"][s]
            for what in ("pooled", "mean"):
                m = sc.get(what) or {}
                table.add_row(sc["title"], what, *(fmt_cell(m.get(k)) for k in keys))
        if result.get("gap"):
            table.add_row("gap", "random - leave-out", *(fmt_cell(result["gap"].get(k)) for k in keys))
        out.print(table)
        groups = Table(title="AUC / F1 per group" + (" (held out in leave-one-out)" if len(schemes) > 1 else ""))
        groups.add_column("group")
        for s in schemes:
            name = result["schemes"][s]["title"].split(" (")[0]
            groups.add_column(f"AUC {name}", justify="right")
            groups.add_column(f"F1 {name}", justify="right")
        for g, d in result["by_group"].items():
            cells = []
            for s in schemes:
                m = d.get(s) or {}
                cells += [fmt_cell(m.get("auc")), fmt_cell(m.get("f1"))]
            groups.add_row(g, *cells)
        out.print(groups)
        for s in schemes:
            for f in result["schemes"][s]["folds"]:
                if "skipped" in f:
                    err.print(f"earshot: warning: fold {f['name']} skipped: {f['skipped']}")
        for note in result.get("notes") or []:
            err.print(f"earshot: warning: {note}")
        out.print("Thresholds: each fold model's own, fitted on its training clips only; "
                  f"pAUC: {result['definitions']['pauc']}.")
        if json_out is not None:
            with atomic_file(json_out, encoding="utf-8") as fh:
                fh.write(cv_json(result))
            out.print(f"result: {json_out}")
        if report_dir is not None:
            page = write_cv_report(result, report_dir)
            out.print(f"report: {page} (and {page.with_name('cv.json')})")
