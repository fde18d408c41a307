"""``earshot export``: ONNX files and JSON contracts for devices without Python (the edge)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from earshot.cli.options import ModelDir


def register(app: typer.Typer, out, err) -> None:
    @app.command()
    def export(
        model_dir: ModelDir,
        out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write: GROUP.onnx and GROUP.json per "
                           "group, and index.json (new, empty, or an earlier export, which is replaced).")],
        group: Annotated[Optional[str], typer.Option(help="Export only this group of a model set.")] = None,
        waveform: Annotated[bool, typer.Option("--waveform/--logmel", help="--waveform (default): the graph takes "
                            "raw mono audio and computes earshot's log-mel and the clip score itself (needs the "
                            "onnx package). --logmel: the bundle's graph as it is; the device computes the log-mel.")] = True,
    ) -> None:
        """ONNX graphs and their contracts for the edge, each checked against earshot's own scores."""
        # deferred: the library loads when a verb runs (fast --help)
        from earshot.bundle.export import LOGMEL_TOL_DB, RTOL, export_model

        result = export_model(model_dir, out_dir, group=group, front_end="waveform" if waveform else "logmel")
        table = Table(title=f"exported {len(result.groups)} graph(s) ({result.front_end} input) -> {result.path}")
        for col in ("group", "file", "threshold", "clip score", "max |diff| window scores", "max |diff| score",
                    "max |diff| log-mel (dB)"):
            table.add_column(col, justify="left" if col in ("group", "file", "clip score") else "right")
        for g, info in result.groups.items():
            v = info["verification"]
            table.add_row(g, info["onnx"].name, f"{info['threshold']:.4f}",
                          "output 'score'" if result.front_end == "waveform" else "aggregate on the device",
                          f"{v['window_scores_max_abs_diff']:.2e}",
                          "-" if v["score_max_abs_diff"] is None else f"{v['score_max_abs_diff']:.2e}",
                          "-" if v["logmel_max_abs_diff_db"] is None else f"{v['logmel_max_abs_diff_db']:.2e}")
        out.print(table)
        first = next(iter(result.groups.values()))["verification"]
        out.print(f"checked with onnxruntime on {first['n_clips']} synthetic clips of {first['n_samples']} samples "
                  f"against earshot's scoring (tolerance: {RTOL:g} x max(|threshold|, |score|) on scores"
                  + (f", {LOGMEL_TOL_DB:g} dB on the log-mel" if result.front_end == "waveform" else "")
                  + f"); contracts: {result.path}/<group>.json, index: {result.path}/index.json")
