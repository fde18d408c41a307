"""``earshot faults``: which confirmed fault does each new anomalous clip resemble?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from earshot.cli.options import ModelDir
from earshot.errors import ParameterError


def print_confusion(out, res: dict, title: str) -> None:
    """Print ``res["confusion"]`` (:func:`earshot.pipeline.faults.fault_confusion`) as a text matrix."""
    names, counts = res["confusion"]["names"], res["confusion"]["counts"]
    width = max(len(n) for n in names) + 2
    out.print(f"{title}; right: {res['accuracy']:.1%}", markup=False, highlight=False)
    out.print("".ljust(width) + "".join(n[:width - 2].rjust(width) for n in names), markup=False, highlight=False)
    for name, row in zip(names, counts):
        out.print(name.ljust(width) + "".join(str(v).rjust(width) for v in row), markup=False, highlight=False)


def register(app: typer.Typer, out, err) -> None:
    @app.command()
    def faults(
        model_dir: ModelDir,
        labels: Annotated[Path, typer.Argument(metavar="LABELS_CSV", help="CSV with path and fault columns: the "
                          "confirmed anomalies and their fault type (paths relative to the CSV; empty fault: skipped). "
                          "Given alone (earshot faults MODEL FOLDER): the folder of new clips, matched against the "
                          "signatures train --labels stored in the model.")],
        folder: Annotated[Optional[Path], typer.Argument(metavar="FOLDER_OF_NEW_CLIPS", help="New anomalous clips (.wav/.flac, "
                          "walked). Those the CSV gives a fault are left out of the signatures and scored against it.")] = None,
        json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the full result to this JSON file.")] = None,
        group: Annotated[Optional[str], typer.Option(help="The group's model to use (a model with several groups).")] = None,
        quantile: Annotated[float, typer.Option(help="Quantile of the labelled clips' leave-one-out distances used as "
                            "the 'unlike any confirmed fault' threshold (0 < q <= 1).")] = 0.95,
    ) -> None:
        """Closest confirmed fault of each new clip with its distance, or 'unlike any confirmed fault'."""
        from earshot._util.fs import atomic_file  # deferred: loads when run (fast --help)
        from earshot.pipeline.faults import closest_faults, stored_closest_faults  # deferred: as above

        if folder is None:  # MODEL FOLDER: the model's stored signatures (their threshold was set at training)
            if quantile != 0.95:
                raise ParameterError("--quantile: applies to LABELS_CSV only (the stored threshold was set at training)")
            res = stored_closest_faults(model_dir, labels, group=group)
        else:
            res = closest_faults(model_dir, labels, folder, group=group, quantile=quantile)
        out.print(f"{res['n_labelled']} confirmed clips of {len(res['faults'])} faults ({', '.join(res['faults'])}); "
                  f"unlike threshold {res['threshold']:.3f} (scale: {res['scale_source']})")
        for c in res["clips"]:
            truth = f"  (labelled {c['true_fault']})" if "true_fault" in c else ""
            out.print(f"{c['path']}\t{c['answer']}\t{c['distance']:.3f}{truth}", markup=False, highlight=False)
        if "confusion" in res:
            print_confusion(out, res, "confusion matrix of fault types (rows: labelled, columns: answer)")
        if json_out is not None:
            with atomic_file(json_out, encoding="utf-8") as fh:
                json.dump(res, fh, indent=2)
                fh.write("\n")
