"""Frugal detectors on clip-level log-mel statistics: ``gauss`` (Mahalanobis) and ``knn``.

Both fit in well under a second on 10-50 clips, need no deep training, and handle a domain
shift the DCASE 2022+ way ("selective" scoring): when the training clips come from several
domains (``metadata[i]["domain"]``: ``source``/``target``), each domain gets its own reference
(its mean, or its clips), each domain's distances are divided by the typical distance of that
domain's own normal clips, and a clip's score is the smallest of the per-domain scores. A
handful of target-domain clips then count as much as hundreds of source clips, and the test
clip's domain need not be known.

Scores are computed in numpy (float64) here and by the exported torch graph
(:mod:`earshot.models.frugal`, float32) in a bundle; a test pins the two together.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from earshot.detection.base import Detector, check_clips, check_int
from earshot.detection.thresholds import ThresholdSpec, fit_threshold
from earshot.errors import ParameterError
from earshot.features.clipstats import MIN_FRAMES, clip_stats
from earshot.features.store import FrameStore

__all__ = ["GaussianDetector", "KnnDetector", "DomainGaussian", "DomainKnn", "domain_labels", "domain_scales",
           "ledoit_wolf", "selective_scores"]

log = logging.getLogger(__name__)

#: Fewest clips the clip-level detectors fit on.
MIN_CLIPS = 2
#: Floor of per-feature standard deviations and per-domain scales.
_EPS = 1e-6
#: Folds of the cross-fitted calibration.
_CROSS_FOLDS = 10
#: How the calibration scores were obtained (``threshold_source_``).
CROSS_FIT = "cross-fit"


# ---------------------------------------------------------------------- helpers
def ledoit_wolf(X: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit-Wolf shrunk covariance of centred rows (as ``sklearn.covariance.ledoit_wolf``
    with ``assume_centered=True``).

    Parameters
    ----------
    X : np.ndarray
        ``(n_samples, n_features)``, already centred.

    Returns
    -------
    covariance : np.ndarray
        ``(1 - a) * S + a * mu * I`` with ``S = X.T @ X / n``, ``mu = trace(S) / p``.
    shrinkage : float
        ``a`` in [0, 1].
    """
    X = np.asarray(X, dtype=np.float64)
    n, p = X.shape
    S = X.T @ X / n
    mu = float(np.trace(S)) / p
    X2 = X * X
    beta_ = float(np.sum(X2.T @ X2)) / n  # sum_ij mean_k x_ki^2 x_kj^2
    delta_ = float(np.sum(S * S))
    beta = (beta_ - delta_) / (p * n)
    delta = (delta_ - 2.0 * mu * float(np.trace(S)) + p * mu * mu) / p
    beta = min(beta, delta)
    shrinkage = 0.0 if beta <= 0.0 or delta <= 0.0 else beta / delta
    cov = (1.0 - shrinkage) * S
    cov.flat[:: p + 1] += shrinkage * mu
    return cov, float(shrinkage)


def domain_labels(metadata: Sequence[dict] | None, n_clips: int) -> list[str]:
    """The domain of each clip from ``metadata`` (``"source"`` where unknown)."""
    if metadata is None:
        return ["source"] * n_clips
    metadata = list(metadata)
    if len(metadata) != n_clips:
        raise ParameterError(f"metadata: expected one dict per clip ({n_clips}), got {len(metadata)}")
    return [str((m or {}).get("domain") or "source") for m in metadata]


def as_clips(X: Sequence[np.ndarray], min_time: int) -> Sequence[np.ndarray]:
    """Validated clips: a FrameStore as it is (checked), anything else through check_clips."""
    if isinstance(X, FrameStore):
        if len(X) == 0:
            raise ParameterError("X: expected at least one clip, got none")
        short = np.flatnonzero(X.lengths < min_time)
        if short.size:
            raise ParameterError(f"X[{short[0]}]: expected at least {min_time} frames, got {X.lengths[short[0]]}")
        return X
    return check_clips(X, min_time=min_time)


def _pairwise(A: np.ndarray, B: np.ndarray, metric: str) -> np.ndarray:
    """Distances ``(len(A), len(B))``: Euclidean, or ``1 - <a, b>`` for cosine (unit rows)."""
    dot = A @ B.T
    if metric == "cosine":
        return 1.0 - dot
    sq = (A * A).sum(1)[:, None] - 2.0 * dot + (B * B).sum(1)[None, :]
    return np.sqrt(np.maximum(sq, 0.0))


