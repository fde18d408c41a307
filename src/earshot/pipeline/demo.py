"""The main job end to end on built-in synthetic data: synthesise, train, evaluate, report,
and find a fault in a long recording.

:data:`QUICK` (``earshot demo``, about half a minute of CPU) and :data:`FULL` (``earshot demo
--full``) say how big the fleet is and which models are trained. Every model's threshold is
fitted on normal clips only, as its manifest says (:func:`threshold_sentence` words it for
the console). An edge module (like the CLI): it joins :mod:`earshot.synth`,
:mod:`earshot.pipeline` and, where installed, the HTML report.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from earshot._util.fs import atomic_file
from earshot.bundle import load_model
from earshot.errors import ParameterError
from earshot.evaluation.metrics import roc_auc, to_jsonable
from earshot.pipeline import Progress
from earshot.pipeline.detect import detect_file
from earshot.pipeline.evaluate import evaluate
from earshot.pipeline.train import train
from earshot.synth import synthesize, synthesize_long

__all__ = ["FULL", "QUICK", "DemoConfig", "auc_by_fault", "run_demo", "threshold_sentence"]

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


@dataclass(frozen=True)
class DemoConfig:
    """How big the demo is, and what it trains.

    ``models`` are (kind, parameters) pairs, one model set each; ``stream_model`` (one of
    them, scored window by window) runs ``detect`` on a long recording of the first machine
    type's first id with a fault from ``fault_s[0]`` to ``fault_s[1]``, in windows of
    ``window_s`` (at least 2/5 of the clip length, so ``detect`` scores windows like the clips
    the threshold was fitted on and has no calibration warning to give).
    """

    machines: tuple[str, ...]
    n_ids: int
    n_normal: int
    n_abnormal: int
    duration_s: float
    models: tuple[tuple[str, dict[str, Any]], ...]
    stream_model: str = "dense-ae"
    long_s: float = 60.0
    fault_s: tuple[float, float] = (30.0, 45.0)
    window_s: float = 2.5


#: The dense AE holds out a quarter of its normal training clips (whole clips): enough that its
#: threshold is fitted on at least 5 held-out clips in every group (30 training normals: 8).
_HELD_OUT = 0.25

#: ``earshot demo``: 2 machine types x 2 ids, 5 s clips; gauss (the strongest detector on the
#: real recordings of bench/README.md) and a small dense AE, which also scans the long recording.
QUICK = DemoConfig(machines=("fan", "bearing"), n_ids=2, n_normal=40, n_abnormal=10, duration_s=5.0,
                   models=(("gauss", {}), ("dense-ae", {"epochs": 8, "hidden": 64, "n_layers": 2,
                                                        "validation_fraction": _HELD_OUT})))
#: ``earshot demo --full``: 3 machine types x 2 ids, 10 s clips, the default dense AE (20 epochs).
FULL = DemoConfig(machines=("fan", "pump", "bearing"), n_ids=2, n_normal=60, n_abnormal=20, duration_s=10.0,
                  models=(("gauss", {}), ("dense-ae", {"epochs": 20, "validation_fraction": _HELD_OUT})),
                  long_s=120.0, fault_s=(60.0, 90.0), window_s=5.0)

#: A manifest's ``threshold.source`` -> what the threshold was fitted on, in words.
_FITTED_ON = {
    "validation": "held-out normal clips (never trained on)",
    "cross-fit": "cross-fitted scores of the normal training clips (each scored by a model fitted without it)",
    "train": "the normal training clips themselves (in-sample: too few clips to hold any out)",
}


def threshold_sentence(kind: str, sources: Sequence[str | None]) -> str:
    """What one model's thresholds were fitted on, from its groups' manifest sources.

    ``threshold_sentence("dense-ae", ["validation"] * 4)`` ->
    ``"dense-ae: thresholds fitted on held-out normal clips (never trained on), in 4 of 4 groups"``.
    """
    counts: dict[str, int] = {}
    for src in sources:
        counts[str(src)] = counts.get(str(src), 0) + 1
    parts = [f"{_FITTED_ON.get(src, src)}, in {n} of {len(sources)} groups" for src, n in sorted(counts.items())]
    return f"{kind}: thresholds fitted on " + "; on ".join(parts)


def _fresh(out: Path) -> None:
    """Refuse a folder that is not an earlier demo's; clear what the demo rewrites."""
    if out.exists() and any(out.iterdir()) and not (out / "data" / "manifest.csv").exists():
        raise ParameterError(f"--out: {out} exists and is not an earlier demo folder; choose another")
    for name in ("data", "model", "models", "long", "detect"):
        if (out / name).is_dir():
            shutil.rmtree(out / name)  # a demo folder is ours to rewrite
    out.mkdir(parents=True, exist_ok=True)


