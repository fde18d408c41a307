"""Export a model for the edge: one ONNX file per group and a JSON contract beside it.

Two forms (``front_end``):

``waveform`` (the default)
    The exported graph takes the raw mono waveform and holds earshot's log-mel front end
    itself, so a device needs nothing but an ONNX runtime::

        waveform (batch, n_samples) float32, [-1, 1], at the model's sample rate
          -> Pad (n_fft // 2 zeros each side: librosa's center=True, pad_mode="constant")
          -> windowed DFT of every frame: a factorised DFT (n_fft = a * b: grouped Conv over
             the b polyphase rows, then a MatMul) where n_fft and hop_length allow it, else
             one Conv with windowed cos/sin kernels (n_fft taps, stride hop_length)
          -> re**2 + im**2 (``** (power / 2)`` when power != 2) -> Slaney mel filterbank
          -> Max(amin) -> Log * 10 / ln(10)                     = log-mel in dB
          -> the bundle's scoring graph                          -> window_scores (batch, n_windows)
          -> the bundle's aggregate (mean, max, quantile:q)      -> score (batch,)

``logmel``
    The bundle's own ``model.onnx``, copied byte for byte, for devices that compute the
    log-mel themselves (the contract spells out the feature definition).

The parts, one module each:

- :mod:`earshot.bundle.export_frontend`: the log-mel front end as ONNX nodes (factorised
  DFT or DFT convolution, mel MatMul, dB), built with ``onnx.helper``: no torch is needed.
- :mod:`earshot.bundle.export_graph`: the front end joined to the bundle's scoring graph,
  the in-graph clip aggregate, the opset and IR version of either form.
- :mod:`earshot.bundle.export_check`: the onnxruntime run on synthetic audio compared with
  earshot's own scoring, and the tolerances.
- this module: the JSON contract (:func:`contract`) and :func:`export_model`, the entry point
  of ``earshot export``. Every file is checked before anything is written, and output is
  written atomically: on any failure the output folder is left as it was.

The names of the parts (public ones and the helpers the tests use) stay importable from here.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from earshot._util.fs import atomic_dir
# the parts' names, re-exported: importable from earshot.bundle.export as before the split
from earshot.bundle.export_check import (LOGMEL_TOL_DB, RTOL, _session, _window_hop, min_samples,  # noqa: F401
                                         verification_signals, verify_export)
from earshot.bundle.export_frontend import (AMIN, DFT_METHODS, MIN_OPSET, _PREFIX, _dft_rows,  # noqa: F401
                                            frontend_model)
from earshot.bundle.export_graph import (_AGG_PREFIX, _aggregate_nodes, _axes_node, _default_opset,  # noqa: F401
                                         _graph_bytes, _graph_versions, _proto_fields, _varint, _version,
                                         waveform_model)
from earshot.bundle.format import INDEX, SCORE_DIRECTION
from earshot.bundle.modelset import group_dirname, load_model
from earshot.bundle.scorer import Bundle
from earshot.detection.aggregate import parse_aggregate
from earshot.errors import BundleError, ParameterError
from earshot.features.config import FeatureConfig
from earshot.io.channels import ALL_CHANNELS, refuse_fused_stream

__all__ = [
    "FRONT_ENDS",
    "RTOL",
    "LOGMEL_TOL_DB",
    "EXPORT_FORMAT_VERSION",
    "ExportResult",
    "frontend_model",
    "waveform_model",
    "min_samples",
    "verification_signals",
    "verify_export",
    "contract",
    "export_model",
]

log = logging.getLogger(__name__)

#: Forms of export: the waveform graph (front end inside) or the bundle's log-mel graph.
FRONT_ENDS = ("waveform", "logmel")
#: Version of the export folder's layout (index.json and the per-group contracts).
EXPORT_FORMAT_VERSION = 1

_KIND = "edge-export"


def _channels_text(rule) -> str:
    """The contract's ``audio.channels``: how the bundle's channel rule reads a recording."""
    if rule is None:
        return "the mean of all channels"
    if rule == ALL_CHANNELS:
        return ("every channel: compute the log-mel (as under 'features') of each channel, average the mel power "
                "10 ** (dB / 10) over the channels, then 10 * log10(max(amin, mean)); the input is that fused log-mel")
    return f"channel {rule} (0-based) only"


# ---------------------------------------------------------------------------- the contract
def _aggregate_text(spec: str) -> str:
    method, q = parse_aggregate(spec)
    if method == "mean":
        return "score[i] = mean over windows of window_scores[i, :]"
    if method == "max":
        return "score[i] = max over windows of window_scores[i, :]"
    return (f"score[i] = quantile {q:g} of window_scores[i, :] with linear interpolation (numpy.quantile's default): "
            f"s = sorted ascending, pos = {q:g} * (n_windows - 1), lo = floor(pos), hi = min(lo + 1, n_windows - 1), "
            "score = s[lo] + (s[hi] - s[lo]) * (pos - lo)")


def contract(bundle: Bundle, group: str, *, front_end: str, onnx_file: str, sha256: str, opset: int,
             ir_version: int, verification: dict[str, Any]) -> dict[str, Any]:
    """The JSON contract of one exported graph: everything a device needs to use it alone.

    Parameters
    ----------
    bundle : Bundle
        The source bundle.
    group : str
        Its group in the model.
    front_end : {"waveform", "logmel"}
    onnx_file : str
        The exported file's name (beside the contract).
    sha256 : str
        Its SHA-256.
    opset, ir_version : int
        Its default-domain opset and IR version.
    verification : dict
        :func:`verify_export`'s result.

    Returns
    -------
    dict
        JSON-ready: ``inputs``/``outputs`` (name, dtype, shape, meaning), ``audio`` (rate,
        channels, scale, shortest input), ``features`` (the full log-mel definition),
        ``windows``, ``aggregate`` (and how to apply it), ``threshold``, ``score_direction``,
        ``decision``, ``verification``, versions and the source bundle.
    """
    f = bundle.features
    m = bundle.manifest
    n_min = min_samples(f, bundle.min_frames)
    method, q = parse_aggregate(bundle.aggregate)
    inputs, outputs = _contract_io(bundle, front_end, n_min)
    channel = bundle.channel
    return {
        "format": _KIND,
        "format_version": EXPORT_FORMAT_VERSION,
        "earshot_version": _version(),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "group": group,
        "source_bundle": str(bundle.path.resolve()),
        "model": {"kind": bundle.kind, "params": m.get("model", {}).get("params", {})},
        "onnx": {"file": onnx_file, "sha256": sha256, "opset": opset, "ir_version": ir_version,
                 "front_end": front_end,
                 "runtime": "any ONNX runtime with the default-domain opset above (checked with onnxruntime "
                            f"{_ort_version()}); no earshot, numpy or torch needed to run it"},
        "inputs": inputs,
        "outputs": outputs,
        "audio": {
            "sample_rate": f.sr,
            "channels": _channels_text(channel),
            "resample": f"audio at another rate must be resampled to {f.sr} Hz first (earshot uses "
                        "scipy.signal.resample_poly)",
            "scale": "float samples in [-1, 1]: 16-bit PCM / 32768",
            "min_samples": n_min,
            "min_duration_s": n_min / f.sr,
        },
        "features": _features_spec(f, front_end),
        "windows": {"min_frames": bundle.min_frames, "hop_frames": _window_hop(bundle)},
        "aggregate": {
            "spec": bundle.aggregate, "method": method, "q": q,
            "how": _aggregate_text(bundle.aggregate),
            "in_graph": front_end == "waveform",
        },
        "threshold": {
            "value": bundle.threshold_,
            "method": m["threshold"].get("method"),
            "source": m["threshold"].get("source"),
            "n_clips": m["threshold"].get("n_clips"),
            "fitted_on": "normal training clips only (see method and source)",
        },
        "score_direction": m.get("score_direction", SCORE_DIRECTION),
        "decision": "anomalous when score > threshold.value (earshot compares in float64; a float32 score "
                    "within ~1e-6 relative of the threshold may be decided either way)",
        "verification": verification,
    }


def _contract_io(bundle: Bundle, front_end: str, n_min: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The contract's ``inputs`` and ``outputs`` (name, dtype, shape, meaning) of one graph."""
    f = bundle.features
    logmel_input = {
        "name": "logmel", "dtype": "float32", "shape": ["batch", "n_time", f.n_mels],
        "meaning": "log-mel spectrogram in dB as defined under 'features', time-major (one row per frame); "
                   f"n_time >= {bundle.min_frames}; every clip of a batch has the same n_time",
    }
    waveform_input = {
        "name": "waveform", "dtype": "float32", "shape": ["batch", "n_samples"],
        "meaning": f"raw mono audio at {f.sr} Hz, samples in [-1, 1] (16-bit PCM / 32768, as libsndfile decodes "
                   f"it); n_samples >= {n_min}; every clip of a batch has the same length (run clips of other "
                   "lengths in separate calls)",
    }
    outputs = [{
        "name": "window_scores", "dtype": "float32", "shape": ["batch", "n_windows"],
        "meaning": f"one anomaly score per model window ({bundle.min_frames} frames, a window every "
                   f"{_window_hop(bundle)} frame(s); clip-level models give one window per clip); "
                   "higher = more anomalous",
    }]
    if front_end == "waveform":
        outputs.append({"name": "score", "dtype": "float32", "shape": ["batch"],
                        "meaning": f"the clip score: the aggregate '{bundle.aggregate}' of window_scores; compare "
                                   "with threshold.value"})
    return [waveform_input if front_end == "waveform" else logmel_input], outputs


