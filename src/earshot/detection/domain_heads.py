"""Per-domain reference heads of the clip-level detectors (``gauss``, ``knn``, ``embed``) and
the "selective" scoring they share.

When the training clips come from several domains (``metadata[i]["domain"]``:
``source``/``target``), each domain gets its own reference (its mean, or its clips), each
domain's distances are divided by the typical distance of that domain's own normal clips, and a
clip's score is the smallest of the per-domain scores (the DCASE 2022+ way). Computed in numpy
(float64) here; the torch twins (:mod:`earshot.models.frugal`, float32) are the bundle's graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.linalg

from earshot.errors import ParameterError

__all__ = ["DomainGaussian", "DomainKnn", "EPS", "domain_labels", "domain_scales", "ledoit_wolf",
           "selective_scores"]

#: Floor of per-feature standard deviations and per-domain scales.
EPS = 1e-6


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


def _pairwise(A: np.ndarray, B: np.ndarray, metric: str) -> np.ndarray:
    """Distances ``(len(A), len(B))``: Euclidean, or ``1 - <a, b>`` for cosine (unit rows)."""
    dot = A @ B.T
    if metric == "cosine":
        return 1.0 - dot
    sq = (A * A).sum(1)[:, None] - 2.0 * dot + (B * B).sum(1)[None, :]
    return np.sqrt(np.maximum(sq, 0.0))


def _inverse(cov: np.ndarray) -> np.ndarray:
    """Inverse of a covariance matrix: Cholesky, or the pseudo-inverse when it is singular."""
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
        scales.append(max(float(own.mean()), EPS) if own.size else np.nan)
    largest = int(np.argmax(counts))
    fallback = scales[largest] if np.isfinite(scales[largest]) else 1.0
    return np.array([v if np.isfinite(v) else fallback for v in scales])


def selective_scores(distances: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """The smallest per-domain scaled distance, ``(n_clips,)`` (1.0 where none is finite)."""
    scores = (distances / scales).min(axis=1)
    return np.where(np.isfinite(scores), scores, 1.0)


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
        import torch  # deferred: torch is only needed to export the scoring graph

        from earshot.models.frugal import DomainKnn as TorchDomainKnn  # deferred: earshot.models imports torch

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
        import torch  # deferred: torch is only needed to export the scoring graph

        from earshot.models.frugal import DomainGaussian as TorchDomainGaussian  # deferred: earshot.models imports torch

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
