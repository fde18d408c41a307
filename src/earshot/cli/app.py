"""The ``earshot`` command line: a thin layer over the library.

Library errors become one line on stderr and exit code 1 (2 for usage errors); long work
shows a progress bar on stderr; machine-readable results go to stdout or files.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import re
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from earshot.cli.channel_option import Channels, resolve_channels
from earshot.errors import EarshotError, EarshotWarning

app = typer.Typer(
    name="earshot",
    help="Listen to industrial machines and tell when one sounds wrong.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Wide when not a terminal, so tables written to a file or a pipe keep one row per line.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else 200)
log = logging.getLogger("earshot")


# ---------------------------------------------------------------------- plumbing
class _OneLineHandler(logging.Handler):
    """Log records as ``earshot: level: message``, one line each."""

    def emit(self, record: logging.LogRecord) -> None:
        lines = record.getMessage().strip().splitlines() or [""]
        if record.name == "py.warnings":  # "file:line: Category: message" then the source line
            text = re.sub(r"^.*?:\d+: \w+: ", "", lines[0])
        else:
            text = " ".join(line.strip() for line in lines)
        sys.stderr.write(f"earshot: {record.levelname.lower()}: {text}\n")


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = _OneLineHandler()
    for name in ("earshot", "py.warnings"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    logging.captureWarnings(True)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    # earshot's own warnings are logged by the library as well: show them once
    warnings.filterwarnings("ignore", category=EarshotWarning)


@contextlib.contextmanager
def _progress(enabled: bool = True):
    """A progress callback ``(stage, done, total)`` drawing rich bars on stderr."""
    if not enabled or not err.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as bar:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


@app.callback()
def _root(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log lines (-vv for debug).")] = 0,
) -> None:
    """Listen to industrial machines and tell when one sounds wrong."""
    _setup_logging(verbose)


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.{digits}f}"
    return str(value)


def _domain_table(groups: dict, summaries: dict, models: list[str], title: str, keys=None) -> Table | None:
    """Per (group, domain) rows of the per-domain metrics (DCASE 2022+ counting); None without domains."""
    from earshot.reports.domain_tables import DOMAIN_COLUMNS, domain_rows

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
        table.add_row(g, d, *(_fmt((cells.get(n) or {}).get(k)) if k in (cells.get(n) or {}) else ""
                              for n in models for k, _ in cols))
    return table


# ---------------------------------------------------------------------- train
def _parse_params(items: list[str]) -> dict:
    """``["hidden=64", "lr=1e-3", "flag=true"]`` -> typed dict (JSON literals, else strings)."""
    from earshot.errors import ParameterError

    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"--param: expected KEY=VALUE, got {item!r}")
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    return params


@app.command()
def train(
    data: Annotated[Path, typer.Argument(help="Data folder (MIMII, DCASE, normal/abnormal folders), a manifest CSV, or a wav.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write.")],
    model: Annotated[str, typer.Option(help="Detector kind.")] = "dense-ae",
    group_by: Annotated[str, typer.Option(help="One model per: id | machine | none.")] = "id",
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs (default: the model's, 30 for dense-ae).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Windows per training step (default: the model's, 512 for dense-ae, 32 for cnn).")] = None,
    n_mels: Annotated[int, typer.Option(help="Mel bands.")] = 128,
    n_frames: Annotated[Optional[int], typer.Option(help="Context frames per window (default: the model's, 5 for dense-ae, 32 for cnn).")] = None,
    n_fft: Annotated[int, typer.Option(help="FFT length (samples).")] = 1024,
    hop_length: Annotated[int, typer.Option(help="Hop between frames (samples).")] = 512,
    sr: Annotated[int, typer.Option(help="Sample rate to decode at (Hz); other rates are resampled.")] = 16000,
    channel: Annotated[Optional[int], typer.Option(help="Channel to use (0-based); default: mean of all channels.")] = None,
    channels: Channels = None,
    threshold: Annotated[str, typer.Option(help="gamma:q | percentile:p | mean-std:k | max | value:x")] = "gamma:0.9",
    aggregate: Annotated[str, typer.Option(help="Window errors to clip score: mean | max | quantile:q")] = "mean",
    split_file: Annotated[Optional[Path], typer.Option(help="CSV with path,split[,label] overriding the split.")] = None,
    labels: Annotated[Optional[Path], typer.Option(help="CSV path,label (e.g. confirmed or rejected alarms): those clips become training clips with those labels; supervised models (cnn) need some.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (split, initial weights, shuffling).")] = 0,
    param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="Extra detector parameter KEY=VALUE (repeatable), e.g. -p hidden=64.")] = None,
    window_s: Annotated[float, typer.Option(help="Recordings longer than 30 s are cut into windows of this length (s); use detect's --window-s.")] = 1.0,
) -> None:
    """Train one detector per machine/id on normal clips; calibrate its threshold on normal clips only."""
    from earshot.features.config import FeatureConfig
    from earshot.pipeline import train as run_train

    from earshot.detection import SHARED_OPTIONS, detector_params, frames_needed  # deferred: keeps `earshot --help` fast

    # the shared options a detector has no parameter for (e.g. --epochs for gauss) are left out
    common = {"epochs": epochs, "batch_size": batch_size, "threshold": threshold, "aggregate": aggregate,
              "n_frames": n_frames}
    params = {**detector_params(model, common, optional=SHARED_OPTIONS), **_parse_params(param or [])}
    n_frames = frames_needed(model, params)
    features = FeatureConfig(sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                             n_frames=n_frames if isinstance(n_frames, int) and n_frames > 0 else 5)
    with _progress() as progress:
        result = run_train(data, out_dir, model=model, model_params=params, features=features,
                           channel=resolve_channels(channel, channels),
                           group_by=group_by, split_file=split_file, seed=seed, progress=progress, labels=labels,
                           window_s=window_s)
    table = Table(title=f"trained {len(result.groups)} model(s) -> {result.path}")
    for col in ("group", "clips", "threshold", "method", "fitted on", "false alarms (held-out)", "seconds"):
        table.add_column(col)
    for g, s in result.groups.items():
        table.add_row(g, str(s["n_clips"]), _fmt(s["threshold"], 4), s["threshold_method"], s["threshold_source"],
                      _fmt(s["false_alarm_rate"], 2), _fmt(s["fit_seconds"], 1))
    out.print(table)
    for g, why in result.skipped.items():
        err.print(f"earshot: warning: group {g} skipped: {why}")


# ---------------------------------------------------------------------- score
@app.command()
def score(
    model_dir: Annotated[Path, typer.Argument(metavar="MODEL", help="Model directory written by `earshot train`.")],
    files: Annotated[list[Path], typer.Argument(help="Audio files and folders to score (folders are walked).")],
    fmt: Annotated[str, typer.Option("--format", help="json | csv (stdout, without --out)")] = "json",
    group: Annotated[Optional[str], typer.Option(help="Score every file with this group's model.")] = None,
    out_file: Annotated[Optional[Path], typer.Option("--out", "-o", help="Stream the verdicts to this .csv (or .parquet) "
                        "file; a re-run with the same file skips the files already in it.")] = None,
    executor: Annotated[Optional[str], typer.Option(help="serial | processes | dask | dask=tcp://HOST:8786 "
                        "(default: $EARSHOT_EXECUTOR, else processes).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Worker processes (processes, embedded dask); default: the cores.")] = None,
    batch_size: Annotated[int, typer.Option(help="Files per task.")] = 128,
    cache: Annotated[Optional[Path], typer.Option(help="Feature cache folder (default: $EARSHOT_CACHE, else none).")] = None,
) -> None:
    """One verdict per file: path, group, score, threshold, is_anomalous."""
    from earshot.pipeline.batch import FIELDS, iter_scores, score_to_file
    from earshot.errors import ParameterError

    if fmt not in ("json", "csv"):
        raise ParameterError(f"--format: expected json or csv, got {fmt!r}")
    if out_file is not None:
        with _progress() as progress:
            res = score_to_file(model_dir, files, out_file, group=group, executor=executor, workers=workers,
                                batch_size=batch_size, cache=cache, progress=progress)
        out.print(f"scored {res.scored} files ({res.anomalous} anomalous, {res.errors} errors) in {res.seconds:.1f} s"
                  f"{f', skipped {res.skipped} already in the output' if res.skipped else ''} -> {res.out}")
        if res.errors:
            err.print(f"earshot: warning: {res.errors} files could not be scored (see the error column), "
                      f"e.g. {res.first_errors[0]}")
        return
    with _progress() as progress:
        rows = [{k: r[k] for k in FIELDS} for batch in iter_scores(
            model_dir, files, group=group, executor=executor, workers=workers, batch_size=batch_size,
            cache=cache, progress=progress) for r in batch]
    if fmt == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["path", "group", "score", "threshold", "is_anomalous"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        sys.stdout.write(buf.getvalue())


# ---------------------------------------------------------------------- evaluate
def _metrics_table(report: dict, title: str) -> Table:
    table = Table(title=title)
    cols = ("group", "AUC", "pAUC", "precision", "recall", "F1", "accuracy", "TP", "FP", "TN", "FN", "threshold")
    for col in cols:
        table.add_column(col, justify="left" if col == "group" else "right")
    for name, g in report["groups"].items():
        table.add_row(name, *(_fmt(g.get(k)) for k in ("auc", "pauc", "precision", "recall", "f1", "accuracy")),
                      *(str(g.get(k)) for k in ("tp", "fp", "tn", "fn")), _fmt(g.get("threshold"), 4))
    for label in ("mean", "hmean"):
        m = report[label]
        table.add_row(label, *(_fmt(m.get(k)) for k in ("auc", "pauc", "precision", "recall", "f1", "accuracy")),
                      "", "", "", "", "")
    return table


@app.command()
def evaluate(
    paths: Annotated[list[Path], typer.Argument(
        metavar="MODEL [MODEL...] DATA",
        help="Model directories written by `earshot train`, then the labelled data (any layout); clips a model "
             "trained on are left out. Several models: one table on the clips none of them trained on.")],
    split_file: Annotated[Optional[Path], typer.Option(help="CSV with path,split[,label].")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the full report as JSON here.")] = None,
    csv_out: Annotated[Optional[Path], typer.Option(
        "--csv", help="Write the metrics as one CSV table here (a row per model, group and domain; mean, hmean).")] = None,
    report_dir: Annotated[Optional[Path], typer.Option(
        "--report", help="Write a self-contained report.html (pictures inside) and report.json into this folder.")] = None,
) -> None:
    """Anomaly-class precision, recall, F1, confusion counts, ROC AUC and pAUC per group (or several models compared)."""
    from earshot._util.fs import atomic_file
    from earshot.bundle import load_model
    from earshot.evaluation.metrics import to_jsonable
    from earshot.pipeline import evaluate as run_evaluate

    if len(paths) < 2:
        raise typer.BadParameter("expected MODEL [MODEL...] DATA: at least one model and the data",
                                 param_hint="'MODEL [MODEL...] DATA'")
    *model_dirs, data = paths
    if csv_out is not None and csv_out.is_dir():
        from earshot.errors import ParameterError

        raise ParameterError(f"--csv {csv_out}: expected a file name, got a folder")
    if len(model_dirs) > 1:
        _compare(model_dirs, data, split_file=split_file, json_out=json_out, report_dir=report_dir, csv_out=csv_out)
        return
    model_dir = model_dirs[0]
    if report_dir is not None and report_dir.exists() and not report_dir.is_dir():
        from earshot.errors import ParameterError

        raise ParameterError(f"--report {report_dir}: expected a folder, got a file")
    model = load_model(model_dir)
    with _progress() as progress:
        report = run_evaluate(model, data, split_file=split_file, progress=progress)
    out.print(_metrics_table(report, f"{model_dir} on {data}"))
    by_domain = _domain_table({n: {"model": g} for n, g in report["groups"].items()}, {"model": report.get("domains", {})},
                              ["model"], "per domain (normal clips of the domain vs every anomaly of the group)")
    if by_domain is not None:
        out.print(by_domain)
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
        from earshot.evaluation.metrics_csv import metrics_rows, write_metrics_csv

        write_metrics_csv(metrics_rows(report["groups"], report, report.get("domains"), str(model_dir)), csv_out)
        out.print(f"metrics: {csv_out}")
    if report_dir is not None:
        from earshot.reports.evaluation import write_report

        page = write_report(report, model, report_dir, data=data)
        out.print(f"report: {page} (and {page.with_name('report.json')})")


def _compare(model_dirs: list[Path], data: Path, *, split_file, json_out, report_dir, csv_out=None) -> None:
    """``evaluate MODEL MODEL... DATA``: every model on the clips none of them trained on, one table."""
    from earshot._util.fs import atomic_file
    from earshot.bundle import load_model
    from earshot.pipeline.compare import compare_models
    from earshot.evaluation.metrics import to_jsonable

    names = [str(p) for p in model_dirs]
    with _progress() as progress:
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
            table.add_row(g, n, *(_fmt(m.get(k)) for k in keys), *(str(m.get(k)) for k in ("tp", "fp", "tn", "fn")))
    for label in ("mean", "hmean"):
        for n in names:
            table.add_row(label, n, *(_fmt(result[label][n].get(k)) for k in keys), "", "", "", "")
    out.print(table)
    by_domain = _domain_table(result["groups"], result.get("domains", {}), names,
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
        from earshot.evaluation.metrics_csv import metrics_rows, write_metrics_csv

        write_metrics_csv((row for n in names for row in metrics_rows(
            {g: per_model[n] for g, per_model in result["groups"].items()},
            {"mean": result["mean"][n], "hmean": result["hmean"][n]}, result.get("domains", {}).get(n), n)), csv_out)
        out.print(f"metrics: {csv_out}")
    if report_dir is not None:
        from earshot.reports.crossval import write_compare_report

        page = write_compare_report(result, report_dir)
        out.print(f"report: {page} (and {page.with_name('compare.json')})")


# ---------------------------------------------------------------------- info
@app.command()
def info(
    model_dir: Annotated[Path, typer.Argument(metavar="MODEL", help="Model directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifests as JSON.")] = False,
) -> None:
    """What a model holds: groups, threshold and method, features, training summary."""
    from earshot.bundle import load_model

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
    for col in ("group", "threshold", "method", "fitted on", "train clips", "false alarms (held-out)", "best epoch"):
        table.add_column(col)
    for g, b in model.bundles.items():
        m = b.manifest
        table.add_row(g, _fmt(m["threshold"]["value"], 4), m["threshold"]["method"],
                      f"{m['threshold']['source']} ({m['threshold']['n_clips']} clips)",
                      str(m["training"].get("n_clips")), _fmt(m["validation"].get("false_alarm_rate"), 2),
                      str(m["fitted"].get("history", {}).get("best_epoch")))
    out.print(table)
    for g, b in model.bundles.items():  # --model auto: which detector each group got, and why
        sel = b.manifest["fitted"].get("selection")
        if sel:
            out.print(f"{g}: auto chose {sel.get('chosen')}: {sel.get('reason')}")


# ---------------------------------------------------------------------- more verbs
from earshot.cli.commands import register_all  # noqa: E402

register_all(app, out, err)


# ---------------------------------------------------------------------- entry point
#: Optional top-level packages -> the extra that installs them.
_EXTRAS = {"torch": "train", "onnx": "train", "matplotlib": "plots", "fastapi": "serve", "uvicorn": "serve",
           "sqlalchemy": "serve", "sounddevice": "live", "dask": "dask", "distributed": "dask", "pyarrow": "parquet"}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code (1 for earshot errors, 2 for usage)."""
    try:
        app(args=argv, prog_name="earshot", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        sys.stderr.write("earshot: aborted\n")
        return 130
    except typer.TyperException as exc:  # usage errors: click's message and exit code 2
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            sys.stderr.write(f"earshot: error: {exc}\n")
        return int(getattr(exc, "exit_code", 2))
    except EarshotError as exc:
        sys.stderr.write(f"earshot: error: {exc}\n")
        return 1
    except ModuleNotFoundError as exc:  # an optional extra is not installed (e.g. the edge install)
        extra = _EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        sys.stderr.write(f"earshot: error: this command needs {exc.name}, which is not installed: "
                         f"pip install 'earshot[{extra}]'\n")
        return 1
    except OSError as exc:  # disk full, permission denied...: still one line
        sys.stderr.write(f"earshot: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("earshot: interrupted\n")
        return 130
    return 0


def _entry() -> None:
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    _entry()
