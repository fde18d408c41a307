"""Scoring graphs of the clip-level detectors (gauss, knn, embed) as pure torch modules.

Every graph maps log-mel ``(batch, n_time, n_mels)`` to one score per clip, shaped
``(batch, 1)`` (one "window" per clip), so it exports to ONNX and scores through a bundle
like any frame-level model. They hold fitted statistics as buffers; nothing here trains.

- :class:`ClipStats`: the statistics of :mod:`earshot.features.clipstats` in torch;
- :class:`Standardize`: ``(f - center) * inv_scale``;
- :class:`DomainGaussian`: per-domain Mahalanobis distance, each divided by its domain's scale,
  the smallest kept;
- :class:`DomainKnn`: per-domain mean distance to the k nearest reference vectors (Euclidean
  or cosine), each divided by its domain's scale, the smallest kept;
- :class:`MeanOfHeads`: several such heads, each on its own block of statistics, their
  per-domain scaled distances averaged, the smallest domain kept;
- :class:`ClipScorer`: ``encoder`` then one of these heads.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from earshot.features.clipstats import LAGS, band_matrix, n_mean_groups

__all__ = ["ClipScorer", "ClipStats", "DomainGaussian", "DomainKnn", "MeanOfHeads", "Standardize"]


class ClipStats(nn.Module):
    """Clip-level log-mel statistics (see :func:`earshot.features.clipstats.clip_stats`).

    Parameters
    ----------
    n_mels, n_bands : int
    n_mean_bands : int or None
        Groups of the mean block (None: every mel band).
    peak : bool
        Append the clip's level.
    level : {"max", "leq"}
        Its loudest cell or its mean power in dB.

    Shapes
    ------
    ``forward``: ``(batch, n_time, n_mels)`` with ``n_time > max(LAGS)`` ->
    ``(batch, n_clip_stats(n_mels, n_bands, n_mean_bands, peak))``.
    """

    def __init__(self, n_mels: int, n_bands: int, n_mean_bands: int | None = None, peak: bool = False,
                 level: str = "max"):
        super().__init__()
        self.register_buffer("bands", torch.from_numpy(band_matrix(n_mels, n_bands)))
        self.peak = bool(peak)
        self.level = level
        self.pooled = n_mean_groups(n_mels, n_mean_bands) != n_mels
        if self.pooled:  # (a buffer only when used: the first graphs' weights keep their keys)
            self.register_buffer("mean_bands", torch.from_numpy(band_matrix(n_mels, n_mean_groups(n_mels, n_mean_bands))))

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        x = logmel
        mean = x.mean(dim=1)
        centred = x - mean.unsqueeze(1)
        spread = torch.sqrt((centred * centred).mean(dim=1))
        delta = (x[:, 1:, :] - x[:, :-1, :]).abs().mean(dim=1)
        e = x.mean(dim=2)
        ec = e - e.mean(dim=1, keepdim=True)
        env = [torch.sqrt((ec * ec).mean(dim=1))]
        for lag in LAGS:
            d = e[:, lag:] - e[:, :-lag]
            env.append(torch.sqrt((d * d).mean(dim=1)))
        parts = [mean @ self.mean_bands if self.pooled else mean, spread @ self.bands, delta @ self.bands,
                 torch.stack(env, dim=1)]
        if self.peak:
            top = x.amax(dim=(1, 2))
            if self.level == "leq":  # top + 10 log10 mean 10^((x - top) / 10), as exp and log for ONNX
                power = torch.exp((x - top[:, None, None]) * (math.log(10.0) / 10.0)).mean(dim=(1, 2))
                top = top + torch.log(power) * (10.0 / math.log(10.0))
            parts.append(top.unsqueeze(1))
        return torch.cat(parts, dim=1)


class Standardize(nn.Module):
    """``(f - center) * inv_scale`` with buffers of shape ``(n_features,)``."""

    def __init__(self, center: torch.Tensor, inv_scale: torch.Tensor):
        super().__init__()
        self.register_buffer("center", center.detach().clone().float())
        self.register_buffer("inv_scale", inv_scale.detach().clone().float())

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return (f - self.center) * self.inv_scale


class DomainGaussian(nn.Module):
    """Smallest per-domain scaled Mahalanobis distance.

    Parameters
    ----------
    means : torch.Tensor
        ``(n_domains, n_features)``, the mean of each domain's normal clips.
    precision : torch.Tensor
        ``(n_features, n_features)``, the inverse of the shrunk within-domain covariance.
    scales : torch.Tensor
        ``(n_domains,)``, each domain's typical distance of a normal clip to its mean.

    Shapes
    ------
    ``forward``: ``(batch, n_features)`` -> ``(batch, 1)``.
    """

    def __init__(self, means: torch.Tensor, precision: torch.Tensor, scales: torch.Tensor):
        super().__init__()
        self.register_buffer("means", means.detach().clone().float())
        self.register_buffer("precision", precision.detach().clone().float())
        self.register_buffer("scales", scales.detach().clone().float())

    def scaled(self, z: torch.Tensor) -> torch.Tensor:
        """Each domain's scaled distance, ``(batch, n_domains)``."""
        diff = z.unsqueeze(1) - self.means.unsqueeze(0)  # (batch, n_domains, n_features)
        m2 = ((diff @ self.precision) * diff).sum(dim=2)
        return torch.sqrt(torch.clamp(m2, min=0.0)) / self.scales

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.scaled(z).min(dim=1, keepdim=True).values