def _inverse(cov: np.ndarray) -> np.ndarray:
    """Inverse of a covariance matrix: Cholesky, or the pseudo-inverse when it is singular."""
    import scipy.linalg

    try:
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(cov, lower=True), np.eye(len(cov)))
    except np.linalg.LinAlgError:
        w, V = scipy.linalg.eigh(cov)
        keep = w > w.max() * len(w) * np.finfo(float).eps
        return (V[:, keep] / w[keep]) @ V[:, keep].T


def domain_scales(held: np.ndarray, dom: np.ndarray, domains: Sequence[str]) -> np.ndarray:
    """Each domain's scale: the mean held-out distance of its own clips to its references.

    Parameters
    ----------
    held : np.ndarray
        ``(n_clips, n_domains)`` distances of each clip to each domain's references, by a model
        that did not see the clip (``inf`` where a domain had no references left).
    dom : np.ndarray
        ``(n_clips,)`` each clip's domain.
    domains : sequence of str
        The domains in column order.

    Returns
    -------
    np.ndarray
        ``(n_domains,)``; a domain without a finite own distance (a single clip) borrows the
        scale of the domain with the most clips.
    """
    scales, counts = [], []
    for j, d in enumerate(domains):
        own = held[dom == d, j]
        own = own[np.isfinite(own)]
        counts.append(int(np.sum(dom == d)))
        scales.append(max(float(own.mean()), _EPS) if own.size else np.nan)
    largest = int(np.argmax(counts))
    fallback = scales[largest] if np.isfinite(scales[largest]) else 1.0
    return np.array([v if np.isfinite(v) else fallback for v in scales])


