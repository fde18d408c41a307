"""The shared fit/score/export of the detectors on clip-level log-mel statistics (``gauss``
and ``knn``).

Both fit in well under a second on 10-50 clips, need no deep training, and handle a domain
shift the DCASE 2022+ way ("selective" scoring, see :mod:`earshot.detection.domain_heads`): a
handful of target-domain clips then count as much as hundreds of source clips, and the test
clip's domain need not be known.

Two heads (``heads=2``, the default): a **spectrum** head on the per-mel means averaged into
``n_mean_bands`` (32) groups, and a **dynamics** head on the spread, delta and envelope
statistics plus the clip's level (``level="leq"``: its mean power in dB; ``"max"``: its loudest
cell, the first two-head layout). Each head standardises, fits its own per-domain
reference and its own cross-fitted per-domain scales; a clip's score is, per domain, the mean
of the two heads' scaled distances, the smallest domain kept. One pooled distance over every
statistic (``heads=1``, the first layout, every mel band's mean and no peak) let the larger,
noisier block dominate: on real fan recordings the temporal statistics of normals with
background events raised false alarms, and a 128-dimensional mean block with 10 training clips
drowned a 9 dB rise of the lowest band (bench/README.md, "Real recordings"). The loudest cell
of a clip is one extreme value of ~40,000, which a background click sets; the mean power is a
level that a few cells cannot move, and it raised the fan's AUC without costing the synthetic
or DCASE sets (same page).

Scores are computed in numpy (float64) here and by the exported torch graph
(:mod:`earshot.models.frugal`, float32) in a bundle; a test pins the two together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from earshot.detection.base import ClipLevelDetector, as_clips, check_bool, int_at_least
from earshot.detection.domain_heads import EPS, domain_labels, domain_scales, selective_scores
from earshot.detection.thresholds import fit_threshold
from earshot.errors import ParameterError
from earshot.features.clipstats import LEVELS, MIN_FRAMES, clip_stats, n_mean_groups

__all__ = ["BlockHeads", "COMMON_PARAMS_DOC", "CROSS_FIT", "MIN_CLIPS", "ClipStatsDetector"]

#: Fewest clips the clip-level detectors fit on.
MIN_CLIPS = 2
#: Folds of the cross-fitted calibration.
_CROSS_FOLDS = 10
#: How the calibration scores were obtained (``threshold_source_``).
CROSS_FIT = "cross-fit"


def _folds(dom: np.ndarray, domains: Sequence[str], n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """A fold per clip, each domain's clips dealt round the folds in a random order."""
    fold = np.empty(len(dom), dtype=np.int64)
    start = 0
    for d in domains:
        idx = rng.permutation(np.flatnonzero(dom == d))
        fold[idx] = (start + np.arange(len(idx))) % n_folds
        start += len(idx)
    return fold


class BlockHeads:
    """Heads on column blocks of the statistics; per domain the mean of their scaled distances,
    the smallest domain kept (numpy; the torch twin is :class:`earshot.models.frugal.MeanOfHeads`).

    Parameters
    ----------
    heads : list of DomainGaussian or DomainKnn
        Fitted, with the same domains and their ``scales_`` set.
    blocks : list of (int, int)
        The ``[start, stop)`` columns each head reads.
    """

    def __init__(self, heads: list, blocks: list[tuple[int, int]]):
        self.heads = list(heads)
        self.blocks = [(int(a), int(b)) for a, b in blocks]

    def score(self, Z: np.ndarray) -> np.ndarray:
        """Per domain the mean scaled distance over the heads, the smallest kept, ``(n,)``."""
        scaled = [h.distances(Z[:, a:b]) / h.scales_ for h, (a, b) in zip(self.heads, self.blocks)]
        return selective_scores(np.mean(scaled, axis=0), np.ones(len(self.heads[0].scales_)))

    def torch_module(self):
        """The torch twin (float32)."""
        from earshot.models.frugal import MeanOfHeads  # deferred: earshot.models imports torch

        return MeanOfHeads([h.torch_module() for h in self.heads], self.blocks)

    def state(self) -> dict[str, Any]:
        """JSON-safe description: the blocks and each head's state."""
        return {"blocks": [list(b) for b in self.blocks], "heads": [h.state() for h in self.heads]}

    @classmethod
    def from_state(cls, state: dict[str, Any], weights: dict, prefix: str, new_head) -> BlockHeads:
        """Rebuild from :meth:`state`; ``new_head()`` makes an unfitted head of the right kind."""
        heads = [new_head().from_state(s, weights, f"{prefix}heads.{i}.") for i, s in enumerate(state["heads"])]
        return cls(heads, [tuple(b) for b in state["blocks"]])


def _heads(name: str, value: Any) -> None:
    if isinstance(value, bool) or value not in (1, 2):
        raise ParameterError(f"{name}: expected 1 (one pooled head) or 2 (spectrum and dynamics heads), got {value!r}")


def _level(name: str, value: Any) -> None:
    if value not in LEVELS:
        raise ParameterError(f"{name}: expected one of {', '.join(LEVELS)}, got {value!r}")


def _n_mean_bands(name: str, value: Any) -> None:
    if value is not None:
        int_at_least(1)(name, value)


