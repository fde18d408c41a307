"""Writing a fitted detector as a bundle directory (needs torch: export and weights)."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import platform
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from earshot import __version__
from earshot._util.fs import atomic_dir
from earshot.bundle.format import FORMAT_VERSION, MANIFEST, ONNX_FILE, SCORE_DIRECTION, WEIGHTS_FILE
from earshot.bundle.quantize import store_int8_graph
from earshot.bundle.scorer import Bundle
from earshot.detection import detector_class
from earshot.errors import BundleError
from earshot.features.config import FeatureConfig

__all__ = ["save_bundle", "write_bundle", "export_onnx", "load_detector"]

log = logging.getLogger(__name__)

#: ONNX opset of exported scoring graphs.
OPSET = 17


def _versions() -> dict[str, str]:
    import onnxruntime  # deferred: checked only when a bundle is written
    import torch  # deferred: torch is needed only to save a trained model

    return {
        "earshot": __version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }


def export_onnx(module, path: Path, *, n_mels: int, min_frames: int) -> None:
    """Export a scoring module ``(batch, n_time, n_mels) -> (batch, n_windows)`` to ONNX.

    Dynamic batch and time axes. Uses torch's TorchScript exporter (fast, no extra
    dependency); falls back to the torch.export-based exporter where that one is gone.
    """
    import torch  # deferred: torch is needed only to save a trained model

    example = torch.zeros(2, max(min_frames, 8) + 3, n_mels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module,
                (example,),
                str(path),
                input_names=["logmel"],
                output_names=["window_scores"],
                dynamic_axes={"logmel": {0: "batch", 1: "n_time"}, "window_scores": {0: "batch", 1: "n_windows"}},
                opset_version=OPSET,
                dynamo=False,
            )
        except (TypeError, RuntimeError, AttributeError) as exc:  # pragma: no cover - depends on torch version
            log.info("TorchScript ONNX export unavailable (%s); using torch.export", exc)
            batch = torch.export.Dim("batch")
            time = torch.export.Dim("n_time", min=min_frames)
            torch.onnx.export(
                module,
                (example,),
                str(path),
                input_names=["logmel"],
                output_names=["window_scores"],
                dynamic_shapes={"logmel": {0: batch, 1: time}},
                dynamo=True,
                external_data=False,
                verbose=False,
            )


def write_bundle(directory: Path, detector, *, features: FeatureConfig, channel: int | None,
                 training: dict[str, Any] | None = None, validation: dict[str, Any] | None = None,
                 check_clips: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
    """Write the bundle files into an existing (empty) directory; return the manifest.

    With ``check_clips`` (log-mel clips of the group), a dynamic-int8 copy of the scoring graph
    is stored too when its clip scores on them agree with the float32 graph's
    (:func:`earshot.bundle.quantize.store_int8_graph`; the manifest's ``scoring.int8``).
    """
    import torch  # deferred: torch is needed only to save a trained model

    state = detector.fitted_state()
    directory = Path(directory)
    int8 = None
    if hasattr(detector, "scoring_graph"):  # a detector that builds its ONNX graph itself (encoder)
        (directory / ONNX_FILE).write_bytes(detector.scoring_graph(features))
    else:
        module = detector.scoring_module()
        module = module.export_copy() if hasattr(module, "export_copy") else module  # e.g. batch norms folded
        export_onnx(module, directory / ONNX_FILE, n_mels=features.n_mels,
                    min_frames=int(detector.get_params().get("n_frames", 1)))
        int8 = store_int8_graph(directory, check_clips, how=str(detector.get_params().get("aggregate", "mean")))
    torch.save(detector.state_dict(), directory / WEIGHTS_FILE)
    manifest = {
        "format_version": FORMAT_VERSION,
        "kind": "bundle",
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "model": {"kind": detector.kind, "params": detector.get_params()},
        "features": {**features.to_dict(), "channel": channel},
        "normalisation": {
            "mean": [float(v) for v in getattr(detector, "mean_", [])],
            "std": [float(v) for v in getattr(detector, "std_", [])],
        },
        "threshold": {
            "value": float(detector.threshold_),
            "method": str(detector.get_params().get("threshold")),
            "source": state.get("threshold_source"),
            "n_clips": state.get("n_calibration_clips"),
        },
        "aggregate": detector.get_params().get("aggregate", "mean"),
        "score_direction": SCORE_DIRECTION,
        "scoring": {**_scoring(detector, features), **({"int8": int8} if int8 is not None else {})},
        "fitted": state,
        "training": training or {},
        "validation": validation or {},
    }
    with open(directory / MANIFEST, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2, allow_nan=False, default=_json_default)
    return manifest


def _scoring(detector, features: FeatureConfig) -> dict[str, Any]:
    """The manifest's ``scoring``: what ``model.onnx`` takes. A detector whose ``input`` is
    ``"waveform"`` (a waveform-input encoder) takes the decoded signal at ``sr``; every other
    takes the log-mel (no ``input`` recorded in older bundles means log-mel too)."""
    scoring = {"graph": ONNX_FILE, "input": "logmel", "input_shape": ["batch", "n_time", "n_mels"],
               "output": "window_scores", "min_frames": int(detector.get_params().get("n_frames", 1))}
    if getattr(detector, "input", "logmel") == "waveform":
        scoring.update(input="waveform", input_shape=["batch", "n_samples"], sr=int(features.sr), min_frames=1,
                       min_samples=int(detector.contract_.min_samples))
    return scoring


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def save_bundle(path: str | os.PathLike, detector, *, features: FeatureConfig, channel: int | None = None,
                training: dict[str, Any] | None = None, validation: dict[str, Any] | None = None,
                check_clips: Sequence[np.ndarray] | None = None) -> Path:
    """Save a fitted detector as a bundle directory, atomically (nothing half-written is left).

    Parameters
    ----------
    path : path-like
        The bundle directory; an existing one is replaced only once the new one is complete.
    detector : Detector
        A fitted detector providing ``fitted_state``, ``scoring_module``, ``state_dict``, ``get_params``.
    features : FeatureConfig
        How the clips were turned into log-mel features.
    channel : int or None
        The channel used when decoding (None: mean of all channels).
    check_clips : sequence of np.ndarray, optional
        Log-mel clips ``(n_mels, n_time)`` to check a dynamic-int8 scoring graph on; without
        them only the float32 graph is stored.

    Returns
    -------
    Path
    """
    path = Path(path)
    with atomic_dir(path) as tmp:
        write_bundle(tmp, detector, features=features, channel=channel, training=training, validation=validation,
                     check_clips=check_clips)
    log.info("saved bundle %s", path)
    return path


def load_detector(path: str | os.PathLike):
    """Rebuild the fitted torch detector of a bundle (for further training or comparison).

    The weights are read with ``torch.load(..., weights_only=True)``: no pickled code runs.
    """
    import torch  # deferred: torch is needed only to save a trained model

    bundle = Bundle(path)
    weights_path = Path(path) / WEIGHTS_FILE
    if not weights_path.exists():
        raise BundleError(f"{path}: incomplete bundle (no {WEIGHTS_FILE})")
    try:
        weights = torch.load(weights_path, weights_only=True, map_location="cpu")
    except Exception as exc:  # torch raises several types for a bad file
        raise BundleError(f"{weights_path}: cannot be read ({exc})") from None
    cls = detector_class(bundle.kind)
    return cls.from_fitted(bundle.manifest["model"]["params"], bundle.manifest["fitted"], weights)
