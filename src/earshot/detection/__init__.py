"""Detectors: fit on normal clips, score (higher = more anomalous), threshold, predict.

Importing this package does not import torch; a detector imports it when it is trained.
"""

from __future__ import annotations

import importlib
from typing import Any

from earshot.detection.aggregate import aggregate, parse_aggregate
from earshot.detection.base import Detector, check_clips
from earshot.detection.thresholds import ThresholdSpec, fit_threshold
from earshot.errors import ParameterError

__all__ = [
    "DETECTORS",
    "Detector",
    "ThresholdSpec",
    "aggregate",
    "check_clips",
    "detector_class",
    "fit_threshold",
    "make_detector",
    "parse_aggregate",
]

#: Model kind (as in ``earshot train --model``) -> "module:Class".
DETECTORS: dict[str, str] = {
    "dense-ae": "earshot.detection.autoencoder:AutoencoderDetector",
    "gauss": "earshot.detection.frugal:GaussianDetector",
    "knn": "earshot.detection.frugal:KnnDetector",
    "embed": "earshot.detection.embed:EmbedDetector",
    "auto": "earshot.detection.auto:AutoDetector",
    "lstm-ae": "earshot.detection.lstm_autoencoder:LstmAutoencoderDetector",
    "cnn": "earshot.detection.cnn:CNNDetector",
    "encoder": "earshot.detection.encoder:EncoderDetector",
}


def detector_class(kind: str) -> type[Detector]:
    """The detector class registered under ``kind``."""
    if kind not in DETECTORS:
        raise ParameterError(f"model: expected one of {', '.join(sorted(DETECTORS))}, got {kind!r}")
    module, name = DETECTORS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def make_detector(kind: str, **params: Any) -> Detector:
    """A new, unfitted detector of the given kind with keyword parameters."""
    return detector_class(kind)(**params)
