"""``earshot explore``: a data summary and pictures (waveforms, spectrograms, mean spectra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from earshot.cli.common import progress_bars
from earshot.cli.options import DataArg


def register(app: typer.Typer, out, err) -> None:
    @app.command()
    def explore(
        data: DataArg,
        out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for index.html, summary.json and the PNGs.")],
        max_clips: Annotated[int, typer.Option(help="Clips decoded per machine/id and label (level checks, mean spectrum).")] = 50,
        examples: Annotated[int, typer.Option(help="Example clips per machine/id and label in the waveform picture.")] = 3,
        sr: Annotated[int, typer.Option(help="Sample rate (Hz) of the spectra; other rates are resampled.")] = 16000,
        n_mels: Annotated[int, typer.Option(help="Mel bands of the log-mel pictures.")] = 128,
        channel: Annotated[Optional[int], typer.Option(help="Channel to draw (0-based); default: mean of all channels.")] = None,
    ) -> None:
        """Pictures of a data set: clip counts, level checks, waveforms, spectrograms, mean spectra."""
        from earshot.reports.explore import explore as run_explore  # deferred: loads the library when run (fast --help)

        with progress_bars() as progress:
            summary = run_explore(data, out_dir, max_clips=max_clips, n_examples=examples, sr=sr, n_mels=n_mels,
                                  channel=channel, progress=progress)
        table = Table(title=f"{summary['n_clips']} clips in {data}")
        for col in ("machine/id", "normal", "anomaly", "unlabelled", "seconds", "sr (Hz)", "channels",
                    "checked", "silent", "clipping", "unreadable"):
            table.add_column(col, justify="left" if col == "machine/id" else "right")
        for name, g in summary["groups"].items():
            d = g["duration_s"]
            table.add_row(name, *(str(g["labels"][k]) for k in ("normal", "anomaly", "unknown")),
                          f"{d['min']:.1f}-{d['max']:.1f}" if d else "-", ",".join(g["sr"]) or "-",
                          ",".join(g["channels"]) or "-", str(g["checked"]), str(len(g["silent"])),
                          str(len(g["clipping"])), str(len(g["unreadable"])))
        out.print(table)
        for kind in ("silent", "clipping"):
            for path in summary["problems"][kind]:
                err.print(f"earshot: warning: {kind}: {path}")
        for u in summary["problems"]["unreadable"]:
            err.print(f"earshot: warning: unreadable: {u['error']}")
        out.print(f"pictures: {Path(out_dir) / 'index.html'}")
