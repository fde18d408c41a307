"""Fault signatures: which confirmed fault a new anomalous clip resembles.

The team labels confirmed anomalies with a fault type (free text: "bearing", "belt slip").
:class:`FaultSignatures` keeps their embeddings (any fixed-length vector per clip; earshot uses
the clip statistics of :mod:`earshot.features.clipstats`, see :mod:`earshot.pipeline.faults`),
standardised by the mean and standard deviation of the machine's normal clips when given
(else of the labelled set itself), and answers for a new
anomalous clip the fault of its nearest labelled neighbour with the distance, or
:data:`UNLIKE` when that distance exceeds a threshold.

The threshold is calibrated on the labelled set itself, never on test labels: each labelled
clip's leave-one-out distance to the nearest *other* clip of the *same* fault (how far a
genuine member of a known fault lies from its fault's other examples) is computed, and the
threshold is their ``quantile`` (default 0.95: about one new clip of a known fault in twenty is
called unlike). Faults with a single example have no such distance; when no fault has two,
the leave-one-out distance to the nearest other clip of any fault is used instead.

Distances are root-mean-square differences of standardised statistics (Euclidean distance
divided by ``sqrt(n_features)``), so 1.0 means "one standard deviation per statistic". numpy only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from earshot.errors import ParameterError

__all__ = ["UNLIKE", "FaultMatch", "FaultSignatures", "confusion_matrix"]

log = logging.getLogger(__name__)

#: The answer for a clip farther from every confirmed fault than the calibrated threshold.
UNLIKE = "unlike any confirmed fault"


@dataclass(frozen=True)
class FaultMatch:
    """The closest confirmed fault of one clip.

    Attributes
    ----------
    fault : str
        The fault label of the nearest labelled clip (even when it is too far to count).
    distance : float
        RMS distance of the standardised embeddings to that clip.
    known : bool
        ``distance <= threshold``: the clip resembles a confirmed fault.
    """

    fault: str
    distance: float
    known: bool

    @property
    def answer(self) -> str:
        """``fault`` when known, else :data:`UNLIKE`."""
        return self.fault if self.known else UNLIKE

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe ``{"fault", "distance", "known", "answer"}``."""
        return {"fault": self.fault, "distance": float(self.distance), "known": bool(self.known),
                "answer": self.answer}


