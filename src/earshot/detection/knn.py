"""``--model knn``: mean distance to the k nearest normal clips in standardised clip
statistics, per domain (see :mod:`earshot.detection.clipstats_base`)."""

from __future__ import annotations

from earshot.detection.base import int_at_least
from earshot.detection.clipstats_base import COMMON_PARAMS_DOC, ClipStatsDetector
from earshot.detection.domain_heads import DomainKnn
from earshot.features.clipstats import MIN_FRAMES

__all__ = ["KnnDetector"]


class KnnDetector(ClipStatsDetector):
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
    head_ : BlockHeads (two heads) or DomainKnn
        ``refs_``, ``ks_``, ``scales_``.
    center_, scale_ : np.ndarray
        The standardisation of the statistics, ``(n_features,)``: the mean, and the pooled
        within-domain standard deviation.
    """

    kind = "knn"

    def __init__(self, *, n_neighbors: int = 2, heads: int = 2,
                 n_mean_bands: int | None = 32, n_bands: int = 8, selective: bool = True, level: str = "leq",
                 threshold: str = "gamma:0.9", n_frames: int = MIN_FRAMES, random_state: int = 0):
        super().__init__(heads=heads, n_mean_bands=n_mean_bands, n_bands=n_bands, selective=selective,
                         level=level, threshold=threshold, n_frames=n_frames, random_state=random_state)
        self.n_neighbors = n_neighbors

    param_checks = (("n_neighbors", int_at_least(1)), *ClipStatsDetector.param_checks)

    def _new_head(self) -> DomainKnn:
        return DomainKnn(self.n_neighbors)


KnnDetector.__doc__ = KnnDetector.__doc__.replace("{common}", COMMON_PARAMS_DOC)
