"""``earshot evaluate``: anomaly-class metrics of one model, or of several compared on the same clips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from earshot._util.fs import atomic_file
from earshot.cli.common import fmt_cell, out, progress_bars
from earshot.cli.faults import print_confusion
from earshot.errors import ParameterError
from earshot.reports.domain_tables import DOMAIN_COLUMNS, domain_rows


def domain_table(groups: dict, summaries: dict, models: list[str], title: str, keys=None) -> Table | None:
    """Per (group, domain) rows of the per-domain metrics (DCASE 2022+ counting); None without domains."""
    rows = domain_rows(groups, summaries, models)
    if not rows:
        return None
    cols = [c for c in DOMAIN_COLUMNS if keys is None or c[0] in keys]
    table = Table(title=title)
    table.add_column("group")
    table.add_column("domain")
    for n in models:
        for _, h in cols:
            table.add_column(f"{h} {n}" if len(models) > 1 else h, justify="right")
    for g, d, cells in rows:
        table.add_row(g, d, *(fmt_cell((cells.get(n) or {}).get(k)) if k in (cells.get(n) or {}) else ""
                              for n in models for k, _ in cols))
    return table


def metrics_table(report: dict, title: str) -> Table:
    """One row per group (metrics, confusion counts, threshold), then the mean and hmean rows."""
    table = Table(title=title)
    cols = ("group", "AUC", "pAUC", "precision", "recall", "F1", "accuracy", "TP", "FP", "TN", "FN", "threshold")
    for col in cols:
        table.add_column(col, justify="left" if col == "group" else "right")
    for name, g in report["groups"].items():
        table.add_row(name, *(fmt_cell(g.get(k)) for k in ("auc", "pauc", "precision", "recall", "f1", "accuracy")),
                      *(str(g.get(k)) for k in ("tp", "fp", "tn", "fn")), fmt_cell(g.get("threshold"), 4))
    for label in ("mean", "hmean"):
        m = report[label]
        table.add_row(label, *(fmt_cell(m.get(k)) for k in ("auc", "pauc", "precision", "recall", "f1", "accuracy")),
                      "", "", "", "", "")
    return table


def undefined_auc_lines(groups: dict) -> list[str]:
    """Why a group's AUC is ``n/a``, as the HTML report says: ``"fan/id_00: AUC n/a: 0 normal test clips
    (12 anomaly)"``; means leave such groups out."""
    lines = []
    for name, g in groups.items():
        missing = [what for what, key in (("normal", "n_normal"), ("anomaly", "n_anomaly")) if not g.get(key)]
        if missing:
            have = [f"{g.get(k) or 0} {w}" for w, k in (("normal", "n_normal"), ("anomaly", "n_anomaly")) if g.get(k)]
            lines.append(f"{name}: AUC n/a, pAUC n/a: 0 {' and 0 '.join(missing)} test clips"
                         + (f" ({', '.join(have)})" if have else "") + "; the means leave this group out.")
    return lines


def register(app: typer.Typer, out, err) -> None:
    @app.command()
    def evaluate(
        paths: Annotated[list[Path], typer.Argument(
            metavar="MODEL [MODEL...] DATA",
            help="Model directories written by `earshot train`, then the labelled data (any layout); clips a model "
                 "trained on are left out. Several models: one table on the clips none of them trained on.")],
        split_file: Annotated[Optional[Path], typer.Option(
            help="CSV with path,split[,label][,fault] (fault: an anomaly's fault type; with three or more, a "
                 "confusion matrix of fault types).")] = None,
        json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the full report as JSON here.")] = None,
        csv_out: Annotated[Optional[Path], typer.Option(
            "--csv", help="Write the metrics as one CSV table here (a row per model, group and domain; mean, hmean).")] = None,
        report_dir: Annotated[Optional[Path], typer.Option(
            "--report", help="Write a self-contained report.html (pictures inside) and report.json into this folder.")] = None,
    ) -> None:
        """Anomaly-class precision, recall, F1, confusion counts, ROC AUC and pAUC per group (or several models compared)."""
        if len(paths) < 2:
            raise typer.BadParameter("expected MODEL [MODEL...] DATA: at least one model and the data",
                                     param_hint="'MODEL [MODEL...] DATA'")
        *model_dirs, data = paths
        if csv_out is not None and csv_out.is_dir():
            raise ParameterError(f"--csv {csv_out}: expected a file name, got a folder")
        if len(model_dirs) > 1:
            compare(model_dirs, data, split_file=split_file, json_out=json_out, report_dir=report_dir, csv_out=csv_out)
            return
        if report_dir is not None and report_dir.exists() and not report_dir.is_dir():
            raise ParameterError(f"--report {report_dir}: expected a folder, got a file")
        evaluate_one(model_dirs[0], data, split_file=split_file, json_out=json_out, report_dir=report_dir, csv_out=csv_out)


