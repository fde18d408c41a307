"""The optional dynamic-int8 scoring graph of a bundle, made and checked at save time.

:func:`store_int8_graph` runs ``onnxruntime.quantization.quantize_dynamic`` on a bundle's
``model.onnx`` (int8 weights of its MatMul and Gemm nodes, one scale per output column;
activations quantised per call) and
keeps the result as ``model.int8.onnx`` only when the clip scores of both graphs, on clips the
caller gives (the group's own log-mel clips at training), differ by at most
:data:`INT8_TOLERANCE` relative. It returns the manifest's ``scoring.int8`` record either way.

This module imports ``onnx`` and ``onnxruntime.quantization`` (which pull in further modules)
inside its functions: it runs when a bundle is written, never on the scoring path.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from earshot.bundle.format import ONNX_FILE, ONNX_INT8_FILE
from earshot.detection.aggregate import aggregate

__all__ = ["INT8_TOLERANCE", "MAX_CHECK_CLIPS", "QUANTIZED_OPS", "check_subset", "clip_scores", "store_int8_graph"]

log = logging.getLogger(__name__)

#: Largest relative clip-score difference ``|int8 - float32| / |float32|`` (over the checked
#: clips) for the int8 graph to be stored.
INT8_TOLERANCE = 1e-3
#: Most clips the check scores (spread evenly over those given).
MAX_CHECK_CLIPS = 32
#: Node types whose weights become int8.
QUANTIZED_OPS = ("MatMul", "Gemm")
#: One int8 scale per output column of each weight matrix, not one per matrix: the exported dense
#: AE has its batch norms folded into its weights, whose columns then differ in range by far more
#: than int8's steps allow with one scale (per matrix, the check refused more bundles).
PER_CHANNEL = True


def clip_scores(graph: Path, clips: Sequence[np.ndarray], how: str) -> np.ndarray:
    """Clip scores of log-mel ``clips`` ``(n_mels, n_time)`` through the ONNX ``graph``, one clip
    per call on one thread (as the bundle's lanes score), aggregated with ``how``."""
    import onnxruntime as ort  # deferred: a second of start-up; only when a bundle is written

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads, options.log_severity_level = 1, 1, 3
    session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    out = []
    for clip in clips:
        x = np.ascontiguousarray(np.asarray(clip, dtype=np.float32).T[None])
        (windows,) = session.run(None, {"logmel": x})
        out.append(aggregate(np.asarray(windows[0], dtype=np.float64), how))
    return np.array(out, dtype=np.float64)


class _RootRecords(logging.Filter):
    """Drops records logged on the root logger itself (onnxruntime.quantization's ``logging.info``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name != "root"


def check_subset(clips: Sequence[np.ndarray]) -> list[np.ndarray]:
    """At most :data:`MAX_CHECK_CLIPS` of ``clips``, spread evenly, copied (so a caller may keep
    them while the clips' store is freed)."""
    if not len(clips):
        return []
    idx = np.unique(np.linspace(0, len(clips) - 1, min(len(clips), MAX_CHECK_CLIPS)).round().astype(int))
    return [np.array(clips[int(i)], dtype=np.float32) for i in idx]


def store_int8_graph(directory: Path, clips: Sequence[np.ndarray] | None, *, how: str,
                     tolerance: float = INT8_TOLERANCE) -> dict[str, Any] | None:
    """Write ``model.int8.onnx`` beside ``model.onnx`` in ``directory`` when it is exact enough.

    Parameters
    ----------
    directory : Path
        A bundle directory being written, holding ``model.onnx`` (input ``logmel``).
    clips : sequence of np.ndarray or None
        Log-mel clips ``(n_mels, n_time)`` to check on (at most :data:`MAX_CHECK_CLIPS`,
        spread evenly, are scored). None or empty: nothing is quantised.
    how : str
        The bundle's aggregate of window scores into a clip score.
    tolerance : float
        Largest relative clip-score difference allowed.

    Returns
    -------
    dict or None
        The manifest's ``scoring.int8``: ``graph`` (``model.int8.onnx``, or None when the
        check failed and nothing was stored), ``weights``, ``op_types``, ``n_check_clips``,
        ``max_rel_diff``, ``tolerance``. None when nothing was tried (no clips, no MatMul or
        Gemm in the graph, or ``onnx`` not installed): the manifest then has no ``int8``.
    """
    if clips is None or not len(clips):
        log.info("%s: no clips to check an int8 graph on; only the float32 graph is stored", directory)
        return None
    try:
        import onnx  # deferred: save-time only (the `train` extra); never on the scoring path
        from onnxruntime.quantization import QuantType, quantize_dynamic  # deferred: pulls onnx; save-time only
    except ImportError as exc:  # pragma: no cover - onnx comes with the train extra
        log.info("int8 graph not made (%s)", exc)
        return None
    src, dst = directory / ONNX_FILE, directory / ONNX_INT8_FILE
    ops = sorted({n.op_type for n in onnx.load(str(src)).graph.node} & set(QUANTIZED_OPS))
    if not ops:
        log.info("%s: no MatMul or Gemm in the scoring graph; no int8 graph", directory)
        return None
    record: dict[str, Any] = {"graph": None, "weights": "int8 (dynamic)", "op_types": ops,
                              "n_check_clips": 0, "max_rel_diff": None, "tolerance": float(tolerance)}
    quiet = _RootRecords()  # quantize_dynamic logs advice on the root logger ("consider pre-processing")
    logging.getLogger().addFilter(quiet)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=list(QUANTIZED_OPS),
                             per_channel=PER_CHANNEL)
        check = check_subset(clips)
        ref, q8 = clip_scores(src, check, how), clip_scores(dst, check, how)
    except Exception as exc:  # quantize_dynamic and onnxruntime raise many types; float32 stays
        log.warning("%s: int8 graph not stored: quantisation failed (%s)", directory, exc)
        dst.unlink(missing_ok=True)
        return record
    finally:
        logging.getLogger().removeFilter(quiet)
    rel = np.abs(q8 - ref) / np.maximum(np.abs(ref), np.finfo(np.float64).tiny)
    worst = float(np.max(rel)) if np.all(np.isfinite(rel)) else float("inf")
    record.update(n_check_clips=len(check), max_rel_diff=worst if np.isfinite(worst) else None)
    if worst <= tolerance:
        record["graph"] = ONNX_INT8_FILE
        log.info("%s: int8 graph stored (clip scores within %.1e relative of float32 on %d clips)",
                 directory, worst, len(check))
    else:
        dst.unlink(missing_ok=True)
        log.info("%s: int8 graph not stored: clip scores differ by %.1e relative from float32 (tolerance %.1e)",
                 directory, worst, tolerance)
    return record
