"""``earshot info``: what a model holds (groups, threshold and method, features, training)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from earshot.cli.common import fmt_cell


def register(app: typer.Typer, out, err) -> None:
    @app.command()
    def info(
        model_dir: Annotated[Path, typer.Argument(metavar="MODEL", help="Model directory.")],
        as_json: Annotated[bool, typer.Option("--json", help="Print the manifests as JSON.")] = False,
    ) -> None:
        """What a model holds: groups, threshold and method, features, training summary."""
        from earshot.bundle import load_model  # deferred: loads when run (fast --help)

        model = load_model(model_dir)
        if as_json:
            data = {"path": str(model.path), "group_by": model.group_by,
                    "groups": {g: b.manifest for g, b in model.bundles.items()}}
            sys.stdout.write(json.dumps(data, indent=2) + "\n")
            return
        first = next(iter(model.bundles.values())).manifest
        f = first["features"]
        out.print(f"model: {model.path}  ({len(model.bundles)} group(s), grouped by {model.group_by})")
        out.print(f"detector: {first['model']['kind']}  params: {json.dumps(first['model']['params'])}")
        out.print(f"features: log-mel sr={f['sr']} n_fft={f['n_fft']} hop_length={f['hop_length']} n_mels={f['n_mels']} "
                  f"n_frames={f['n_frames']} channel={'mean' if f.get('channel') is None else f['channel']}")
        out.print(f"score: {first['score_direction']}, clip score = {first['aggregate']} of window scores; "
                  f"written by earshot {first['versions']['earshot']} on {first['created_at']}")
        table = Table()
        best = {g: (b.manifest["fitted"].get("history") or {}).get("best_epoch") for g, b in model.bundles.items()}
        epochs = any(e is not None for e in best.values())  # models without epochs (gauss, knn...): no column
        for col in ("group", "threshold", "method", "fitted on", "train clips", "false alarms (held-out)",
                    *(("best epoch",) if epochs else ())):
            table.add_column(col)
        for g, b in model.bundles.items():
            m = b.manifest
            table.add_row(g, fmt_cell(m["threshold"]["value"], 4), m["threshold"]["method"],
                          f"{m['threshold']['source']} ({m['threshold']['n_clips']} clips)",
                          str(m["training"].get("n_clips")), fmt_cell(m["validation"].get("false_alarm_rate"), 2),
                          *((fmt_cell(best[g]),) if epochs else ()))
        out.print(table)
        for g, b in model.bundles.items():  # --model auto: which detector each group got, and why
            sel = b.manifest["fitted"].get("selection")
            if sel:
                out.print(f"{g}: auto chose {sel.get('chosen')}: {sel.get('reason')}")
