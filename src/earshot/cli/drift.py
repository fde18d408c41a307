"""``earshot drift``: has a machine's sound drifted from what its model was trained on?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from earshot.cli.options import ModelDir


def register(app: typer.Typer, out, err) -> None:
    @app.command()
    def drift(
        model_dir: ModelDir,
        folder: Annotated[Path, typer.Argument(metavar="FOLDER_OF_RECENT_CLIPS", help="Recent clips of the machine (.wav/.flac, walked).")],
        json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the full result to this JSON file.")] = None,
        group: Annotated[Optional[str], typer.Option(help="The group's model to use (a model with several groups).")] = None,
        alpha: Annotated[float, typer.Option(help="False drift alarm rate of a steady machine (0 < alpha < 1).")] = 0.01,
        labels: Annotated[Optional[Path], typer.Option(help="CSV path,label of the team's verdicts on recent clips: "
                          "confirmed anomalies (1) are left out, rejected false alarms (0 and flagged) count as drift.")] = None,
        top: Annotated[int, typer.Option(help="Mel bands listed.", min=1)] = 5,
    ) -> None:
        """Drift score of recent clips vs the model's training data: score distribution and moved mel bands."""
        from earshot._util.fs import atomic_file  # deferred: loads when run (fast --help)
        from earshot.pipeline.drift import drift_report  # deferred: loads when run (fast --help)

        res = drift_report(model_dir, folder, group=group, alpha=alpha, labels=labels, top=top)
        verdict = "[bold red]DRIFTED[/]" if res["drifted"] else "[green]no drift[/]"
        out.print(f"drift: {verdict}  score {res['score']:.3f} (KS D), threshold {res['threshold']:.3f} "
                  f"(alpha {res['alpha']:g}; {res['n_recent']} recent clips vs {res['n_reference']} "
                  f"{res['reference_source']} reference scores)")
        out.print(f"scores moved {res['mean_shift']:+.2f} reference sd; above the model threshold: "
                  f"{res['exceed_rate_recent']:.0%} recent vs {res['exceed_rate_reference']:.0%} in training")
        if res["n_rejected"] is not None:
            out.print(f"rejected false alarms: {res['n_rejected']} (p = {res['rejected_p_value']:.2g}); "
                      f"confirmed anomalies left out: {res['n_confirmed_left_out']}")
        for reason in res["reasons"]:
            out.print(f"  - {reason}")
        if res["bands"]:
            out.print(f"mel bands that moved most (vs {res['band_reference']}):")
            for b in res["bands"]:
                z = f"  ({b['z']:+.1f} training sd)" if "z" in b else ""
                out.print(f"  {b['lo_hz']:>6d}-{b['hi_hz']:<6d} Hz  {b['shift_db']:+6.2f} dB{z}")
        if json_out is not None:
            with atomic_file(json_out, encoding="utf-8") as fh:
                json.dump(res, fh, indent=2)
                fh.write("\n")