def run_demo(out_dir: str | os.PathLike, config: DemoConfig = QUICK, *, seed: int = 0,
             progress: Progress | None = None) -> dict[str, Any]:
    """Synthesise a fleet, train each model of ``config`` per machine/id, evaluate on unseen
    clips, then scan a long recording with a fault for events.

    Returns
    -------
    dict
        ``models`` ({kind: {"report": as :func:`earshot.pipeline.evaluate`, "by_fault": AUC per
        fault type, "thresholds": the manifests' threshold sources per group}}), ``long``
        (the detect summary and the truth) and ``outputs`` (what was written where).
    """
    out = Path(out_dir)
    _fresh(out)
    data = out / "data"

    def synth_progress(done: int, total: int) -> None:
        if progress:
            progress("synthesising clips", done, total)

    manifest = synthesize(data, machines=tuple(config.machines), n_ids=config.n_ids, n_normal=config.n_normal,
                          n_abnormal=config.n_abnormal, duration_s=config.duration_s, seed=seed, n_jobs=-1,
                          progress=synth_progress)
    outputs: dict[str, Path] = {"data": data}
    results: dict[str, dict[str, Any]] = {}
    models = {}
    for kind, params in config.models:
        model_dir = out / "models" / kind
        train(data, model_dir, model=kind, model_params=params, seed=seed, progress=progress)
        models[kind] = model = load_model(model_dir)
        report = evaluate(model, data, progress=progress)
        results[kind] = {"report": report, "by_fault": auc_by_fault(report, Path(manifest)),
                         "thresholds": {g: b.manifest["threshold"]["source"] for g, b in model.bundles.items()}}
        outputs[f"model {kind}"] = model_dir
    long = _long_recording(out, config, models[config.stream_model], seed=seed, progress=progress)
    outputs["detect"] = out / "detect"
    with atomic_file(out / "report.json") as fh:
        json.dump(to_jsonable({"models": {k: {**r["report"], "by_fault": r["by_fault"]} for k, r in results.items()},
                               "long": long}), fh, indent=2)
    outputs["json"] = out / "report.json"
    try:
        from earshot.reports.evaluation import write_report  # deferred: the HTML report is optional (plots extra)
    except ImportError:  # the HTML report needs matplotlib (the plots extra)
        log.info("matplotlib not installed: no HTML report")
    else:
        for kind, r in results.items():
            outputs[f"report {kind}"] = write_report(r["report"], models[kind], out / "report" / kind)
    return {"models": results, "long": long, "outputs": outputs}


def _long_recording(out: Path, config: DemoConfig, model, *, seed: int, progress: Progress | None) -> dict[str, Any]:
    """Write a long recording of the first machine with a fault, run ``detect`` on it with the
    streaming model, save its outputs in ``out/detect``; return the summary and the truth."""
    machine, group = config.machines[0], f"{config.machines[0]}/id_00"
    wav = out / "long" / f"{machine}-long.wav"
    wav.parent.mkdir(parents=True, exist_ok=True)
    start, end = config.fault_s
    stage = f"detect on a {config.long_s:.0f} s recording"
    if progress:
        progress(stage, 0, 1)
    # the fleet's SNR (synthesize's default, 0 dB), so the recording sounds like the training clips
    truth = synthesize_long(wav, machine=machine, machine_id=0, duration_s=config.long_s, fault_start_s=start,
                            fault_end_s=end, snr_db=0.0, seed=seed)
    picture = importlib.util.find_spec("matplotlib") is not None  # the timeline picture needs the plots extra
    result = detect_file(model, wav, group=group, window_s=config.window_s, spectrogram=picture)
    result.save(out / "detect", picture=picture, truth=[(start, end)])
    if progress:
        progress(stage, 1, 1)
    return {"path": str(wav), "group": group, "model": config.stream_model, "truth": truth,
            "detect": result.summary()}
