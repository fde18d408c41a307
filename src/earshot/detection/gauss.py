"""``--model gauss``: Mahalanobis distance of standardised clip statistics to the normal
clips' mean, per domain (see :mod:`earshot.detection.clipstats_base`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from earshot.detection.clipstats_base import COMMON_PARAMS_DOC, ClipStatsDetector
from earshot.detection.domain_heads import DomainGaussian
from earshot.errors import ParameterError
from earshot.features.clipstats import MIN_FRAMES

__all__ = ["GaussianDetector"]


def _shrinkage(name: str, value: Any) -> None:
    if value != "ledoit-wolf":
        ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
        if not ok or not 0.0 <= float(value) <= 1.0:
            raise ParameterError(f"{name}: expected 'ledoit-wolf' or a number in [0, 1], got {value!r}")


class GaussianDetector(ClipStatsDetector):
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
    head_ : BlockHeads (two heads) or DomainGaussian
        ``means_``, ``precision_``, ``shrinkage_``, ``scales_``.
    center_, scale_ : np.ndarray
        The standardisation of the statistics, ``(n_features,)``: the mean, and the pooled
        within-domain standard deviation.
    """

    kind = "gauss"

    def __init__(self, *, shrinkage: str | float = "ledoit-wolf", heads: int = 2,
                 n_mean_bands: int | None = 32, n_bands: int = 8, selective: bool = True, level: str = "leq",
                 threshold: str = "gamma:0.9", n_frames: int = MIN_FRAMES, random_state: int = 0):
        super().__init__(heads=heads, n_mean_bands=n_mean_bands, n_bands=n_bands, selective=selective,
                         level=level, threshold=threshold, n_frames=n_frames, random_state=random_state)
        self.shrinkage = shrinkage

    param_checks = (("shrinkage", _shrinkage), *ClipStatsDetector.param_checks)

    def _new_head(self) -> DomainGaussian:
        return DomainGaussian(self.shrinkage)

    @property
    def shrinkage_(self) -> float:
        """The covariance shrinkage used (with two heads, the mean of theirs)."""
        heads = getattr(self.head_, "heads", [self.head_])
        return float(np.mean([h.shrinkage_ for h in heads]))


GaussianDetector.__doc__ = GaussianDetector.__doc__.replace("{common}", COMMON_PARAMS_DOC)
