"""Detectors: fit on normal clips, score (higher = more anomalous), threshold, predict.

Importing this package does not import torch; a detector imports it when it is trained.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable, Mapping
from typing import Any

from earshot._util.lazy import lazy_exports
from earshot.detection.aggregate import aggregate, parse_aggregate
from earshot.detection.base import Detector, check_clips
from earshot.detection.thresholds import ThresholdSpec, fit_threshold
from earshot.errors import ParameterError

__all__ = [
    "DETECTORS",
    "DEVICES",
    "check_device",
    "resolve_device",
    "Detector",
    "ThresholdSpec",
    "aggregate",
    "SHARED_OPTIONS",
    "check_clips",
    "detector_class",
    "detector_params",
    "frames_needed",
    "fit_threshold",
    "make_detector",
    "parse_aggregate",
]

#: Names loaded when first used (PEP 562) from the training helpers, which scoring (through
#: :mod:`.aggregate` and :mod:`.base`) does not need: name -> its module under earshot.detection.
_LAZY = dict.fromkeys(("DEVICES", "check_device", "resolve_device"), "_training")

lazy_exports(__name__, _LAZY)


#: Model kind (as in ``earshot train --model``) -> "module:Class".
DETECTORS: dict[str, str] = {
    "dense-ae": "earshot.detection.autoencoder:AutoencoderDetector",
    "gauss": "earshot.detection.gauss:GaussianDetector",
    "knn": "earshot.detection.knn:KnnDetector",
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


#: Options the command line and the workflows offer for every kind (``--epochs``,
#: ``--threshold``...): passed to the detectors that have such a parameter, left out for the others.
SHARED_OPTIONS = ("epochs", "batch_size", "n_frames", "threshold", "aggregate", "device")


def detector_params(kind: str, params: Mapping[str, Any], *, optional: Iterable[str] = (),
                    drop_none: bool = True) -> dict[str, Any]:
    """The keyword parameters of detector ``kind`` among ``params``: the one place that decides
    which given parameters a kind accepts.

    Parameters
    ----------
    kind : str
        A registered model kind (:data:`DETECTORS`).
    params : mapping
        Parameter name -> value.
    optional : iterable of str
        Names (e.g. :data:`SHARED_OPTIONS`) left out, without an error, when ``kind`` has no
        such parameter.
    drop_none : bool
        Leave out None values ("the detector's default").

    Returns
    -------
    dict
        The accepted parameters, in the given order.

    Raises
    ------
    ParameterError
        A name the kind does not accept (not in ``optional``); the message starts with the
        names and lists the accepted ones.
    """
    accepted = inspect.signature(detector_class(kind)).parameters
    optional = set(optional)
    out, unknown = {}, []
    for key, value in params.items():
        if (drop_none and value is None) or (key in optional and key not in accepted):
            continue
        if key not in accepted:
            unknown.append(key)
            continue
        out[key] = value
    if unknown:
        names = ", ".join(sorted(unknown))
        raise ParameterError(f"{names}: {kind} has no parameter {names} (accepted: {', '.join(accepted)})")
    return out


def frames_needed(kind: str, params: Mapping[str, Any]) -> Any:
    """The ``n_frames`` a detector of ``kind`` built with ``params`` has (given or its default),
    None when the kind has no such parameter: the fewest frames a clip must have."""
    default = getattr(inspect.signature(detector_class(kind)).parameters.get("n_frames"), "default", None)
    return params.get("n_frames", default)


def make_detector(kind: str, **params: Any) -> Detector:
    """A new, unfitted detector of the given kind with keyword parameters."""
    return detector_class(kind)(**params)