def _check_embeddings(X: Any, name: str, n_features: Optional[int] = None) -> np.ndarray:
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ParameterError(f"{name}: expected a 2-D array (n_clips, n_features) with at least one clip, "
                             f"got shape {arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise ParameterError(f"{name}: expected {n_features} features per clip, got {arr.shape[1]}")
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{name}: contains NaN or infinite values")
    return arr


def _pairwise(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """RMS distances between the rows of ``A`` and ``B``, shape ``(len(A), len(B))``."""
    sq = (A * A).sum(axis=1)[:, None] + (B * B).sum(axis=1)[None, :] - 2.0 * A @ B.T
    return np.sqrt(np.maximum(sq, 0.0) / A.shape[1])


class FaultSignatures:
    """Nearest-neighbour fault signatures with a self-calibrated "unlike" threshold.

    Parameters
    ----------
    quantile : float
        Quantile in (0, 1] of the labelled set's leave-one-out distances used as threshold.
    """

    def __init__(self, quantile: float = 0.95) -> None:
        if isinstance(quantile, bool) or not isinstance(quantile, (int, float)) or not 0.0 < float(quantile) <= 1.0:
            raise ParameterError(f"quantile: expected a number in (0, 1], got {quantile!r}")
        self.quantile = float(quantile)
        self.center_: Optional[np.ndarray] = None
        self.scale_: Optional[np.ndarray] = None
        self.embeddings_: Optional[np.ndarray] = None
        self.faults_: list[str] = []
        self.threshold_: float = float("nan")
        self.threshold_source_: str = ""
        self.scale_source_: str = ""
        self.loo_distances_: Optional[np.ndarray] = None

    def fit(self, X: Any, faults: Sequence[str], reference: Any = None) -> FaultSignatures:
        """Keep the labelled clips and calibrate the threshold on them.

        Parameters
        ----------
        X : array-like
            Embeddings ``(n_clips, n_features)`` of confirmed anomalies, at least two clips.
        faults : sequence of str
            Their fault labels (non-empty text; surrounding spaces are stripped).
        reference : array-like, optional
            Embeddings of normal clips of the machine (at least two): when given, statistics are
            standardised by *their* mean and standard deviation, so a statistic that varies
            little in normal running weighs more (measured in ``bench/faults.py``: 75 % nearest
            right against 66 % with the labelled set's own scale). Default: the labelled set's.
        """
        arr = _check_embeddings(X, "X")
        labels = [str(f).strip() if f is not None else "" for f in faults]
        if len(labels) != len(arr):
            raise ParameterError(f"faults: expected {len(arr)} labels (one per clip), got {len(labels)}")
        if any(not f for f in labels):
            raise ParameterError(f"faults: label {labels.index('')} is empty (expected a fault name)")
        if len(arr) < 2:
            raise ParameterError("X: expected at least two labelled clips to calibrate the threshold, got 1")
        base = arr if reference is None else _check_embeddings(reference, "reference", arr.shape[1])
        if len(base) < 2:
            raise ParameterError("reference: expected at least two normal clips, got 1")
        self.center_ = base.mean(axis=0)
        scale = base.std(axis=0)
        self.scale_source_ = "labelled set" if reference is None else "normal reference"
        self.scale_ = np.where(scale > 1e-9 * (1.0 + np.abs(self.center_)), scale, 1.0)
        self.embeddings_ = (arr - self.center_) / self.scale_
        self.faults_ = labels
        d = _pairwise(self.embeddings_, self.embeddings_)
        np.fill_diagonal(d, np.inf)
        same = np.asarray(labels)[:, None] == np.asarray(labels)[None, :]
        within = np.where(same, d, np.inf).min(axis=1)
        if np.isfinite(within).any():
            self.loo_distances_ = within[np.isfinite(within)]
            self.threshold_source_ = "same fault"
        else:
            self.loo_distances_ = d.min(axis=1)
            self.threshold_source_ = "any fault (no fault has two examples)"
        self.threshold_ = float(np.quantile(self.loo_distances_, self.quantile))
        log.info("fault signatures: %d clips of %d faults, threshold %.3f (%s)", len(labels),
                 len(set(labels)), self.threshold_, self.threshold_source_)
        return self

    def _require_fitted(self) -> None:
        if self.embeddings_ is None:
            raise ParameterError("fault signatures: not fitted (call fit with labelled clips first)")

    def match(self, X: Any) -> list[FaultMatch]:
        """The closest confirmed fault of each clip of ``X`` (embeddings ``(n, n_features)``)."""
        self._require_fitted()
        arr = _check_embeddings(X, "X", self.embeddings_.shape[1])
        d = _pairwise((arr - self.center_) / self.scale_, self.embeddings_)
        nearest = d.argmin(axis=1)
        return [FaultMatch(self.faults_[j], float(d[i, j]), bool(d[i, j] <= self.threshold_))
                for i, j in enumerate(nearest)]

    def loo_accuracy(self) -> float:
        """Share of labelled clips whose nearest *other* labelled clip has their fault (NaN if undefined)."""
        self._require_fitted()
        d = _pairwise(self.embeddings_, self.embeddings_)
        np.fill_diagonal(d, np.inf)
        nearest = d.argmin(axis=1)
        return float(np.mean([self.faults_[j] == f for j, f in zip(nearest, self.faults_)]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state; :meth:`from_dict` restores it."""
        self._require_fitted()
        return {"quantile": self.quantile, "center": self.center_.tolist(), "scale": self.scale_.tolist(),
                "embeddings": self.embeddings_.tolist(), "faults": list(self.faults_),
                "threshold": self.threshold_, "threshold_source": self.threshold_source_,
                "scale_source": self.scale_source_}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FaultSignatures:
        """Restore signatures saved by :meth:`to_dict`."""
        try:
            out = cls(quantile=d["quantile"])
            out.center_ = np.asarray(d["center"], dtype=np.float64)
            out.scale_ = np.asarray(d["scale"], dtype=np.float64)
            out.embeddings_ = _check_embeddings(d["embeddings"], "embeddings", len(out.center_))
            out.faults_ = [str(f) for f in d["faults"]]
            out.threshold_ = float(d["threshold"])
            out.threshold_source_ = str(d.get("threshold_source", ""))
            out.scale_source_ = str(d.get("scale_source", ""))
        except (KeyError, TypeError, ValueError) as exc:
            raise ParameterError(f"fault signatures: malformed saved state ({exc})") from None
        if len(out.faults_) != len(out.embeddings_):
            raise ParameterError("fault signatures: malformed saved state (faults and embeddings differ in length)")
        return out


def confusion_matrix(true: Sequence[str], predicted: Sequence[str],
                     labels: Optional[Sequence[str]] = None) -> tuple[list[str], np.ndarray]:
    """Confusion matrix of fault types.

    Parameters
    ----------
    true, predicted : sequence of str
        Fault per clip (``predicted`` may hold :data:`UNLIKE`).
    labels : sequence of str, optional
        Row order (default: the sorted true labels); predicted columns are these plus any other
        predicted label (sorted, :data:`UNLIKE` last).

    Returns
    -------
    names : list of str
        Column labels; the first ``len(rows)`` of them are the row labels.
    counts : np.ndarray
        Shape ``(n_rows, len(names))``: ``counts[i, j]`` clips of true fault ``names[i]``
        answered ``names[j]``. True labels outside the rows are not counted.
    """
    if len(true) != len(predicted):
        raise ParameterError(f"predicted: expected {len(true)} entries, got {len(predicted)}")
    rows = list(labels) if labels is not None else sorted(set(true))
    extra = sorted(set(predicted) - set(rows) - {UNLIKE}) + ([UNLIKE] if UNLIKE in set(predicted) else [])
    names = rows + extra
    index = {n: i for i, n in enumerate(names)}
    counts = np.zeros((len(rows), len(names)), dtype=np.int64)
    for t, p in zip(true, predicted):
        if t in index and index[t] < len(rows):
            counts[index[t], index[p]] += 1
    return names, counts
