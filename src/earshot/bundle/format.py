"""The on-disk format of a model bundle and a model set (see DESIGN.md, "The model bundle").

A bundle is one directory::

    manifest.json   format_version, versions, model kind and params, feature config,
                    normalisation, threshold (value, method, source), score direction,
                    training summary, validation metrics
    model.onnx      the scoring graph: log-mel (batch, n_time, n_mels) -> window scores (batch, n_windows)
    model.int8.onnx optional: the same graph with dynamic int8 MatMul/Gemm weights, stored at save
                    time only when its clip scores agree with model.onnx's (manifest scoring.int8)
    weights.pt      state_dict for further training (torch.load(..., weights_only=True))
    faults.json     optional: fault signatures of the group's fault-labelled anomalies (``train
                    --labels`` with a ``fault`` column; manifest ``faults``, see earshot.bundle.faults)

A model set is a directory with ``index.json`` and one bundle per group.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from earshot import __version__
from earshot.errors import BundleError

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "INDEX",
    "ONNX_FILE",
    "ONNX_INT8_FILE",
    "WEIGHTS_FILE",
    "FAULTS_FILE",
    "SCORE_DIRECTION",
    "read_json",
    "check_format",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
INDEX = "index.json"
ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model.int8.onnx"
WEIGHTS_FILE = "weights.pt"
FAULTS_FILE = "faults.json"
SCORE_DIRECTION = "higher-is-anomalous"


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object, turning every failure into one BundleError line naming the file."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise BundleError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise BundleError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def check_format(data: dict[str, Any], path: Path) -> None:
    """Refuse unknown format versions; warn when the writing earshot version differs."""
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{path}: unknown model format_version {version!r} (this earshot reads version {FORMAT_VERSION}); "
            "retrain the model or use the earshot version that wrote it"
        )
    written_by = data.get("versions", {}).get("earshot")
    if written_by and written_by != __version__:
        log.warning("%s was written by earshot %s; this is earshot %s", path, written_by, __version__)
