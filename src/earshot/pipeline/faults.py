"""Fault signatures of a model: which confirmed fault each new anomalous clip resembles.

The embedding is one every bundle can compute without torch: the clip statistics of
:mod:`earshot.features.clipstats` (:data:`FAULT_STATS`) on the bundle's own log-mel (a bundle's
scoring graph outputs only a score). :func:`fault_signatures` fits
:class:`~earshot.evaluation.faults.FaultSignatures` on the clips a labels CSV gives a fault
to; :func:`closest_faults` answers for a folder of clips and, where the CSV also gives those
clips a fault, a confusion matrix of fault types. :func:`store_fault_signatures` fits them at
training (``earshot train --labels`` with a ``fault`` column) and stores them in the bundle
(:mod:`earshot.bundle.faults`), so that scoring names the closest fault of each flagged clip.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

from earshot.bundle import Bundle
from earshot.bundle.faults import attach_faults
from earshot.datasets.csvfiles import read_csv
from earshot.errors import AudioError, ParameterError
from earshot.evaluation.faults import FaultSignatures, confusion_matrix
from earshot.features.clipstats import clip_stats
from earshot.pipeline.batch import walk_audio
from earshot.pipeline.drift import MAX_REFERENCE_FILES, pick_bundle

__all__ = ["FAULT_STATS", "closest_faults", "fault_confusion", "fault_embeddings", "fault_signatures",
           "leave_one_out_faults", "normal_reference", "read_fault_labels", "store_fault_signatures",
           "stored_closest_faults"]

log = logging.getLogger(__name__)

#: Clip statistics used as the fault embedding (the layout of the frugal detectors).
FAULT_STATS = {"n_bands": 8, "n_mean_bands": 32, "peak": True, "level": "leq"}


def fault_embeddings(logmels: list[np.ndarray]) -> np.ndarray:
    """Fault embeddings ``(n_clips, n_stats)`` of log-mel clips ``(n_mels, n_time)`` in dB."""
    return clip_stats(logmels, **FAULT_STATS)


def normal_reference(bundle: Any) -> Optional[np.ndarray]:
    """Fault embeddings of the bundle's training (normal) files that can still be read.

    Up to :data:`~earshot.pipeline.drift.MAX_REFERENCE_FILES`, evenly spaced; None when fewer
    than two can be read (the signatures then standardise by the labelled set).
    """
    return _reference(bundle, [Path(p) for p in bundle.manifest.get("training", {}).get("files", [])])


def _reference(bundle: Any, files: list[Path]) -> Optional[np.ndarray]:
    """Fault embeddings of up to MAX_REFERENCE_FILES of ``files`` (evenly spaced) that can be read."""
    if len(files) > MAX_REFERENCE_FILES:
        files = [files[i] for i in np.linspace(0, len(files) - 1, MAX_REFERENCE_FILES).round().astype(int)]
    logmels = []
    for p in files:
        try:
            logmels.append(bundle.extract(p))
        except (AudioError, OSError, ParameterError):
            continue
    return fault_embeddings(logmels) if len(logmels) >= 2 else None


def read_fault_labels(labels: str | os.PathLike) -> dict[Path, str]:
    """``{resolved path: fault}`` from a CSV with ``path`` and ``fault`` columns.

    Paths are relative to the CSV's folder; rows with an empty fault (normal clips, unlabelled
    anomalies) are skipped.
    """
    csv_path = Path(os.path.abspath(labels))
    if not csv_path.is_file():
        raise ParameterError(f"labels {str(csv_path)!r} does not exist")
    out = {}
    for _where, row in read_csv(csv_path, required=("path", "fault"), what="labels file"):
        if row["fault"]:
            out[(csv_path.parent / row["path"]).resolve()] = row["fault"]
    return out


def fault_signatures(model: str | os.PathLike, labels: str | os.PathLike, *, group: Optional[str] = None,
                     quantile: float = 0.95) -> tuple[Any, FaultSignatures]:
    """The bundle of ``model`` and fault signatures fitted on the clips ``labels`` gives a fault."""
    bundle = pick_bundle(model, group)
    faults = read_fault_labels(labels)
    if len(faults) < 2:
        raise ParameterError(f"{labels}: expected at least two clips with a fault label, got {len(faults)}")
    missing = [p for p in faults if not p.is_file()]
    if missing:
        raise ParameterError(f"{labels}: labelled clip {str(missing[0])!r} does not exist")
    paths = sorted(faults)
    X = fault_embeddings([bundle.extract(p) for p in paths])
    return bundle, FaultSignatures(quantile=quantile).fit(X, [faults[p] for p in paths], normal_reference(bundle))


def closest_faults(model: str | os.PathLike, labels: str | os.PathLike, folder: str | os.PathLike, *,
                   group: Optional[str] = None, quantile: float = 0.95) -> dict[str, Any]:
    """The closest confirmed fault of each clip of ``folder``.

    Parameters
    ----------
    model : path-like
        A bundle or model set (``group`` picks one of several); its log-mel settings are used.
    labels : path-like
        CSV ``path,fault`` of confirmed anomalies. Labelled clips inside ``folder`` are left out
        of the signatures and, with their fault as truth, fill the confusion matrix.
    folder : path-like
        New anomalous clips (walked for .wav/.flac).

    Returns
    -------
    dict
        JSON-safe: ``clips`` (``path`` and the fields of
        :meth:`~earshot.evaluation.faults.FaultMatch.to_dict`, plus ``true_fault`` when known),
        ``threshold``, ``threshold_source``, ``scale_source``, ``n_labelled``, ``faults`` (known fault names) and,
        when some clips of the folder carry a fault label, ``confusion`` ``{"names", "counts"}``
        and ``accuracy`` (share whose answer is their true fault).
    """
    if not Path(folder).is_dir():
        raise ParameterError(f"{folder}: not a folder of clips")
    paths = list(walk_audio([folder]))
    if not paths:
        raise ParameterError(f"{folder}: no audio clips (.wav/.flac) to match")
    faults = read_fault_labels(labels)
    inside = {p.resolve() for p in paths}
    reference = {p: f for p, f in faults.items() if p not in inside}
    if len(reference) < 2:
        raise ParameterError(f"{labels}: expected at least two labelled clips outside {folder}, got {len(reference)}")
    bundle = pick_bundle(model, group)
    ref_paths = sorted(reference)
    missing = [p for p in ref_paths if not p.is_file()]
    if missing:
        raise ParameterError(f"{labels}: labelled clip {str(missing[0])!r} does not exist")
    sig = FaultSignatures(quantile=quantile).fit(fault_embeddings([bundle.extract(p) for p in ref_paths]),
                                                 [reference[p] for p in ref_paths], normal_reference(bundle))
    matches = sig.match(fault_embeddings([bundle.extract(p) for p in paths]))
    clips = []
    for p, m in zip(paths, matches):
        row = {"path": str(p), **m.to_dict()}
        if p.resolve() in faults:
            row["true_fault"] = faults[p.resolve()]
        clips.append(row)
    out: dict[str, Any] = {"model": str(model), "folder": str(folder), "threshold": sig.threshold_,
                           "threshold_source": sig.threshold_source_,
                           "scale_source": sig.scale_source_, "n_labelled": len(ref_paths),
                           "faults": sorted(set(sig.faults_)), "clips": clips}
    truth = [c for c in clips if "true_fault" in c]
    if truth:
        out.update(fault_confusion([c["true_fault"] for c in truth], [c["answer"] for c in truth], sig.faults_))
    log.info("closest faults of %d clips in %s (%d labelled clips, threshold %.3f)", len(clips), folder,
             len(ref_paths), sig.threshold_)
    return out


def fault_confusion(truth: list[str], answers: list[str], known: list[str]) -> dict[str, Any]:
    """``{"confusion": {"names", "counts"}, "accuracy"}`` of answers against true faults.

    Rows are the known (labelled) faults and the true ones, sorted; columns add any other
    answer (:data:`~earshot.evaluation.faults.UNLIKE` last). ``accuracy``: share answered
    their true fault.
    """
    rows = sorted(set(known) | set(truth))
    names, counts = confusion_matrix(truth, answers, rows)
    return {"confusion": {"names": names, "counts": counts.tolist()},
            "accuracy": float(np.mean([a == t for a, t in zip(answers, truth)]))}


def leave_one_out_faults(bundle: Any, paths: list[Path], faults: list[str], *, quantile: float = 0.95
                         ) -> dict[str, Any]:
    """Each fault-labelled clip answered by the signatures of all the *other* labelled clips.

    For ``earshot evaluate`` on a data set whose anomalies carry a fault type: no clip is its own
    neighbour, and the "unlike" threshold of each answer is calibrated without it (a fault with
    one example can only be answered wrong or unlike). The embeddings and the bundle's normal
    reference are computed once.

    Returns
    -------
    dict
        JSON-safe: ``method`` ("leave-one-out"), ``n_labelled``, ``faults``, ``clips`` (``path``,
        ``true_fault`` and the fields of :meth:`~earshot.evaluation.faults.FaultMatch.to_dict`)
        and the :func:`fault_confusion` fields.
    """
    if len(paths) < 3:
        raise ParameterError(f"expected at least three clips with a fault label, got {len(paths)}")
    X = fault_embeddings([bundle.extract(p) for p in paths])
    reference = normal_reference(bundle)
    clips = []
    for i, p in enumerate(paths):
        keep = [j for j in range(len(paths)) if j != i]
        sig = FaultSignatures(quantile=quantile).fit(X[keep], [faults[j] for j in keep], reference)
        clips.append({"path": str(p), "true_fault": faults[i], **sig.match(X[i:i + 1])[0].to_dict()})
    out: dict[str, Any] = {"method": "leave-one-out", "n_labelled": len(paths), "faults": sorted(set(faults)),
                           "scale_source": "normal reference" if reference is not None else "labelled set",
                           "clips": clips}
    out.update(fault_confusion(faults, [c["answer"] for c in clips], faults))
    log.info("fault types of %d clips, leave-one-out: %.1f%% right", len(paths), 100 * out["accuracy"])
    return out


def store_fault_signatures(bundle_dir: str | os.PathLike, paths: list[Path], faults: list[str],
                           normal: list[Path], *, quantile: float = 0.95) -> Optional[dict[str, Any]]:
    """Fit fault signatures on labelled anomalies with a bundle's log-mel and store them in it.

    Parameters
    ----------
    bundle_dir : path-like
        A bundle just written (inside its atomic write): ``faults.json`` and the manifest's
        ``faults`` are added (:func:`earshot.bundle.faults.attach_faults`).
    paths, faults : list
        The anomalies the labels give a fault (at least two) and their faults.
    normal : list of Path
        The group's normal training clips: the scale of the embedding (up to
        :data:`~earshot.pipeline.drift.MAX_REFERENCE_FILES` of them, evenly spaced).
    quantile : float
        See :class:`~earshot.evaluation.faults.FaultSignatures`.

    Returns
    -------
    dict or None
        The manifest entry; None for a waveform-input model (no log-mel to embed: a warning).
    """
    bundle = Bundle(bundle_dir)
    if bundle.input == "waveform":
        log.warning("%s: a waveform-input model stores no fault signatures (they embed the log-mel)", bundle_dir)
        return None
    X = fault_embeddings([bundle.extract(p) for p in paths])
    sig = FaultSignatures(quantile=quantile).fit(X, faults, _reference(bundle, list(normal)))
    return attach_faults(bundle_dir, sig, FAULT_STATS, [str(Path(p).resolve()) for p in paths])


def stored_closest_faults(model: str | os.PathLike, folder: str | os.PathLike, *,
                          group: Optional[str] = None) -> dict[str, Any]:
    """The closest confirmed fault of each clip of ``folder`` by the signatures stored in the model.

    What :func:`closest_faults` gives (without ``true_fault`` and the confusion matrix), with
    the signatures that ``earshot train --labels`` stored (:mod:`earshot.bundle.faults`).
    """
    if not Path(folder).is_dir():
        raise ParameterError(f"{folder}: not a folder of clips")
    bundle = pick_bundle(model, group)
    if bundle.faults is None:
        raise ParameterError(f"{model}: the model stores no fault signatures (train it with --labels and a fault "
                             "column, or give LABELS_CSV)")
    paths = list(walk_audio([folder]))
    if not paths:
        raise ParameterError(f"{folder}: no audio clips (.wav/.flac) to match")
    sig = bundle.faults.signatures
    clips = [{"path": str(p), **bundle.faults.match(bundle.extract(p)).to_dict()} for p in paths]
    return {"model": str(model), "folder": str(folder), "threshold": sig.threshold_,
            "threshold_source": sig.threshold_source_, "scale_source": sig.scale_source_,
            "n_labelled": len(sig.faults_), "faults": bundle.faults.faults, "clips": clips, "stored": True}
