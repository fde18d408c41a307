"""The main job end to end on built-in synthetic data: synthesise, train, evaluate, report.

An edge module (like the CLI): it joins :mod:`earshot.synth`, :mod:`earshot.pipeline` and,
where installed, the HTML report.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from earshot._util.fs import atomic_file
from earshot.bundle import load_model
from earshot.errors import ParameterError
from earshot.evaluation.metrics import roc_auc, to_jsonable
from earshot.pipeline import Progress
from earshot.pipeline.evaluate import evaluate
from earshot.pipeline.train import train
from earshot.synth import synthesize

__all__ = ["run_demo", "auc_by_fault"]

log = logging.getLogger(__name__)


def auc_by_fault(report: dict[str, Any], manifest_csv: Path) -> list[dict[str, Any]]:
    """AUC of each fault type's abnormal clips against the normal test clips of the same machine/id.

    Uses the ground truth the synthesiser wrote (``fault`` column of ``manifest.csv``).
    """
    root = manifest_csv.parent
    fault_of: dict[str, str] = {}
    with open(manifest_csv, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row.get("fault"):
                fault_of[os.path.abspath(root / row["path"])] = row["fault"]
    rows = []
    by_key: dict[tuple[str, str], list[tuple[list[float], list[float]]]] = {}
    for group, g in report["groups"].items():
        machine = group.split("/")[0]
        normals = [c["score"] for c in g["clips"] if c["label"] == 0]
        faults: dict[str, list[float]] = {}
        for c in g["clips"]:
            if c["label"] == 1 and c["path"] in fault_of:
                faults.setdefault(fault_of[c["path"]], []).append(c["score"])
        for fault, scores in faults.items():
            by_key.setdefault((machine, fault), []).append((normals, scores))
    for (machine, fault), parts in sorted(by_key.items()):
        aucs = [roc_auc(np.r_[np.zeros(len(n)), np.ones(len(p))], np.r_[n, p]) for n, p in parts if n and p]
        rows.append({"machine": machine, "fault": fault, "n": sum(len(p) for _, p in parts),
                     "auc": float(np.mean(aucs)) if aucs else float("nan")})
    return rows


def run_demo(
    out_dir: str | os.PathLike,
    *,
    machines: Sequence[str],
    n_ids: int,
    n_normal: int,
    n_abnormal: int,
    epochs: int,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Synthesise a fleet, train one model per machine/id, evaluate on held-out clips.

    Returns
    -------
    dict
        ``report`` (as :func:`earshot.pipeline.evaluate`), ``by_fault`` (AUC per fault
        type), ``outputs`` (what was written where).
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not (out / "data" / "manifest.csv").exists():
        raise ParameterError(f"--out: {out} exists and is not an earlier demo folder; choose another")
    data, model_dir = out / "data", out / "model"
    if data.exists():
        shutil.rmtree(data)  # a demo folder is ours to rewrite
    out.mkdir(parents=True, exist_ok=True)
    manifest = synthesize(data, machines=tuple(machines), n_ids=n_ids, n_normal=n_normal,
                          n_abnormal=n_abnormal, seed=seed, n_jobs=-1)
    train(data, model_dir, model_params={"epochs": epochs}, seed=seed, progress=progress)
    model = load_model(model_dir)
    report = evaluate(model, data, progress=progress)
    by_fault = auc_by_fault(report, Path(manifest))
    outputs = {"data": data, "model": model_dir}
    with atomic_file(out / "report.json") as fh:
        json.dump(to_jsonable({**report, "by_fault": by_fault}), fh, indent=2)
    outputs["json"] = out / "report.json"
    try:
        from earshot.reports.evaluation import write_report  # deferred: the HTML report is optional (plots extra)
    except ImportError:  # the HTML report needs matplotlib (the plots extra)
        log.info("matplotlib not installed: no HTML report")
    else:
        outputs["report"] = write_report(report, model, out / "report")
    return {"report": report, "by_fault": by_fault, "outputs": outputs}
