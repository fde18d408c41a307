"""``earshot demo``: the main job end to end on built-in synthetic data."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from earshot.cli.common import fmt_cell, progress_bars


def register(app: typer.Typer, out, err) -> None:
    @app.command()
    def demo(
        out_dir: Annotated[Path, typer.Option("--out", help="Folder for the data, the models and the reports.")] = Path("earshot-demo"),
        full: Annotated[bool, typer.Option("--full", help="The full-size run: 3 machine types, 10 s clips, the default dense AE (minutes, not seconds).")] = False,
        seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    ) -> None:
        """Synthesise a small fleet with labelled faults, train, evaluate, find a fault in a long recording, summarise."""
        from earshot.pipeline.demo import FULL, QUICK, run_demo, threshold_sentence  # deferred: the library loads when a verb runs (fast --help)

        cfg = FULL if full else QUICK
        started = time.perf_counter()
        with progress_bars() as progress:
            result = run_demo(out_dir, cfg, seed=seed, progress=progress)
        kinds = list(result["models"])
        out.print(_metrics_table(result, cfg))
        out.print(_fault_table(result, kinds))
        for kind in kinds:  # what each model's manifests say its thresholds were fitted on
            out.print(threshold_sentence(kind, list(result["models"][kind]["thresholds"].values())) + ".")
        out.print("Precision, recall and F1 are for the anomaly class, at each model's stored threshold; the test "
                  "clips are clips no model trained on.")
        long, truth = result["long"], result["long"]["truth"]
        found = long["detect"]["events"]
        out.print(f"long recording ({long['group']}, {truth['duration_s']:.0f} s, {truth['fault']} from "
                  f"{truth['fault_start_s']:.0f} to {truth['fault_end_s']:.0f} s): {long['model']} found "
                  f"{len(found)} event(s)" + "".join(f"; {e['start_s']:.1f}-{e['end_s']:.1f} s" for e in found)
                  + f"; verdict {long['detect']['verdict']}")
        for what, path in result["outputs"].items():
            out.print(f"{what:>16}: {path}")
        out.print(f"done in {time.perf_counter() - started:.0f} s")


def _metrics_table(result: dict, cfg) -> Table:
    """One row per machine/id and model, then each model's mean."""
    table = Table(title=f"earshot demo: {len(cfg.machines)} machine types x {cfg.n_ids} ids, "
                        f"{cfg.n_normal} normal + {cfg.n_abnormal} abnormal clips of {cfg.duration_s:g} s each")
    for col in ("machine/id", "model", "AUC", "pAUC", "precision", "recall", "F1", "false alarms", "missed"):
        table.add_column(col, justify="left" if col in ("machine/id", "model") else "right")
    reports = {k: r["report"] for k, r in result["models"].items()}
    for name in next(iter(reports.values()))["groups"]:
        for kind, report in reports.items():
            g = report["groups"][name]
            table.add_row(name, kind, fmt_cell(g["auc"]), fmt_cell(g["pauc"]), fmt_cell(g["precision"]),
                          fmt_cell(g["recall"]), fmt_cell(g["f1"]), f"{g['fp']}/{g['n_normal']}", f"{g['fn']}/{g['n_anomaly']}")
    for kind, report in reports.items():
        m = report["mean"]
        table.add_row("mean", kind, fmt_cell(m["auc"]), fmt_cell(m["pauc"]), fmt_cell(m["precision"]),
                      fmt_cell(m["recall"]), fmt_cell(m["f1"]), "", "")
    return table


def _fault_table(result: dict, kinds: list[str]) -> Table:
    """AUC per fault type, one column per model."""
    table = Table(title="AUC per fault type (abnormal clips of that fault vs the normal test clips)")
    for col in ("machine", "fault", "clips", *(f"AUC {k}" for k in kinds)):
        table.add_column(col)
    auc = {(k, row["machine"], row["fault"]): row for k in kinds for row in result["models"][k]["by_fault"]}
    for row in result["models"][kinds[0]]["by_fault"]:
        table.add_row(row["machine"], row["fault"], str(row["n"]),
                      *(fmt_cell(auc.get((k, row["machine"], row["fault"]), {}).get("auc")) for k in kinds))
    return table
