"""``earshot score``: one verdict per file (path, group, score, threshold, is_anomalous)."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from earshot.cli.common import progress_bars
from earshot.cli.options import ModelDir
from earshot.errors import ParameterError


def register(app: typer.Typer, out, err) -> None:
    @app.command()
    def score(
        model_dir: ModelDir,
        files: Annotated[list[Path], typer.Argument(metavar="FILE", help="Audio files and folders to score (folders are walked).")],
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
        from earshot.pipeline.batch import iter_scores, score_fields, score_to_file  # deferred: loads when run (fast --help)

        if fmt not in ("json", "csv"):
            raise ParameterError(f"--format: expected json or csv, got {fmt!r}")
        if out_file is not None:
            with progress_bars() as progress:
                res = score_to_file(model_dir, files, out_file, group=group, executor=executor, workers=workers,
                                    batch_size=batch_size, cache=cache, progress=progress)
            out.print(f"scored {res.scored} files ({res.anomalous} anomalous, {res.errors} errors) in {res.seconds:.1f} s"
                      f"{f', skipped {res.skipped} already in the output' if res.skipped else ''} -> {res.out}")
            if res.errors:
                err.print(f"earshot: warning: {res.errors} files could not be scored (see the error column), "
                          f"e.g. {res.first_errors[0]}")
            return
        fields = score_fields(model_dir)  # plus fault, fault_distance, fault_known: a model with fault signatures
        with progress_bars() as progress:
            rows = [{k: r.get(k) for k in fields} for batch in iter_scores(
                model_dir, files, group=group, executor=executor, workers=workers, batch_size=batch_size,
                cache=cache, progress=progress) for r in batch]
        if fmt == "json":
            # strict JSON: a non-finite score (never a threshold: refused on load) is written as null
            safe = [{k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in r.items()} for r in rows]
            sys.stdout.write(json.dumps(safe, indent=2, allow_nan=False) + "\n")
        else:
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            sys.stdout.write(buf.getvalue())
