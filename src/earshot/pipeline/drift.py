"""Drift of a machine: a folder of recent clips against the model's own training reference.

:func:`drift_report` scores the recent clips with the bundle, compares their score
distribution with the bundle's reference normal scores (:func:`earshot.evaluation.drift.drift_test`)
and lists the mel bands whose level moved most against the training clips. The statistics live
in :mod:`earshot.evaluation.drift`; this module reads clips, bundles and labels.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

from earshot.bundle import Bundle, load_model
from earshot.datasets.csvfiles import parse_label, read_csv
from earshot.errors import AudioError, ParameterError
from earshot.evaluation.drift import band_shifts, check_alpha, drift_test
from earshot.features.melscale import hz_to_mel, mel_to_hz
from earshot.pipeline.batch import walk_audio

__all__ = ["band_levels", "band_reference", "drift_report", "drift_summary", "mel_band_edges", "pick_bundle",
           "reference_scores"]

log = logging.getLogger(__name__)

#: Most training files read for the band reference.
MAX_REFERENCE_FILES = 200


def pick_bundle(model: str | os.PathLike, group: Optional[str] = None) -> Bundle:
    """The bundle of a model directory (a model set needs ``group`` unless it has one group)."""
    models = load_model(model)
    if group is not None:
        if group not in models.bundles:
            raise ParameterError(f"group: expected one of {', '.join(models.groups)}, got {group!r}")
        return models.bundles[group]
    if len(models.bundles) > 1:
        raise ParameterError(f"{model}: the model has groups {', '.join(models.groups)}; pass --group NAME")
    return next(iter(models.bundles.values()))


def reference_scores(bundle: Bundle) -> tuple[np.ndarray, str]:
    """The bundle's reference normal scores and where they come from.

    The calibration scores (held-out validation clips, or cross-fit scores of the training
    clips) are the reference; a bundle that kept only in-sample training scores falls back to
    them, and the source says so (they are optimistic: recent normal clips score higher).
    """
    fitted = bundle.manifest.get("fitted", {})
    source = str(fitted.get("threshold_source") or "train")
    scores = np.asarray(fitted.get("calibration_scores") or [], dtype=np.float64)
    if len(scores) >= 2:
        return scores, source
    scores = np.asarray(fitted.get("train_scores") or [], dtype=np.float64)
    if len(scores) < 2:
        raise ParameterError(f"{bundle.path}: the model keeps no reference scores (retrain it with this earshot)")
    return scores, "train"


def mel_band_edges(bundle: Bundle) -> np.ndarray:
    """Mel band edges in Hz, shape ``(n_mels + 2,)``: band ``i`` spans ``[i]`` to ``[i + 2]``."""
    f = bundle.features
    fmax = f.fmax if f.fmax is not None else f.sr / 2.0
    return mel_to_hz(np.linspace(hz_to_mel(f.fmin), hz_to_mel(fmax), f.n_mels + 2))


def band_levels(logmels: list[np.ndarray]) -> np.ndarray:
    """Mean level (dB) of each mel band of each clip, shape ``(n_clips, n_mels)``."""
    return np.stack([np.asarray(x, dtype=np.float64).mean(axis=1) for x in logmels])


def band_reference(bundle: Bundle) -> tuple[Optional[np.ndarray], Optional[np.ndarray], str]:
    """Training band levels: ``(mean, clip-to-clip sd, source)``.

    From the training files the manifest lists, when at least two of them can still be read
    (up to :data:`MAX_REFERENCE_FILES`, evenly spaced); else the frame mean of the model's
    normalisation (no spread); else ``(None, None, "none")``.
    """
    files = [Path(p) for p in bundle.manifest.get("training", {}).get("files", [])]
    if len(files) > MAX_REFERENCE_FILES:
        files = [files[i] for i in np.linspace(0, len(files) - 1, MAX_REFERENCE_FILES).round().astype(int)]
    levels = []
    for p in files:
        try:
            levels.append(bundle.extract(p).mean(axis=1))
        except (AudioError, OSError, ParameterError):
            continue
    if len(levels) >= 2:
        arr = np.asarray(levels, dtype=np.float64)
        return arr.mean(axis=0), arr.std(axis=0, ddof=1), "training files"
    mean = bundle.manifest.get("normalisation", {}).get("mean") or []
    if len(mean) == bundle.features.n_mels:
        return np.asarray(mean, dtype=np.float64), None, "normalisation"
    return None, None, "none"


def drift_summary(bundle: Bundle, scores: np.ndarray, *, levels: Optional[np.ndarray] = None,
                  n_rejected: Optional[int] = None, alpha: float = 0.01, top: int = 5,
                  band_ref: Optional[tuple] = None) -> dict[str, Any]:
    """Drift of recent clip ``scores`` (and their band ``levels``) against ``bundle``'s training.

    Returns a JSON-safe dict: the fields of :class:`~earshot.evaluation.drift.DriftResult`,
    ``reference_source``, ``bands`` (top moved mel bands, empty without levels or a band
    reference) and ``band_reference``.
    """
    reference, source = reference_scores(bundle)
    result = drift_test(scores, reference, model_threshold=bundle.threshold_, alpha=alpha, n_rejected=n_rejected)
    out = {**result.to_dict(), "model_threshold": bundle.threshold_, "reference_source": source,
           "bands": [], "band_reference": "none"}
    if levels is not None and len(levels):
        mean, sd, where = band_ref if band_ref is not None else band_reference(bundle)
        out["band_reference"] = where
        if mean is not None:
            out["bands"] = band_shifts(levels, mean, sd, edges_hz=mel_band_edges(bundle), top=top)
    return out


def _read_labels(labels: str | os.PathLike) -> dict[Path, int]:
    csv_path = Path(os.path.abspath(labels))
    if not csv_path.is_file():
        raise ParameterError(f"labels {str(csv_path)!r} does not exist")
    out = {}
    for where, row in read_csv(csv_path, required=("path", "label"), what="labels file"):
        label = parse_label(row["label"], where=where)
        if label is None:
            raise ParameterError(f"{where}: the label is empty (expected 0/1/normal/anomaly)")
        out[(csv_path.parent / row["path"]).resolve()] = label
    return out


def drift_report(model: str | os.PathLike, folder: str | os.PathLike, *, group: Optional[str] = None,
                 alpha: float = 0.01, labels: str | os.PathLike | None = None, top: int = 5) -> dict[str, Any]:
    """Drift of a folder of recent clips against a model's training data.

    Parameters
    ----------
    model : path-like
        A bundle or model set (``group`` picks one of several).
    folder : path-like
        Recent clips of the machine (walked for .wav/.flac).
    alpha : float
        False drift alarm rate of a steady machine.
    labels : path-like, optional
        CSV ``path,label`` of the team's verdicts on recent clips: confirmed anomalies (1) are
        left out (a fault is not drift); normal ones (0) that the model flagged are rejected
        false alarms, evidence of drift.
    top : int
        Mel bands listed.

    Returns
    -------
    dict
        See :func:`drift_summary`; plus ``model``, ``folder``, ``n_files``, ``n_confirmed_left_out``.
    """
    alpha = check_alpha(alpha)
    if not Path(folder).is_dir():
        raise ParameterError(f"{folder}: not a folder of recent clips")
    bundle = pick_bundle(model, group)
    paths = list(walk_audio([folder]))
    verdicts = _read_labels(labels) if labels is not None else {}
    kept = [p for p in paths if verdicts.get(p.resolve()) != 1]
    logmels = [bundle.extract(p) for p in kept]
    if not logmels:
        raise ParameterError(f"{folder}: no audio clips (.wav/.flac) to compare")
    scores = bundle.score_samples(logmels)
    n_rejected = None
    if labels is not None:
        n_rejected = int(sum(1 for p, s in zip(kept, scores) if verdicts.get(p.resolve()) == 0 and s > bundle.threshold_))
    out = drift_summary(bundle, scores, levels=band_levels(logmels), n_rejected=n_rejected, alpha=alpha, top=top)
    log.info("drift of %d clips in %s: D=%.3f (threshold %.3f)", len(kept), folder, out["score"], out["threshold"])
    return {"model": str(model), "folder": str(folder), "n_files": len(paths),
            "n_confirmed_left_out": len(paths) - len(kept), **out}