def _features_spec(f: FeatureConfig, front_end: str) -> dict[str, Any]:
    """The contract's ``features``: the full log-mel definition a device must reproduce."""
    return {
        "computed": "inside the graph" if front_end == "waveform" else "by the device, before the graph",
        "sr": f.sr, "n_fft": f.n_fft, "hop_length": f.hop_length,
        "win_length": f.win_length if f.win_length is not None else f.n_fft,
        "window": "periodic Hann of win_length samples (0.5 - 0.5 cos(2 pi n / win_length)), centred in n_fft "
                  "samples with zeros",
        "center": True, "pad_mode": "constant",
        "padding": "n_fft // 2 zeros before and after the signal; frame t covers padded samples "
                   "[t * hop_length, t * hop_length + n_fft)",
        "n_time": "1 + (n_samples + 2 * (n_fft // 2) - n_fft) // hop_length",
        "power": f.power,
        "spectrum": "|rfft(window * frame)| ** power, bins 0 .. n_fft // 2",
        "n_mels": f.n_mels, "fmin": f.fmin, "fmax": f.fmax if f.fmax is not None else f.sr / 2.0,
        "mel_scale": "slaney", "mel_norm": "slaney (area)",
        "amin": AMIN, "ref": 1.0, "top_db": None,
        "db": "10 * log10(max(amin, mel_power))",
        "layout": "time-major: (n_time, n_mels) per clip",
        "librosa": "librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, "
                   "hop_length=hop_length, win_length=win_length, window='hann', center=True, "
                   "pad_mode='constant', power=power, n_mels=n_mels, fmin=fmin, fmax=fmax), ref=1.0, "
                   "amin=1e-10, top_db=None).T",
        "n_frames": f.n_frames,
    }