def evaluate_one(model_dir: Path, data: Path, *, split_file, json_out, report_dir, csv_out) -> None:
    """``evaluate MODEL DATA``: the metrics table, the per-domain table and the files asked for."""
    from earshot.bundle import load_model  # deferred: the library loads when a verb runs (fast --help)
    from earshot.evaluation.metrics import to_jsonable  # deferred: as above
    from earshot.pipeline import evaluate as run_evaluate  # deferred: as above

    model = load_model(model_dir)
    with progress_bars() as progress:
        report = run_evaluate(model, data, split_file=split_file, progress=progress)
    out.print(metrics_table(report, f"{model_dir} on {data}"))
    for line in undefined_auc_lines(report["groups"]):
        out.print(line)
    by_domain = domain_table({n: {"model": g} for n, g in report["groups"].items()}, {"model": report.get("domains", {})},
                             ["model"], "per domain (normal clips of the domain vs every anomaly of the group)")
    if by_domain is not None:
        out.print(by_domain)
    for name, g in report["groups"].items():
        if "faults" in g:
            print_confusion(out, g["faults"], f"{name}: fault types of {g['faults']['n_labelled']} anomalies, each "
                                              "answered by the others (leave-one-out; rows: labelled, columns: answer)")
    methods = sorted({f"{g['threshold_method']} ({g['threshold_source']})" for g in report["groups"].values()})
    f1 = any(str(g["threshold_source"]).endswith("f1") for g in report["groups"].values())
    out.print(f"threshold: {', '.join(methods)}; " + ("F1-optimal on labelled clips drawn from the training data (asked "
              "for with threshold f1). " if f1 else "fitted on normal training clips only. ")
              + f"pAUC: {report['definitions']['pauc']}.")
    if json_out is not None:
        with atomic_file(json_out) as fh:
            json.dump(to_jsonable(report), fh, indent=2)
        out.print(f"report: {json_out}")
    if csv_out is not None:
        from earshot.evaluation.metrics_csv import metrics_rows, write_metrics_csv  # deferred: as above

        write_metrics_csv(metrics_rows(report["groups"], report, report.get("domains"), str(model_dir)), csv_out)
        out.print(f"metrics: {csv_out}")
    if report_dir is not None:
        from earshot.reports.evaluation import write_report  # deferred: as above (and matplotlib)

        page = write_report(report, model, report_dir, data=data)
        out.print(f"report: {page} (and {page.with_name('report.json')})")


def compare(model_dirs: list[Path], data: Path, *, split_file, json_out, report_dir, csv_out=None) -> None:
    """``evaluate MODEL MODEL... DATA``: every model on the clips none of them trained on, one table."""
    from earshot.bundle import load_model  # deferred: the library loads when a verb runs (fast --help)
    from earshot.evaluation.metrics import to_jsonable  # deferred: as above
    from earshot.pipeline.compare import compare_models  # deferred: as above

    names = [str(p) for p in model_dirs]
    with progress_bars() as progress:
        result = compare_models([(n, load_model(p)) for n, p in zip(names, model_dirs)], data,
                                split_file=split_file, progress=progress)
    keys = ("auc", "pauc", "precision", "recall", "f1", "accuracy")
    table = Table(title=f"{len(names)} models on the same {result['n_clips']} clips of {data} "
                        f"({result['n_normal']} normal, {result['n_anomaly']} anomaly)")
    for col in ("group", "model", "AUC", "pAUC", "precision", "recall", "F1", "accuracy", "TP", "FP", "TN", "FN"):
        table.add_column(col, justify="left" if col in ("group", "model") else "right")
    for g, per_model in result["groups"].items():
        for n in names:
            m = per_model[n]
            table.add_row(g, n, *(fmt_cell(m.get(k)) for k in keys), *(str(m.get(k)) for k in ("tp", "fp", "tn", "fn")))
    for label in ("mean", "hmean"):
        for n in names:
            table.add_row(label, n, *(fmt_cell(result[label][n].get(k)) for k in keys), "", "", "", "")
    out.print(table)
    by_domain = domain_table(result["groups"], result.get("domains", {}), names,
                             "per domain (normal clips of the domain vs every anomaly of the group)", keys=("auc", "pauc"))
    if by_domain is not None:
        out.print(by_domain)
    left = "; ".join(f"{n}: {v['trained on by another model']}" for n, v in result["excluded"].items())
    out.print(f"test set: the labelled clips none of the models trained on (clips left out because another model "
              f"trained on them: {left}). Each model decides at its own threshold.")
    if json_out is not None:
        with atomic_file(json_out) as fh:
            json.dump(to_jsonable(result), fh, indent=2)
        out.print(f"report: {json_out}")
    if csv_out is not None:
        from earshot.evaluation.metrics_csv import metrics_rows, write_metrics_csv  # deferred: as above

        write_metrics_csv((row for n in names for row in metrics_rows(
            {g: per_model[n] for g, per_model in result["groups"].items()},
            {"mean": result["mean"][n], "hmean": result["hmean"][n]}, result.get("domains", {}).get(n), n)), csv_out)
        out.print(f"metrics: {csv_out}")
    if report_dir is not None:
        from earshot.reports.crossval import write_compare_report  # deferred: as above (and matplotlib)

        page = write_compare_report(result, report_dir)
        out.print(f"report: {page} (and {page.with_name('compare.json')})")