class ClipStatsDetector(ClipLevelDetector):
    """Shared fit/score/export of the detectors on clip statistics."""

    def __init__(self, *, heads: int = 2, n_mean_bands: int | None = 32, n_bands: int = 8, selective: bool = True,
                 level: str = "leq", threshold: str = "gamma:0.9", n_frames: int = MIN_FRAMES,
                 random_state: int = 0):
        self.heads = heads
        self.level = level
        self.n_mean_bands = n_mean_bands
        self.n_bands = n_bands
        self.selective = selective
        self.threshold = threshold
        self.n_frames = n_frames
        self.random_state = random_state

    param_checks = (
        ("heads", _heads),
        ("level", _level),
        ("n_mean_bands", _n_mean_bands),
        ("n_bands", int_at_least(1)),
        ("n_frames", int_at_least(MIN_FRAMES)),
        ("selective", check_bool),
    )

    def _layout(self) -> dict[str, Any]:
        """The statistics' layout: ``n_mean_bands``, ``peak`` (the clip's level, with two heads), ``level``."""
        return {"n_mean_bands": self.n_mean_bands, "peak": self.heads == 2, "level": self.level}

    def _blocks(self, n_mels: int, n_features: int) -> list[tuple[int, int]]:
        """The columns of each head: all of them (one head), or the mean block and the rest."""
        if self.heads == 1:
            return [(0, n_features)]
        n_mean = n_mean_groups(n_mels, self.n_mean_bands)
        return [(0, n_mean), (n_mean, n_features)]

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
        return center, np.maximum(spread, EPS * np.maximum(1.0, np.abs(center)))

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
        F = clip_stats(clips, n_bands=self.n_bands, **self._layout())
        blocks = self._blocks(n_mels, F.shape[1])

        n = len(F)
        n_folds = min(n, _CROSS_FOLDS)
        fold = _folds(dom, domains, n_folds, np.random.default_rng(self.random_state))
        held = np.full((len(blocks), n, len(domains)), np.inf)
        for k in range(n_folds):
            test = fold == k
            # (with fewer than 3 clips left, a standardisation fitted on them is degenerate)
            part = ~test if np.sum(~test) >= 3 else np.ones(n, bool)
            center, scale = self._standardisation(F[part], dom[part])
            Z = (F - center) / scale
            for b, (lo, hi) in enumerate(blocks):
                head = self._new_head().fit(Z[~test, lo:hi], dom[~test], domains)
                held[b, test] = head.distances(Z[test, lo:hi])

        self.center_, self.scale_ = self._standardisation(F, dom)
        Z = (F - self.center_) / self.scale_
        heads = []
        for b, (lo, hi) in enumerate(blocks):
            head = self._new_head().fit(Z[:, lo:hi], dom, domains)
            head.scales_ = domain_scales(held[b], dom, domains)
            heads.append(head)
        self.head_ = heads[0] if len(heads) == 1 else BlockHeads(heads, blocks)
        calibration = selective_scores(np.mean([held[b] / h.scales_ for b, h in enumerate(heads)], axis=0),
                                       np.ones(len(domains)))

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
        return (clip_stats(clips, n_bands=self.n_bands, **self._layout()) - self.center_) / self.scale_

    def score_samples(self, X: Sequence[np.ndarray]) -> np.ndarray:
        """Clip scores ``(n_clips,)``: the smallest per-domain scaled distance (about 1 for a
        typical new normal clip of that domain)."""
        self._check_fitted()
        return self.head_.score(self._stats(X))

    # -- export
    def scoring_module(self):
        """The torch scoring graph: log-mel ``(batch, n_time, n_mels)`` -> ``(batch, 1)``."""
        self._check_fitted()
        import torch  # deferred: torch is only needed to export the scoring graph
        from torch import nn  # deferred: as above

        from earshot.models.frugal import ClipScorer, ClipStats, Standardize  # deferred: earshot.models imports torch

        encoder = nn.Sequential(
            ClipStats(self.n_mels_, self.n_bands, **self._layout()),
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
        """Rebuild a fitted detector from a bundle's parameters, fitted state and weights.

        A bundle written before the two heads records no ``heads``: it is the first layout
        (one head, every mel band's mean, no peak) and is rebuilt as such; one written before
        ``level`` measured the level as the loudest cell (``max``)."""
        if "heads" not in params:
            params = {**params, "heads": 1, "n_mean_bands": None}
        params = {"level": "max", **params}
        det = cls(**params)
        det._restore_common(state, default_source=CROSS_FIT)
        det.center_ = weights["encoder.1.center"].double().numpy()
        det.scale_ = 1.0 / weights["encoder.1.inv_scale"].double().numpy()
        if "blocks" in state["head"]:
            det.head_ = BlockHeads.from_state(state["head"], weights, "head.", det._new_head)
        else:
            det.head_ = det._new_head().from_state(state["head"], weights, "head.")
        det.domain_counts_ = dict(state.get("domains", {}))
        return det


COMMON_PARAMS_DOC = """    heads : {2, 1}
        2: a spectrum head (per-mel means in ``n_mean_bands`` groups) and a dynamics head
        (spread, delta, envelope, the clip's level), their scaled distances averaged per
        domain; 1: one head on every statistic without the level (the first layout).
    n_mean_bands : int or None
        Groups of mel bands the per-mel means are averaged into (at most the mel bands; None:
        every band on its own).
    n_bands : int
        Groups of mel bands of the spread and delta statistics (see
        :mod:`earshot.features.clipstats`).
    selective : bool
        Per-domain references, the smallest scaled distance wins (True); False pools every
        clip into one reference.
    level : {"leq", "max"}
        The dynamics head's level statistic: the clip's mean power in dB (``leq``) or its
        loudest cell (``max``, the first two-head bundles); unused with one head.
    threshold : str
        ``gamma:q``, ``percentile:p``, ``mean-std:k``, ``max`` or ``value:x``, fitted on the
        cross-fitted scores of the training clips.
    n_frames : int
        Fewest frames a clip must have (at least 5: the longest modulation lag + 1).
    random_state : int
        Seeds the assignment of clips to the calibration folds."""