def _ort_version() -> str:
    import onnxruntime  # deferred: a second of start-up, needed only to write a contract

    return onnxruntime.__version__


# ---------------------------------------------------------------------------- export
@dataclass
class ExportResult:
    """What :func:`export_model` wrote.

    Attributes
    ----------
    path : Path
        The output folder.
    front_end : str
        ``waveform`` or ``logmel``.
    groups : dict[str, dict]
        Group -> ``{"onnx": Path, "contract": Path, "threshold": float, "verification": dict}``.
    """

    path: Path
    front_end: str
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)


def _check_out(out: Path) -> None:
    """Refuse an ``out`` that is a file, or a non-empty folder that is not an earlier export."""
    if not (out.exists() or out.is_symlink()):
        return
    if not out.is_dir():
        raise ParameterError(f"{out}: expected an output folder, got a file")
    if not any(out.iterdir()):
        return
    kind = None
    try:
        kind = json.loads((out / INDEX).read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError, AttributeError):
        pass
    if kind != _KIND:
        raise ParameterError(f"{out}: the folder exists and is not an earshot export; "
                             "give a new or empty folder (an earshot export is replaced)")


def export_model(model: str | os.PathLike, out: str | os.PathLike, *, group: str | None = None,
                 front_end: str = "waveform") -> ExportResult:
    """Export a model's groups as ONNX files with JSON contracts, checked against earshot.

    Writes ``out/<group>.onnx`` and ``out/<group>.json`` for every group of the model (or just
    ``group``; ``fan/id_00`` -> ``fan_id_00``) and ``out/index.json``. Each graph is run with
    onnxruntime on :func:`verification_signals` and compared with the bundle's own scoring
    before anything is written; the folder appears complete or not at all.

    Parameters
    ----------
    model : path-like
        A model set (``index.json``) or a single bundle.
    out : path-like
        Output folder: new, empty, or an earlier export (replaced once the new one is complete).
    group : str, optional
        Export only this group.
    front_end : {"waveform", "logmel"}
        ``waveform``: the graph takes raw audio and holds the log-mel front end and the clip
        aggregate (needs the ``onnx`` package, extra ``train``). ``logmel``: the bundle's
        graph as it is (a byte copy; needs no ``onnx``).

    Returns
    -------
    ExportResult

    Raises
    ------
    BundleError
        Missing or unreadable model; a graph that cannot be joined or run, or that differs
        from earshot's scoring beyond the tolerance (:data:`RTOL`, :data:`LOGMEL_TOL_DB`).
    ParameterError
        Unknown group or front end; ``out`` is a file or a folder that is not an export.
    ModuleNotFoundError
        ``onnx`` is missing (waveform form).
    """
    if front_end not in FRONT_ENDS:
        raise ParameterError(f"front_end: expected one of {', '.join(FRONT_ENDS)}, got {front_end!r}")
    out = Path(out)
    _check_out(out)
    ms = load_model(model)
    if group is not None and group not in ms.bundles:
        raise ParameterError(f"group: expected one of {', '.join(ms.groups)}, got {group!r}")
    groups = [group] if group is not None else ms.groups
    for g in groups:
        ms.bundles[g].refuse_waveform_input("earshot export")
    names = {g: group_dirname(g) for g in groups}
    if len(set(names.values())) < len(names) or "index" in names.values():
        raise BundleError(f"{ms.path}: groups {', '.join(groups)} do not have distinct file names")
    if front_end == "waveform":
        for g in groups:
            refuse_fused_stream(ms.bundles[g].channel, "export --waveform",
                                "export with --logmel (the device fuses the channels' log-mel, see the contract)")
        import onnx  # noqa: F401 - fail before any work when the extra is missing
    result = ExportResult(path=out, front_end=front_end)
    index_groups: dict[str, dict[str, Any]] = {}
    with atomic_dir(out) as tmp:
        for g in groups:
            bundle = ms.bundles[g]
            name = names[g]
            data, opset, ir_version, frontend = _graph_bytes(bundle, front_end)
            check = verify_export(data, bundle, front_end, frontend_bytes=frontend)
            if not check["passed"]:
                raise BundleError(
                    f"{bundle.path}: the exported {front_end} graph differs from earshot's scoring (scores: "
                    f"{check['score_rel_diff']:.2e} relative, tolerance {RTOL:g}; log-mel: "
                    f"{check['logmel_max_abs_diff_db']} dB, tolerance {LOGMEL_TOL_DB:g}); nothing was written"
                )
            (tmp / f"{name}.onnx").write_bytes(data)
            spec = contract(bundle, g, front_end=front_end, onnx_file=f"{name}.onnx",
                            sha256=hashlib.sha256(data).hexdigest(), opset=opset, ir_version=ir_version,
                            verification=check)
            (tmp / f"{name}.json").write_text(json.dumps(spec, indent=2, allow_nan=False) + "\n", encoding="utf-8")
            index_groups[g] = {"onnx": f"{name}.onnx", "contract": f"{name}.json", "threshold": bundle.threshold_,
                               "aggregate": bundle.aggregate, "score_max_abs_diff": check["score_max_abs_diff"],
                               "window_scores_max_abs_diff": check["window_scores_max_abs_diff"]}
            result.groups[g] = {"onnx": out / f"{name}.onnx", "contract": out / f"{name}.json",
                                "threshold": bundle.threshold_, "verification": check}
            log.info("exported %s (%s) -> %s.onnx: max score difference %.3g", g, front_end, name,
                     max(check["window_scores_max_abs_diff"], check["score_max_abs_diff"] or 0.0))
        index = {
            "format": _KIND, "kind": _KIND, "format_version": EXPORT_FORMAT_VERSION,
            "earshot_version": _version(),
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "source_model": str(ms.path.resolve()), "group_by": ms.group_by, "front_end": front_end,
            "groups": index_groups,
        }
        (tmp / INDEX).write_text(json.dumps(index, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return result