class DomainKnn(nn.Module):
    """Smallest per-domain scaled k-nearest-neighbour distance.

    Parameters
    ----------
    refs : list of torch.Tensor
        One ``(n_refs_d, n_features)`` tensor of reference (normal) vectors per domain.
    ks : list of int
        Neighbours averaged per domain (``1 <= ks[d] <= n_refs_d``).
    scales : torch.Tensor
        ``(n_domains,)``, each domain's typical k-NN distance of a normal clip.
    metric : {"euclidean", "cosine"}
        ``cosine`` expects unit-length vectors and uses ``1 - <a, b>``.

    Shapes
    ------
    ``forward``: ``(batch, n_features)`` -> ``(batch, 1)``.
    """

    def __init__(self, refs: list[torch.Tensor], ks: list[int], scales: torch.Tensor, metric: str = "euclidean"):
        super().__init__()
        if metric not in ("euclidean", "cosine"):
            raise ValueError(f"metric: expected euclidean or cosine, got {metric!r}")
        self.metric = metric
        self.ks = [int(k) for k in ks]
        for d, r in enumerate(refs):
            self.register_buffer(f"refs_{d}", r.detach().clone().float())
        self.register_buffer("scales", scales.detach().clone().float())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.scaled(z).min(dim=1, keepdim=True).values

    def scaled(self, z: torch.Tensor) -> torch.Tensor:
        """Each domain's scaled k-NN distance, ``(batch, n_domains)``."""
        out = []
        for d, k in enumerate(self.ks):
            refs = getattr(self, f"refs_{d}")
            dot = z @ refs.t()
            if self.metric == "cosine":
                dist = 1.0 - dot
            else:
                sq = (z * z).sum(dim=1, keepdim=True) - 2.0 * dot + (refs * refs).sum(dim=1).unsqueeze(0)
                dist = torch.sqrt(torch.clamp(sq, min=0.0))
            nearest = torch.topk(dist, k, dim=1, largest=False).values
            out.append(nearest.mean(dim=1) / self.scales[d])
        return torch.stack(out, dim=1)


class MeanOfHeads(nn.Module):
    """Heads on blocks of the statistics: per domain the mean of their scaled distances, then
    the smallest domain (the twin of :class:`earshot.detection.clipstats_base.BlockHeads`).

    Parameters
    ----------
    heads : list of nn.Module
        :class:`DomainGaussian` or :class:`DomainKnn` heads, with the same domains.
    blocks : list of (int, int)
        The ``[start, stop)`` columns each head reads.

    Shapes
    ------
    ``forward``: ``(batch, n_features)`` -> ``(batch, 1)``.
    """

    def __init__(self, heads: list[nn.Module], blocks: list[tuple[int, int]]):
        super().__init__()
        self.heads = nn.ModuleList(heads)
        self.blocks = [(int(a), int(b)) for a, b in blocks]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        parts = [head.scaled(z[:, a:b]) for head, (a, b) in zip(self.heads, self.blocks)]
        return torch.stack(parts, dim=0).mean(dim=0).min(dim=1, keepdim=True).values


class ClipScorer(nn.Module):
    """``head(encoder(logmel))``: log-mel ``(batch, n_time, n_mels)`` -> scores ``(batch, 1)``."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(logmel))
