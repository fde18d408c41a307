"""Where ``gauss`` and ``knn`` lived before they got a module each: a re-export for code that
imports ``earshot.detection.frugal`` (see :mod:`earshot.detection.gauss`,
:mod:`earshot.detection.knn`, :mod:`earshot.detection.domain_heads`,
:mod:`earshot.detection.clipstats_base`)."""

from earshot.detection.base import as_clips
from earshot.detection.clipstats_base import CROSS_FIT, MIN_CLIPS
from earshot.detection.domain_heads import (
    DomainGaussian,
    DomainKnn,
    domain_labels,
    domain_scales,
    ledoit_wolf,
    selective_scores,
)
from earshot.detection.gauss import GaussianDetector
from earshot.detection.knn import KnnDetector

__all__ = ["CROSS_FIT", "MIN_CLIPS", "DomainGaussian", "DomainKnn", "GaussianDetector", "KnnDetector", "as_clips",
           "domain_labels", "domain_scales", "ledoit_wolf", "selective_scores"]
