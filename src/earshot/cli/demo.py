"""``earshot demo``: the main job end to end on built-in synthetic data."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from earshot.cli.common import fmt_cell, progress_bars

#: (machines, ids, normal, abnormal, epochs) for the full and the quick demo.
FULL = {"machines": ("fan", "pump", "bearing"), "n_ids": 2, "n_normal": 60, "n_abnormal": 20, "epochs": 20}
QUICK = {"machines": ("fan", "bearing"), "n_ids": 2, "n_normal": 30, "n_abnormal": 10, "epochs": 8}


def register(app: typer.Typer, out, err) -> None:
    @app.command()
    def demo(
        out_dir: Annotated[Path, typer.Option("--out", help="Folder for the data, the model and the reports.")] = Path("earshot-demo"),
        quick: Annotated[bool, typer.Option("--quick", help="A smaller fleet and fewer epochs (under a minute).")] = False,
        seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    ) -> None:
        """Synthesise a small fleet with labelled faults, train, evaluate, and summarise."""
        from earshot.pipeline.demo import run_demo  # deferred: the library loads when a verb runs (fast --help)

        cfg = QUICK if quick else FULL
        started = time.perf_counter()
        with progress_bars() as progress:
            result = run_demo(out_dir, seed=seed, progress=progress, **cfg)
        report = result["report"]
        table = Table(title=f"earshot demo: {len(cfg['machines'])} machine types x {cfg['n_ids']} ids, "
                            f"{cfg['n_normal']} normal + {cfg['n_abnormal']} abnormal clips each")
        for col in ("machine/id", "AUC", "pAUC", "precision", "recall", "F1", "false alarms", "missed"):
            table.add_column(col, justify="left" if col == "machine/id" else "right")
        for name, g in report["groups"].items():
            table.add_row(name, fmt_cell(g["auc"]), fmt_cell(g["pauc"]), fmt_cell(g["precision"]), fmt_cell(g["recall"]),
                          fmt_cell(g["f1"]), f"{g['fp']}/{g['n_normal']}", f"{g['fn']}/{g['n_anomaly']}")
        m = report["mean"]
        table.add_row("mean", fmt_cell(m["auc"]), fmt_cell(m["pauc"]), fmt_cell(m["precision"]), fmt_cell(m["recall"]),
                      fmt_cell(m["f1"]), "", "")
        out.print(table)
        if result.get("by_fault"):
            faults = Table(title="AUC per fault type (abnormal clips of that fault vs the normal test clips)")
            for col in ("machine", "fault", "clips", "AUC"):
                faults.add_column(col)
            for row in result["by_fault"]:
                faults.add_row(row["machine"], row["fault"], str(row["n"]), fmt_cell(row["auc"]))
            out.print(faults)
        out.print("Thresholds were fitted on held-out normal clips only; precision, recall and F1 are for the anomaly class.")
        for what, path in result["outputs"].items():
            out.print(f"{what:>8}: {path}")
        out.print(f"done in {time.perf_counter() - started:.0f} s")
