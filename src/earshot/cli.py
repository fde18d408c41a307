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
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from earshot.errors import EarshotError

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
    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage().strip().splitlines()
        text = msg[-1] if record.name == "py.warnings" and msg else " ".join(msg)
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
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 30,
    batch_size: Annotated[int, typer.Option(help="Windows per training step.")] = 512,
    n_mels: Annotated[int, typer.Option(help="Mel bands.")] = 128,
    n_frames: Annotated[int, typer.Option(help="Context frames per window.")] = 5,
    n_fft: Annotated[int, typer.Option(help="FFT length (samples).")] = 1024,
    hop_length: Annotated[int, typer.Option(help="Hop between frames (samples).")] = 512,
    sr: Annotated[int, typer.Option(help="Sample rate to decode at (Hz); other rates are resampled.")] = 16000,
    channel: Annotated[Optional[int], typer.Option(help="Channel to use (0-based); default: mean of all channels.")] = None,
    threshold: Annotated[str, typer.Option(help="gamma:q | percentile:p | mean-std:k | max | value:x")] = "gamma:0.9",
    aggregate: Annotated[str, typer.Option(help="Window errors to clip score: mean | max | quantile:q")] = "mean",
    split_file: Annotated[Optional[Path], typer.Option(help="CSV with path,split[,label] overriding the split.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (split, initial weights, shuffling).")] = 0,
    param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="Extra detector parameter KEY=VALUE (repeatable), e.g. -p hidden=64.")] = None,
) -> None:
    """Train one detector per machine/id on normal clips; calibrate its threshold on normal clips only."""
    from earshot.features.config import FeatureConfig
    from earshot.pipeline import train as run_train

    features = FeatureConfig(sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, n_frames=n_frames)
    params = {"epochs": epochs, "batch_size": batch_size, "threshold": threshold, "aggregate": aggregate,
              "n_frames": n_frames, **_parse_params(param or [])}
    with _progress() as progress:
        result = run_train(data, out_dir, model=model, model_params=params, features=features, channel=channel,
                           group_by=group_by, split_file=split_file, seed=seed, progress=progress)
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
    files: Annotated[list[Path], typer.Argument(help="Audio files to score.")],
    fmt: Annotated[str, typer.Option("--format", help="json | csv")] = "json",
    group: Annotated[Optional[str], typer.Option(help="Score every file with this group's model.")] = None,
) -> None:
    """One verdict per file: path, group, score, threshold, is_anomalous."""
    from earshot.bundle import load_model
    from earshot.errors import ParameterError
    from earshot.pipeline import score_files

    if fmt not in ("json", "csv"):
        raise ParameterError(f"--format: expected json or csv, got {fmt!r}")
    model = load_model(model_dir)
    with _progress() as progress:
        rows = score_files(model, files, group=group, progress=progress)
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
    model_dir: Annotated[Path, typer.Argument(metavar="MODEL", help="Model directory written by `earshot train`.")],
    data: Annotated[Path, typer.Argument(help="Labelled data (any layout); clips the model trained on are left out.")],
    split_file: Annotated[Optional[Path], typer.Option(help="CSV with path,split[,label].")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the full report as JSON here.")] = None,
    report_dir: Annotated[Optional[Path], typer.Option(
        "--report", help="Write a self-contained report.html (pictures inside) and report.json into this folder.")] = None,
) -> None:
    """Anomaly-class precision, recall, F1, confusion counts, ROC AUC and pAUC per group."""
    from earshot._fs import atomic_file
    from earshot.bundle import load_model
    from earshot.evaluation.metrics import to_jsonable
    from earshot.pipeline import evaluate as run_evaluate

    if report_dir is not None and report_dir.exists() and not report_dir.is_dir():
        from earshot.errors import ParameterError

        raise ParameterError(f"--report {report_dir}: expected a folder, got a file")
    model = load_model(model_dir)
    with _progress() as progress:
        report = run_evaluate(model, data, split_file=split_file, progress=progress)
    out.print(_metrics_table(report, f"{model_dir} on {data}"))
    methods = sorted({f"{g['threshold_method']} ({g['threshold_source']})" for g in report["groups"].values()})
    out.print(f"threshold: {', '.join(methods)}; fitted on normal training clips only. "
              f"pAUC: {report['definitions']['pauc']}.")
    if json_out is not None:
        with atomic_file(json_out) as fh:
            json.dump(to_jsonable(report), fh, indent=2)
        out.print(f"report: {json_out}")
    if report_dir is not None:
        from earshot.report import write_report

        page = write_report(report, model, report_dir, data=data)
        out.print(f"report: {page} (and {page.with_name('report.json')})")


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
    out.print(f"score: {first['score_direction']}, clip score = {first['aggregate']} of window errors; "
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


# ---------------------------------------------------------------------- more verbs
from earshot.commands import register_all  # noqa: E402

register_all(app, out, err)


# ---------------------------------------------------------------------- entry point
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