def selective_scores(distances: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """The smallest per-domain scaled distance, ``(n_clips,)`` (1.0 where none is finite)."""
    scores = (distances / scales).min(axis=1)
    return np.where(np.isfinite(scores), scores, 1.0)


def _folds(dom: np.ndarray, domains: Sequence[str], n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """A fold per clip, each domain's clips dealt round the folds in a random order."""
    fold = np.empty(len(dom), dtype=np.int64)
    start = 0
    for d in domains:
        idx = rng.permutation(np.flatnonzero(dom == d))
        fold[idx] = (start + np.arange(len(idx))) % n_folds
        start += len(idx)
    return fold


class DomainKnn:
    """Per-domain k-NN distances (numpy; the torch twin is :class:`earshot.models.frugal.DomainKnn`).

    Parameters
    ----------
    n_neighbors : int
    metric : {"euclidean", "cosine"}

    Attributes
    ----------
    domains_ : list of str
    refs_ : list of np.ndarray
        ``(n_d, n_features)`` per domain.
    ks_ : list of int
        ``min(n_neighbors, n_d)``.
    scales_ : np.ndarray
        ``(n_domains,)``, set by the caller (see :func:`domain_scales`).
    """

    def __init__(self, n_neighbors: int = 2, metric: str = "euclidean"):
        self.n_neighbors = n_neighbors
        self.metric = metric

    def fit(self, Z: np.ndarray, dom: np.ndarray, domains: Sequence[str]) -> "DomainKnn":
        """Keep each domain's rows of ``Z`` as its references (a domain may have none)."""
        self.domains_ = list(domains)
        self.refs_ = [Z[dom == d] for d in self.domains_]
        self.ks_ = [max(1, min(int(self.n_neighbors), len(r))) for r in self.refs_]
        self.scales_ = np.ones(len(self.domains_))
        return self

    def distances(self, Z: np.ndarray) -> np.ndarray:
        """Mean distance to the ``k`` nearest references of each domain, ``(n, n_domains)``."""
        out = np.full((len(Z), len(self.domains_)), np.inf)
        for j, (refs, k) in enumerate(zip(self.refs_, self.ks_)):
            if len(refs):
                out[:, j] = np.sort(_pairwise(Z, refs, self.metric), axis=1)[:, :k].mean(axis=1)
        return out

    def loo_distances(self, Z: np.ndarray, dom: np.ndarray) -> np.ndarray:
        """:meth:`distances` of the fitted rows, each left out of its own domain's references
        (``inf`` for a domain's single row)."""
        out = self.distances(Z)
        for j, (d, refs) in enumerate(zip(self.domains_, self.refs_)):
            own = np.flatnonzero(dom == d)
            if len(own) < 2:
                out[own, j] = np.inf
                continue
            D = _pairwise(Z[own], refs, self.metric)
            np.fill_diagonal(D, np.inf)
            k = min(int(self.n_neighbors), len(own) - 1)
            out[own, j] = np.sort(D, axis=1)[:, :k].mean(axis=1)
        return out

    def score(self, Z: np.ndarray) -> np.ndarray:
        """Smallest per-domain scaled distance, ``(n,)``."""
        return selective_scores(self.distances(Z), self.scales_)

    def torch_module(self):
        """The torch twin (float32)."""
        import torch

        from earshot.models.frugal import DomainKnn as TorchDomainKnn

        return TorchDomainKnn([torch.from_numpy(r.astype(np.float32)) for r in self.refs_], self.ks_,
                              torch.from_numpy(self.scales_.astype(np.float32)), metric=self.metric)

    def state(self) -> dict[str, Any]:
        """JSON-safe description (the references themselves travel in the weights)."""
        return {"domains": self.domains_, "n_refs": [int(len(r)) for r in self.refs_], "ks": self.ks_,
                "scales": [float(s) for s in self.scales_], "metric": self.metric}

    @classmethod
    def from_state(cls, state: dict[str, Any], weights: dict, prefix: str) -> "DomainKnn":
        """Rebuild from :meth:`state` and the torch module's state_dict entries under ``prefix``."""
        knn = cls(metric=state["metric"])
        knn.domains_ = list(state["domains"])
        knn.ks_ = [int(k) for k in state["ks"]]
        knn.refs_ = [weights[f"{prefix}refs_{d}"].double().numpy() for d in range(len(knn.domains_))]
        knn.scales_ = weights[f"{prefix}scales"].double().numpy()
        return knn


class DomainGaussian:
    """Per-domain means and one pooled, shrunk covariance (numpy; the torch twin is
    :class:`earshot.models.frugal.DomainGaussian`).

    Parameters
    ----------
    shrinkage : "ledoit-wolf" or float

    Attributes
    ----------
    domains_ : list of str
    means_ : np.ndarray
        ``(n_domains, n_features)`` (NaN for a domain without rows).
    precision_ : np.ndarray
        ``(n_features, n_features)``.
    shrinkage_ : float
    scales_ : np.ndarray
        ``(n_domains,)``, set by the caller (see :func:`domain_scales`).
    """

    def __init__(self, shrinkage: str | float = "ledoit-wolf"):
        self.shrinkage = shrinkage

    def fit(self, Z: np.ndarray, dom: np.ndarray, domains: Sequence[str]) -> "DomainGaussian":
        """Each domain's mean; the covariance of the rows centred on their domain's mean."""
        p = Z.shape[1]
        self.domains_ = list(domains)
        means, centred = [], []
        for d in self.domains_:
            rows = Z[dom == d]
            means.append(rows.mean(axis=0) if len(rows) else np.full(p, np.nan))
            if len(rows) > 1:
                centred.append(rows - rows.mean(axis=0))
        C = np.concatenate(centred) if centred else np.empty((0, p))
        if len(C) < 2:
            cov, self.shrinkage_ = np.eye(p), 1.0
        elif self.shrinkage == "ledoit-wolf":
            cov, self.shrinkage_ = ledoit_wolf(C)
        else:
            a = float(self.shrinkage)
            S = C.T @ C / len(C)
            cov = (1.0 - a) * S
            cov.flat[:: p + 1] += a * np.trace(S) / p
            self.shrinkage_ = a
        self.means_ = np.stack(means)
        self.precision_ = _inverse(cov)
        self.scales_ = np.ones(len(self.domains_))
        return self

    def distances(self, Z: np.ndarray) -> np.ndarray:
        """Mahalanobis distance to each domain's mean, ``(n, n_domains)`` (inf: no mean)."""
        diff = Z[:, None, :] - self.means_[None, :, :]
        m2 = np.einsum("ndf,fg,ndg->nd", diff, self.precision_, diff)
        out = np.sqrt(np.maximum(m2, 0.0))
        return np.where(np.isnan(out), np.inf, out)

    def score(self, Z: np.ndarray) -> np.ndarray:
        """Smallest per-domain scaled distance, ``(n,)``."""
        return selective_scores(self.distances(Z), self.scales_)

    def torch_module(self):
        """The torch twin (float32)."""
        import torch

        from earshot.models.frugal import DomainGaussian as TorchDomainGaussian

        return TorchDomainGaussian(torch.from_numpy(self.means_.astype(np.float32)),
                                   torch.from_numpy(self.precision_.astype(np.float32)),
                                   torch.from_numpy(self.scales_.astype(np.float32)))

    def state(self) -> dict[str, Any]:
        """JSON-safe description (means and precision travel in the weights)."""
        return {"domains": self.domains_, "shrinkage": self.shrinkage_, "scales": [float(s) for s in self.scales_]}

    @classmethod
    def from_state(cls, state: dict[str, Any], weights: dict, prefix: str) -> "DomainGaussian":
        """Rebuild from :meth:`state` and the torch module's state_dict entries under ``prefix``."""
        g = cls()
        g.domains_ = list(state["domains"])
        g.shrinkage_ = float(state["shrinkage"])
        g.means_ = weights[f"{prefix}means"].double().numpy()
        g.precision_ = weights[f"{prefix}precision"].double().numpy()
        g.scales_ = weights[f"{prefix}scales"].double().numpy()
        return g


# ---------------------------------------------------------------------- detectors
class _ClipStatsDetector(Detector):
    """Shared fit/score/export of the detectors on clip statistics."""

    def __init__(self, *, n_bands: int = 8, selective: bool = True, threshold: str = "gamma:0.9",
                 n_frames: int = MIN_FRAMES, random_state: int = 0):
        self.n_bands = n_bands
        self.selective = selective
        self.threshold = threshold
        self.n_frames = n_frames
        self.random_state = random_state

    def _validate_params(self) -> ThresholdSpec:
        check_int("n_bands", self.n_bands, 1)
        check_int("n_frames", self.n_frames, MIN_FRAMES)
        if not isinstance(self.selective, (bool, np.bool_)):
            raise ParameterError(f"selective: expected true or false, got {self.selective!r}")
        return ThresholdSpec.parse(self.threshold)

    def _new_head(self):  # pragma: no cover - provided by subclasses
        """An unfitted DomainGaussian or DomainKnn."""
        raise NotImplementedError

    @staticmethod
    def _standardisation(F: np.ndarray, dom: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centre (the mean) and scale (the pooled within-domain standard deviation) of each
        statistic: a domain shift must not count as normal variation."""
        center = F.mean(axis=0)
        parts = [F[dom == d] - F[dom == d].mean(axis=0) for d in np.unique(dom) if np.sum(dom == d) > 1]
        spread = np.sqrt(np.mean(np.concatenate(parts) ** 2, axis=0)) if parts else F.std(axis=0)
        return center, np.maximum(spread, _EPS * np.maximum(1.0, np.abs(center)))

    def fit(self, X: Sequence[np.ndarray], y: Any = None, *, metadata: Sequence[dict] | None = None,
            progress: Any = None):
        """Fit on normal clips; fit the threshold on their cross-fitted scores.

        The per-domain scales and the threshold come from **cross-fitted** scores: the clips
        are dealt into up to 10 folds (stratified by domain) and each fold is scored by a model
        (standardisation included) fitted on the other folds, so they are the scores of normal
        clips the model has not seen. In-sample distances would be far smaller than a new
        clip's when the statistics outnumber the clips.

        Parameters
        ----------
        X : sequence of np.ndarray or FrameStore
            Normal clips ``(n_mels, n_time)`` in dB, at least 2, each ``n_time >= n_frames``.
        y : ignored
        metadata : sequence of dict, optional
            One dict per clip; its ``domain`` (``source``/``target``) selects the per-domain
            references when ``selective``.
        progress : callable, optional
            Called once when done as ``progress(1, 1, 0.0, None)``.

        Returns
        -------
        self
        """
        spec = self._validate_params()
        clips = as_clips(X, self.n_frames)
        n_mels = int(np.shape(clips[0])[0])
        if self.n_bands > n_mels:
            raise ParameterError(f"n_bands: expected at most n_mels={n_mels}, got {self.n_bands}")
        if len(clips) < MIN_CLIPS:
            raise ParameterError(f"X: {self.kind} needs at least {MIN_CLIPS} normal clips, got {len(clips)}")
        domain_list = domain_labels(metadata, len(clips)) if self.selective else ["all"] * len(clips)
        dom = np.asarray(domain_list)
        domains = sorted(set(domain_list))
        F = clip_stats(clips, n_bands=self.n_bands)

        n = len(F)
        n_folds = min(n, _CROSS_FOLDS)
        fold = _folds(dom, domains, n_folds, np.random.default_rng(self.random_state))
        held = np.full((n, len(domains)), np.inf)
        for k in range(n_folds):
            test = fold == k
            # (with fewer than 3 clips left, a standardisation fitted on them is degenerate)
            part = ~test if np.sum(~test) >= 3 else np.ones(n, bool)
            center, scale = self._standardisation(F[part], dom[part])
            head = self._new_head().fit((F[~test] - center) / scale, dom[~test], domains)
            held[test] = head.distances((F[test] - center) / scale)

        self.center_, self.scale_ = self._standardisation(F, dom)
        self.head_ = self._new_head().fit((F - self.center_) / self.scale_, dom, domains)
        self.head_.scales_ = domain_scales(held, dom, domains)
        calibration = selective_scores(held, self.head_.scales_)

        self.n_mels_ = n_mels
        self.domain_counts_ = {d: int(np.sum(dom == d)) for d in domains}
        self.train_scores_ = calibration
        self.calibration_scores_ = calibration
        self.threshold_source_ = CROSS_FIT
        self.threshold_ = float(fit_threshold(calibration, spec))
        self.n_train_clips_ = n
        self.n_calibration_clips_ = n
        self.history_ = {}
        if progress is not None:
            progress(1, 1, 0.0, None)
        return self

    def _stats(self, X: Sequence[np.ndarray]) -> np.ndarray:
        clips = as_clips(X, self.n_frames)
        n_mels = int(np.shape(clips[0])[0])
        if n_mels != self.n_mels_:
            raise ParameterError(f"X: expected {self.n_mels_} mel bands as in training, got {n_mels}")
        return (clip_stats(clips, n_bands=self.n_bands) - self.center_) / self.scale_

    def score_samples(self, X: Sequence[np.ndarray]) -> np.ndarray:
        """Clip scores ``(n_clips,)``: the smallest per-domain scaled distance (about 1 for a
        typical new normal clip of that domain)."""
        self._check_fitted()
        return self.head_.score(self._stats(X))

    def window_scores(self, X: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One "window" per clip: ``[array([score])]`` (the bundle's view of a clip-level model)."""
        return [np.array([s]) for s in self.score_samples(X)]

    # -- export
    def scoring_module(self):
        """The torch scoring graph: log-mel ``(batch, n_time, n_mels)`` -> ``(batch, 1)``."""
        self._check_fitted()
        import torch
        from torch import nn

        from earshot.models.frugal import ClipScorer, ClipStats, Standardize

        encoder = nn.Sequential(
            ClipStats(self.n_mels_, self.n_bands),
            Standardize(torch.from_numpy(self.center_.astype(np.float32)),
                        torch.from_numpy((1.0 / self.scale_).astype(np.float32))),
        )
        return ClipScorer(encoder, self.head_.torch_module()).eval()

    def state_dict(self) -> dict:
        """Weights of the scoring graph (statistics and references as buffers)."""
        return self.scoring_module().state_dict()

    def fitted_state(self) -> dict[str, Any]:
        """What a bundle records of the fitted detector (JSON-safe)."""
        self._check_fitted()
        return {
            **self._fitted_common(),
            "domains": self.domain_counts_,
            "head": self.head_.state(),
        }

    @classmethod
    def from_fitted(cls, params: dict[str, Any], state: dict[str, Any], weights: dict):
        """Rebuild a fitted detector from a bundle's parameters, fitted state and weights."""
        det = cls(**params)
        det._restore_common(state, default_source=CROSS_FIT)
        det.center_ = weights["encoder.1.center"].double().numpy()
        det.scale_ = 1.0 / weights["encoder.1.inv_scale"].double().numpy()
        det.head_ = det._new_head().from_state(state["head"], weights, "head.")
        det.domain_counts_ = dict(state.get("domains", {}))
        return det


_COMMON_PARAMS_DOC = """    n_bands : int
        Groups of mel bands of the spread and delta statistics (see
        :mod:`earshot.features.clipstats`).
    selective : bool
        Per-domain references, the smallest scaled distance wins (True); False pools every
        clip into one reference.
    threshold : str
        ``gamma:q``, ``percentile:p``, ``mean-std:k``, ``max`` or ``value:x``, fitted on the
        cross-fitted scores of the training clips.
    n_frames : int
        Fewest frames a clip must have (at least 5: the longest modulation lag + 1).
    random_state : int
        Seeds the assignment of clips to the calibration folds."""


class GaussianDetector(_ClipStatsDetector):
    """Mahalanobis distance of standardised clip statistics to the normal clips' mean
    (``--model gauss``).

    Each domain has its own mean; the covariance is pooled over domains (each domain centred on
    its own mean) and shrunk towards ``mu * I`` (Ledoit-Wolf by default), so it stays well
    conditioned with a few clips and many statistics. Each domain's distances are divided by
    the mean cross-fitted distance of its own clips; the smallest is the score.

    Parameters
    ----------
    shrinkage : "ledoit-wolf" or float
        Ledoit-Wolf's estimate, or a fixed value in [0, 1] (1: a diagonal model of the
        standardised statistics).
{common}

    Attributes
    ----------
    threshold_, threshold_source_ ("cross-fit"), train_scores_, calibration_scores_
        The cross-fitted scores of the training clips (the threshold is fitted on them).
    head_ : DomainGaussian
        ``means_``, ``precision_``, ``shrinkage_``, ``scales_``.
    center_, scale_ : np.ndarray
        The standardisation of the statistics, ``(n_features,)``: the mean, and the pooled
        within-domain standard deviation.
    """

    kind = "gauss"

    def __init__(self, *, shrinkage: str | float = "ledoit-wolf", n_bands: int = 8, selective: bool = True,
                 threshold: str = "gamma:0.9", n_frames: int = MIN_FRAMES, random_state: int = 0):
        super().__init__(n_bands=n_bands, selective=selective, threshold=threshold, n_frames=n_frames,
                         random_state=random_state)
        self.shrinkage = shrinkage

    def _validate_params(self) -> ThresholdSpec:
        if self.shrinkage != "ledoit-wolf":
            ok = isinstance(self.shrinkage, (int, float, np.floating)) and not isinstance(self.shrinkage, bool)
            if not ok or not 0.0 <= float(self.shrinkage) <= 1.0:
                raise ParameterError(f"shrinkage: expected 'ledoit-wolf' or a number in [0, 1], got {self.shrinkage!r}")
        return super()._validate_params()

    def _new_head(self) -> DomainGaussian:
        return DomainGaussian(self.shrinkage)

    @property
    def shrinkage_(self) -> float:
        """The covariance shrinkage used."""
        return self.head_.shrinkage_


class KnnDetector(_ClipStatsDetector):
    """Mean distance to the k nearest normal clips in standardised clip statistics
    (``--model knn``).

    Each domain keeps its own clips as references; each domain's distances are divided by the
    mean cross-fitted k-NN distance of its own clips; the smallest is the score.

    Parameters
    ----------
    n_neighbors : int
        Neighbours averaged (at most the domain's clips).
{common}

    Attributes
    ----------
    threshold_, threshold_source_ ("cross-fit"), train_scores_, calibration_scores_
        The cross-fitted scores of the training clips (the threshold is fitted on them).
    head_ : DomainKnn
        ``refs_``, ``ks_``, ``scales_``.
    center_, scale_ : np.ndarray
        The standardisation of the statistics, ``(n_features,)``: the mean, and the pooled
        within-domain standard deviation.
    """

    kind = "knn"

    def __init__(self, *, n_neighbors: int = 2, n_bands: int = 8, selective: bool = True,
                 threshold: str = "gamma:0.9", n_frames: int = MIN_FRAMES, random_state: int = 0):
        super().__init__(n_bands=n_bands, selective=selective, threshold=threshold, n_frames=n_frames,
                         random_state=random_state)
        self.n_neighbors = n_neighbors

    def _validate_params(self) -> ThresholdSpec:
        check_int("n_neighbors", self.n_neighbors, 1)
        return super()._validate_params()

    def _new_head(self) -> DomainKnn:
        return DomainKnn(self.n_neighbors)


GaussianDetector.__doc__ = GaussianDetector.__doc__.replace("{common}", _COMMON_PARAMS_DOC)
KnnDetector.__doc__ = KnnDetector.__doc__.replace("{common}", _COMMON_PARAMS_DOC)
