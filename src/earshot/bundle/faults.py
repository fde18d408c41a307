"""Fault signatures stored in a bundle, and the fault columns scoring adds with them.

``earshot train --labels CSV`` with a ``fault`` column stores, in each bundle whose group has at
least two fault-labelled anomalies, ``faults.json``: the fitted
:class:`~earshot.evaluation.faults.FaultSignatures` (standardised embeddings of the labelled
anomalies, their fault names, the centre and scale of the machine's normal clips and the
"unlike any confirmed fault" threshold), the embedding that produced them (the clip statistics
of :mod:`earshot.features.clipstats` and their parameters, so a later earshot computes the same
one) and the labelled files. The manifest's ``faults`` entry names the file and summarises it.

A bundle without that entry has no signatures (:func:`read_faults` gives None) and scores
exactly as before. With it, a clip flagged anomalous gets :data:`FAULT_FIELDS`: its closest
confirmed fault (empty when it is unlike any), the distance to it and whether it is within the
threshold. numpy only (no torch, no scipy.stats): this runs on the scoring path.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from earshot.bundle.format import FAULTS_FILE, MANIFEST, read_json
from earshot.errors import BundleError, EarshotError
from earshot.evaluation.faults import FaultMatch, FaultSignatures
from earshot.features.clipstats import LEVELS, clip_stats

__all__ = ["FAULT_FIELDS", "BundleFaults", "EMPTY_FAULT", "attach_faults", "read_faults"]

log = logging.getLogger(__name__)

#: Columns scoring adds for a model with stored fault signatures.
FAULT_FIELDS = ("fault", "fault_distance", "fault_known")
#: Their values for a clip that is not flagged, or could not be scored.
EMPTY_FAULT: dict[str, Any] = {"fault": None, "fault_distance": None, "fault_known": None}
#: Version of the ``faults.json`` layout.
FAULTS_VERSION = 1
#: The clip-statistics parameters an embedding may name.
_STAT_PARAMS = {"n_bands", "n_mean_bands", "peak", "level"}


def _check_embedding(entry: Any, where: str) -> dict[str, Any]:
    """The ``clip_stats`` keyword arguments of a stored embedding, or one BundleError line."""
    if not isinstance(entry, dict) or entry.get("kind") != "clipstats" or not isinstance(entry.get("params"), dict):
        raise BundleError(f"{where}: embedding: expected {{\"kind\": \"clipstats\", \"params\": {{...}}}}, got {entry!r}")
    params = dict(entry["params"])
    unknown = set(params) - _STAT_PARAMS
    if unknown or params.get("level", "max") not in LEVELS:
        raise BundleError(f"{where}: embedding.params: unknown clip statistics {params!r}")
    return params


class BundleFaults:
    """The fault signatures of one bundle and the embedding they were computed with.

    Parameters
    ----------
    signatures : FaultSignatures
        Fitted signatures.
    embedding : dict
        Keyword arguments of :func:`~earshot.features.clipstats.clip_stats` (the embedding).
    """

    def __init__(self, signatures: FaultSignatures, embedding: dict[str, Any]) -> None:
        self.signatures = signatures
        self.embedding = dict(embedding)

    @property
    def faults(self) -> list[str]:
        """The confirmed fault names, sorted."""
        return sorted(set(self.signatures.faults_))

    def match(self, logmel: np.ndarray) -> FaultMatch:
        """The closest confirmed fault of one log-mel clip ``(n_mels, n_time)`` in dB."""
        return self.signatures.match(clip_stats([logmel], **self.embedding))[0]

    def fields(self, logmel: np.ndarray, anomalous: bool) -> dict[str, Any]:
        """:data:`FAULT_FIELDS` of a scored clip: empty unless ``anomalous``; ``fault`` empty
        when the clip is unlike any confirmed fault (``fault_known`` false)."""
        if not anomalous:
            return dict(EMPTY_FAULT)
        try:
            m = self.match(logmel)
        except EarshotError as exc:  # e.g. a clip too short for the clip statistics: the verdict stands
            log.warning("closest fault not computed: %s", exc)
            return dict(EMPTY_FAULT)
        return {"fault": m.fault if m.known else None, "fault_distance": round(float(m.distance), 6),
                "fault_known": bool(m.known)}


def attach_faults(directory: str | os.PathLike, signatures: FaultSignatures, embedding: dict[str, Any],
                  files: Sequence[str]) -> dict[str, Any]:
    """Store fault signatures in a bundle being written: ``faults.json`` and the manifest's ``faults``.

    Meant for a bundle directory still inside its atomic write (``pipeline.train``): the
    manifest is rewritten in place.

    Parameters
    ----------
    directory : path-like
        The bundle directory (its ``manifest.json`` already written).
    signatures : FaultSignatures
        Fitted on the labelled anomalies.
    embedding : dict
        The ``clip_stats`` keyword arguments the embeddings were computed with.
    files : sequence of str
        The labelled clips, in the order of the signatures.

    Returns
    -------
    dict
        The manifest entry.
    """
    directory = Path(directory)
    state = signatures.to_dict()
    with open(directory / FAULTS_FILE, "w", encoding="utf-8") as fh:
        json.dump({"version": FAULTS_VERSION, "embedding": {"kind": "clipstats", "params": dict(embedding)},
                   "signatures": state, "files": [str(f) for f in files]}, fh, allow_nan=False)
    entry = {"file": FAULTS_FILE, "n_clips": len(state["faults"]), "faults": sorted(set(state["faults"])),
             "threshold": state["threshold"], "threshold_source": state["threshold_source"],
             "scale_source": state["scale_source"], "quantile": state["quantile"]}
    manifest = read_json(directory / MANIFEST)
    manifest["faults"] = entry
    with open(directory / MANIFEST, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2, allow_nan=False)
    return entry


def read_faults(directory: str | os.PathLike, manifest: dict[str, Any]) -> BundleFaults | None:
    """The stored fault signatures of a bundle, or None when its manifest has no ``faults``.

    Raises
    ------
    BundleError
        A ``faults`` entry whose file is missing or malformed (one line naming the file).
    """
    entry = manifest.get("faults")
    if entry is None:
        return None
    where = Path(directory) / MANIFEST
    if not isinstance(entry, dict) or entry.get("file") != FAULTS_FILE:
        raise BundleError(f"{where}: faults: expected an object with file {FAULTS_FILE!r}, got {entry!r}")
    path = Path(directory) / FAULTS_FILE
    data = read_json(path)
    if data.get("version") != FAULTS_VERSION:
        raise BundleError(f"{path}: unknown version {data.get('version')!r} (this earshot reads {FAULTS_VERSION})")
    embedding = _check_embedding(data.get("embedding"), str(path))
    try:
        signatures = FaultSignatures.from_dict(data.get("signatures") or {})
        center, scale = signatures.center_, signatures.scale_
        if center.ndim != 1 or scale.shape != center.shape or not np.all(np.isfinite(center)) \
                or not np.all(scale > 0) or not np.isfinite(signatures.threshold_):
            raise BundleError("malformed centre, scale or threshold")
    except EarshotError as exc:
        raise BundleError(f"{path}: {exc}") from None
    return BundleFaults(signatures, embedding)
