"""Export a model for the edge: one ONNX file per group and a JSON contract beside it.

Two forms (``front_end``):

``waveform`` (the default)
    The exported graph takes the raw mono waveform and holds earshot's log-mel front end
    itself, so a device needs nothing but an ONNX runtime::

        waveform (batch, n_samples) float32, [-1, 1], at the model's sample rate
          -> Pad (n_fft // 2 zeros each side: librosa's center=True, pad_mode="constant")
          -> Conv with windowed DFT kernels (n_fft taps, stride hop_length): re and im rows
          -> square -> MatMul with the dense Slaney mel filterbank (re**2 + im**2 summed by
             the product itself; ``(re**2 + im**2) ** (power / 2)`` when power != 2)
          -> Max(amin) -> Log * 10 / ln(10)                     = log-mel in dB
          -> the bundle's scoring graph                          -> window_scores (batch, n_windows)
          -> the bundle's aggregate (mean, max, quantile:q)      -> score (batch,)

``logmel``
    The bundle's own ``model.onnx``, copied byte for byte, for devices that compute the
    log-mel themselves (the contract spells out the feature definition).

The front end is built with the ``onnx`` package (``onnx.helper``/``numpy_helper``), in the
bundle graph's own opset and IR version, and joined to the bundle graph with
:func:`onnx.compose.merge_models`: no torch is needed. Every exported file is checked before
anything is written: onnxruntime runs it on deterministic synthetic audio (tones and noise,
a length that is not a multiple of the hop, a batch of two) and its window scores and clip
scores are compared with the bundle's own scoring (``log_mel`` + :meth:`Bundle.window_scores`);
the measured differences go into the contract. Output is written atomically: on any failure
the output folder is left as it was.

Tolerance. The graph computes the DFT as a float32 matrix product where earshot runs a
float32 FFT, so the log-mels differ by float32 round-off, which is relative to the loudest
bins of a frame: ~1e-5 dB on bands within ~45 dB of the loudest (the verification signal,
like real recordings, keeps every band there), up to ~3e-3 dB on bands 90 dB down (the
valleys of pure tones), where earshot's FFT itself differs from a float64 librosa as much.
The check (measured values in the constants' comments): the front end alone within
:data:`LOGMEL_TOL_DB` dB of ``log_mel``, window and clip scores within :data:`RTOL` x
``max(|threshold|, max |score|)`` of the bundle's. Both catch a subtly wrong front end (a
symmetric instead of periodic Hann window: 3e-2 dB, 2e-4 to 5e-4 relative on scores) with
room to spare over float32 round-off (1e-5 dB, ~2e-7 relative).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from earshot._fs import atomic_dir
from earshot.bundle.format import INDEX, ONNX_FILE, SCORE_DIRECTION
from earshot.bundle.modelset import group_dirname, load_model
from earshot.bundle.scorer import Bundle
from earshot.detection.aggregate import aggregate as aggregate_scores
from earshot.detection.aggregate import parse_aggregate
from earshot.errors import BundleError, ParameterError
from earshot.features.config import FeatureConfig

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
#: Tolerance of the verification on scores: ``max |window or clip score difference| <= RTOL *
#: max(|threshold|, max |score|)``. Measured: ~2e-7 relative (dense-ae, lstm-ae, gauss, knn,
#: 32 mels), float32 round-off; a symmetric instead of periodic Hann window gives 2e-4 to 5e-4.
RTOL = 1e-4
#: Tolerance of the verification on the log-mel front end alone (dB), the same as earshot's own
#: promise against librosa. Measured: ~1e-5 dB on the verification signal (at most 1e-4 dB
#: over the feature settings tried); a symmetric Hann window: 3e-2 dB.
LOGMEL_TOL_DB = 1e-3
#: Floor on mel power before the logarithm (``earshot.features`` uses the same).
AMIN = 1e-10
#: Oldest default-domain opset the front end is written for (Unsqueeze takes axes as input).
MIN_OPSET = 13

_KIND = "edge-export"
_PREFIX = "earshot_frontend/"
_AGG_PREFIX = "earshot_aggregate/"


# ---------------------------------------------------------------------------- front end
def _dft_rows(features: FeatureConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windowed DFT kernels of the bins the mel filterbank uses.

    Returns
    -------
    kernels : np.ndarray, shape (n_rows, 1, n_fft), float32
        Conv weights: ``window * cos`` for every kept bin, then ``window * sin`` for every kept
        bin with a non-zero imaginary part (neither DC nor Nyquist), so
        ``n_rows = n_cos + n_sin``.
    weights : np.ndarray, shape (n_mels, n_cos), float32
        Slaney mel weights of the kept bins (bins no filter weighs are left out: they add 0
        to every band).
    sin_of : np.ndarray, shape (n_sin,), int
        For each sine row, the index (among the kept bins) of its bin.
    """
    from earshot.features.filterbank import _mel_weights
    from earshot.features.stft_plan import _window

    n_fft = features.n_fft
    mel = _mel_weights(features.sr, n_fft, features.n_mels, features.fmin, features.fmax)
    bins = np.flatnonzero(mel.any(axis=0))
    sin_of = np.flatnonzero((bins > 0) & (2 * bins != n_fft))
    window = _window(n_fft, features.win_length).astype(np.float64)
    n = np.arange(n_fft)

    def phase(k: np.ndarray) -> np.ndarray:  # exact integer phase k * n mod n_fft
        return 2.0 * np.pi * ((k[:, None] * n[None, :]) % n_fft) / n_fft

    kernels = np.concatenate([np.cos(phase(bins)) * window, np.sin(phase(bins[sin_of])) * window])
    return kernels.astype(np.float32)[:, None, :], np.ascontiguousarray(mel[:, bins]), sin_of


def _axes_node(op: str, inp: str, out: str, axes: list[int], opset: int, name: str, **attrs) -> list:
    """``op`` over ``axes``: an attribute before opset 18 (Reduce*), an input from 18 on."""
    from onnx import TensorProto, helper

    if opset >= 18:
        axes_name = name + "_axes"
        return [helper.make_node("Constant", [], [axes_name], name=axes_name,
                                 value=helper.make_tensor(axes_name, TensorProto.INT64, [len(axes)], axes)),
                helper.make_node(op, [inp, axes_name], [out], name=name, **attrs)]
    return [helper.make_node(op, [inp], [out], name=name, axes=axes, **attrs)]


def frontend_model(features: FeatureConfig, *, opset: int = 17, ir_version: int = 8, output: str = "logmel"):
    """The log-mel front end as an ONNX model: ``waveform`` -> ``output``.

    Equal to :func:`earshot.features.log_mel` (librosa's ``melspectrogram`` + ``power_to_db``
    with ``center=True``, ``pad_mode="constant"``, periodic Hann, Slaney mel, ``amin=1e-10``,
    ``ref=1``, ``top_db=None``) up to float32 round-off, in the bundle graph's time-major
    layout.

    Parameters
    ----------
    features : FeatureConfig
        The bundle's feature parameters.
    opset : int
        Default-domain opset to write (the bundle graph's; at least :data:`MIN_OPSET`).
    ir_version : int
        ONNX IR version to write (the bundle graph's).
    output : str
        Name of the output tensor.

    Returns
    -------
    onnx.ModelProto
        Input ``waveform`` float32 ``(batch, n_samples)``; output float32
        ``(batch, n_time, n_mels)`` in dB, ``n_time = 1 + (n_samples + 2 * (n_fft // 2) - n_fft)
        // hop_length``. Internal names start with ``earshot_frontend/``.

    Raises
    ------
    BundleError
        ``opset`` older than :data:`MIN_OPSET`.
    """
    from onnx import TensorProto, helper, numpy_helper

    if opset < MIN_OPSET:
        raise BundleError(f"ONNX opset {opset}: the exported front end needs opset {MIN_OPSET} or newer")
    p = _PREFIX
    kernels, weights, sin_of = _dft_rows(features)
    n_cos = weights.shape[1]
    pad = features.n_fft // 2

    def const(name: str, value: np.ndarray):
        return numpy_helper.from_array(np.asarray(value), p + name)

    inits = [const("pads", np.array([0, pad, 0, pad], np.int64)), const("axis1", np.array([1], np.int64)),
             const("dft", kernels), const("amin", np.float32(AMIN)),
             const("db", np.float32(10.0 / math.log(10.0)))]
    nodes = [
        # center=True, pad_mode="constant": n_fft // 2 zeros on each side
        helper.make_node("Pad", ["waveform", p + "pads"], [p + "padded"], name=p + "pad", mode="constant"),
        helper.make_node("Unsqueeze", [p + "padded", p + "axis1"], [p + "signal"], name=p + "channel"),
        # frame t = padded[t * hop : t * hop + n_fft], windowed, times cos / sin: (batch, n_rows, n_time)
        helper.make_node("Conv", [p + "signal", p + "dft"], [p + "dft_rows"], name=p + "stft",
                         kernel_shape=[features.n_fft], strides=[features.hop_length]),
        helper.make_node("Mul", [p + "dft_rows", p + "dft_rows"], [p + "squared"], name=p + "square"),
    ]
    if features.power == 2.0:
        # the mel weight of each bin twice (cosine row, sine row): the product sums re**2 + im**2
        mel = np.concatenate([weights, weights[:, sin_of]], axis=1)
        spectrum = p + "squared"
    else:
        # (re**2 + im**2) ** (power / 2) per bin before the mel product: a sine row for every
        # kept bin (zeros for DC and Nyquist) so the two halves line up, then Slice + Add
        sines = np.zeros((n_cos, 1, features.n_fft), np.float32)
        sines[sin_of] = kernels[n_cos:]
        inits[2] = const("dft", np.concatenate([kernels[:n_cos], sines]))
        inits += [const("zero", np.array([0], np.int64)), const("n_cos", np.array([n_cos], np.int64)),
                  const("n_rows", np.array([2 * n_cos], np.int64))]
        nodes += [
            helper.make_node("Slice", [p + "squared", p + "zero", p + "n_cos", p + "axis1"], [p + "re2"], name=p + "re2"),
            helper.make_node("Slice", [p + "squared", p + "n_cos", p + "n_rows", p + "axis1"], [p + "im2"], name=p + "im2"),
            helper.make_node("Add", [p + "re2", p + "im2"], [p + "power2"], name=p + "re2_im2"),
        ]
        if features.power == 1.0:
            nodes.append(helper.make_node("Sqrt", [p + "power2"], [p + "power"], name=p + "magnitude"))
        else:
            inits.append(const("half_power", np.float32(features.power / 2.0)))
            nodes.append(helper.make_node("Pow", [p + "power2", p + "half_power"], [p + "power"], name=p + "power"))
        mel, spectrum = weights, p + "power"
    inits.append(const("mel", np.ascontiguousarray(mel, dtype=np.float32)))
    nodes += [
        helper.make_node("MatMul", [p + "mel", spectrum], [p + "mel_power"], name=p + "mel_bands"),
        helper.make_node("Max", [p + "mel_power", p + "amin"], [p + "floored"], name=p + "amin_floor"),
        helper.make_node("Log", [p + "floored"], [p + "ln"], name=p + "log"),
        helper.make_node("Mul", [p + "ln", p + "db"], [p + "db_bands"], name=p + "to_db"),  # 10 * log10
        helper.make_node("Transpose", [p + "db_bands"], [output], name=p + "time_major", perm=[0, 2, 1]),
    ]
    graph = helper.make_graph(
        nodes, "earshot_logmel",
        [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", "n_samples"])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", "n_time", features.n_mels])],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", int(opset))],
                             producer_name="earshot", ir_version=int(ir_version))


# ---------------------------------------------------------------------------- aggregate
def _aggregate_nodes(spec: str, opset: int, scores: str = "window_scores", out: str = "score") -> tuple[list, list]:
    """Nodes ``scores (batch, n_windows) -> out (batch,)`` computing the clip aggregate.

    ``mean`` and ``max`` are one reduction; ``quantile:q`` sorts the windows (TopK, ascending)
    and interpolates linearly between the two order statistics around ``q * (n_windows - 1)``
    (numpy's default ``linear`` method; the position is computed in float64).

    Returns
    -------
    nodes, initializers : list, list
    """
    from onnx import TensorProto, helper, numpy_helper

    method, q = parse_aggregate(spec)
    p = _AGG_PREFIX
    if method in ("mean", "max"):
        op = "ReduceMean" if method == "mean" else "ReduceMax"
        return _axes_node(op, scores, out, [1], opset, p + method, keepdims=0), []

    def const(name, value):
        return numpy_helper.from_array(np.asarray(value), p + name)

    inits = [const("one", np.array([1], np.int64)), const("two", np.array([2], np.int64)),
             const("one_i", np.int64(1)), const("q", np.float64(q))]
    nodes = [
        helper.make_node("Shape", [scores], [p + "shape"], name=p + "shape"),
        helper.make_node("Slice", [p + "shape", p + "one", p + "two"], [p + "n"], name=p + "n_windows"),
        helper.make_node("TopK", [scores, p + "n"], [p + "sorted", p + "order"], name=p + "sort",
                         axis=1, largest=0, sorted=1),
        helper.make_node("Sub", [p + "n", p + "one"], [p + "last"], name=p + "last"),
        helper.make_node("Cast", [p + "last"], [p + "last_d"], name=p + "last_d", to=TensorProto.DOUBLE),
        helper.make_node("Mul", [p + "last_d", p + "q"], [p + "pos"], name=p + "pos"),
        helper.make_node("Floor", [p + "pos"], [p + "lo_d"], name=p + "floor"),
        helper.make_node("Sub", [p + "pos", p + "lo_d"], [p + "frac_d"], name=p + "frac_d"),
        helper.make_node("Cast", [p + "frac_d"], [p + "frac"], name=p + "frac", to=TensorProto.FLOAT),
        helper.make_node("Cast", [p + "lo_d"], [p + "lo"], name=p + "lo", to=TensorProto.INT64),
        helper.make_node("Add", [p + "lo", p + "one_i"], [p + "lo1"], name=p + "lo1"),
        helper.make_node("Min", [p + "lo1", p + "last"], [p + "hi"], name=p + "hi"),
        helper.make_node("Gather", [p + "sorted", p + "lo"], [p + "a"], name=p + "a", axis=1),
        helper.make_node("Gather", [p + "sorted", p + "hi"], [p + "b"], name=p + "b", axis=1),
        helper.make_node("Sub", [p + "b", p + "a"], [p + "b_a"], name=p + "b_a"),
        helper.make_node("Mul", [p + "b_a", p + "frac"], [p + "step"], name=p + "step"),
        helper.make_node("Add", [p + "a", p + "step"], [p + "value"], name=p + "value"),
        helper.make_node("Squeeze", [p + "value", p + "one"], [out], name=p + "squeeze"),
    ]
    return nodes, inits


# ---------------------------------------------------------------------------- whole graph
def _default_opset(model) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise BundleError("the bundle's ONNX graph imports no default-domain opset")


def waveform_model(bundle: Bundle):
    """The bundle's scoring graph behind the log-mel front end, with the clip aggregate.

    Parameters
    ----------
    bundle : Bundle

    Returns
    -------
    onnx.ModelProto
        Input ``waveform`` float32 ``(batch, n_samples)`` at ``bundle.features.sr``; outputs
        ``window_scores`` float32 ``(batch, n_windows)`` (the bundle graph's) and ``score``
        float32 ``(batch,)``, the bundle's aggregate of the window scores.

    Raises
    ------
    BundleError
        The bundle graph cannot be read or joined (an opset older than :data:`MIN_OPSET`,
        names that collide with the front end's).
    """
    import onnx
    from onnx import TensorProto, compose, helper

    path = bundle.path / ONNX_FILE
    try:
        inner = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and others for a damaged file
        raise BundleError(f"{path}: cannot be read as ONNX ({exc})") from None
    names_in = [i.name for i in inner.graph.input if i.name not in {t.name for t in inner.graph.initializer}]
    names_out = [o.name for o in inner.graph.output]
    if names_in != ["logmel"] or names_out[:1] != ["window_scores"]:
        raise BundleError(f"{path}: expected input logmel and output window_scores, got {names_in} -> {names_out}")
    opset = _default_opset(inner)
    front = frontend_model(bundle.features, opset=opset, ir_version=inner.ir_version)
    # other domains the bundle graph imports must be known to the merged model as well
    front.opset_import.extend(e for e in inner.opset_import if e.domain not in ("", "ai.onnx"))
    try:
        merged = compose.merge_models(front, inner, io_map=[("logmel", "logmel")],
                                      producer_name="earshot", producer_version=_version())
    except ValueError as exc:
        raise BundleError(f"{path}: cannot be joined to the log-mel front end ({exc})") from None
    # one opset entry per domain (merge_models lists both models' entries)
    seen: dict[str, Any] = {}
    for entry in merged.opset_import:
        seen.setdefault(entry.domain, entry)
    del merged.opset_import[:]
    merged.opset_import.extend(seen.values())
    nodes, inits = _aggregate_nodes(bundle.aggregate, opset)
    taken = {n for node in merged.graph.node for n in node.output} | {t.name for t in merged.graph.initializer}
    if "score" in taken:
        raise BundleError(f"{path}: the scoring graph already has a tensor named 'score'")
    merged.graph.node.extend(nodes)
    merged.graph.initializer.extend(inits)
    del merged.graph.output[:]
    merged.graph.output.extend([
        helper.make_tensor_value_info("window_scores", TensorProto.FLOAT, ["batch", "n_windows"]),
        helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"]),
    ])
    merged.graph.name = "earshot_waveform_scorer"
    merged.doc_string = (f"earshot {_version()}: waveform (batch, n_samples) at {bundle.features.sr} Hz -> log-mel -> "
                         f"{bundle.kind} window_scores (batch, n_windows) -> score (batch,) = {bundle.aggregate}")
    try:
        onnx.checker.check_model(merged)
    except Exception as exc:  # onnx.checker.ValidationError
        raise BundleError(f"{path}: the joined waveform graph is not valid ONNX ({exc})") from None
    return merged


def _version() -> str:
    from earshot import __version__

    return __version__


# ---------------------------------------------------------------------------- verification
def min_samples(features: FeatureConfig, min_frames: int) -> int:
    """Fewest waveform samples giving ``min_frames`` log-mel frames (``center=True`` framing)."""
    n_fft = features.n_fft
    return max(1, (int(min_frames) - 1) * features.hop_length + n_fft - 2 * (n_fft // 2))


def _window_hop(bundle: Bundle) -> int:
    """Frames between the starts of the model windows (as :func:`earshot.timeline.model_window_hop`)."""
    m = bundle.manifest
    params = m.get("model", {}).get("params", {})
    for value in ((m.get("fitted", {}).get("windows") or {}).get("hop_frames"), params.get("window_hop"),
                  params.get("hop_frames")):
        if value is not None:
            return int(value)
    return 1


def verification_signals(features: FeatureConfig, min_frames: int, *, n_clips: int = 2,
                         duration_s: float = 2.5, seed: int = 0) -> np.ndarray:
    """Deterministic test audio for the export check: harmonic tones in broadband noise.

    Each clip has its own fundamental (80-400 Hz, five harmonics falling as 1/h, random
    phases, a slow amplitude modulation so window scores vary along the clip) and white noise
    of the same RMS as the tones (0 dB SNR, like MIMII's middle level): every mel band then
    lies within ~45 dB of the loudest one, where float32 log-mels agree to ~1e-4 dB whatever
    computes them (far below that, in the deep valleys of pure tones, float32 round-off of
    the loudest bins dominates; see :mod:`earshot.features.mel`).

    Parameters
    ----------
    features : FeatureConfig
    min_frames : int
        The model's fewest frames; the clips are at least a few hops longer.
    n_clips : int
    duration_s : float
        Length of each clip; lengthened where the model needs more frames, and never a
        multiple of ``hop_length`` (so the last frame's padding is exercised).
    seed : int

    Returns
    -------
    np.ndarray, shape (n_clips, n_samples), float32, in [-1, 1]
    """
    sr, hop = features.sr, features.hop_length
    n = max(int(duration_s * sr), min_samples(features, min_frames + 4 * max(1, min_frames // 2)))
    if hop > 1 and n % hop == 0:
        n += hop // 3 + 1
    t = np.arange(n) / sr
    rng = np.random.default_rng(seed)
    clips = []
    for _ in range(n_clips):
        f0 = rng.uniform(80.0, 400.0)
        tones = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi)) / h for h in range(1, 6))
        tones = tones * (1.0 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t))
        y = tones + np.std(tones) * rng.normal(size=n)
        clips.append(0.4 * y / np.max(np.abs(y)))
    return np.stack(clips).astype(np.float32)


def _session(model_bytes: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def verify_export(model_bytes: bytes, bundle: Bundle, front_end: str = "waveform", *,
                  frontend_bytes: bytes | None = None) -> dict[str, Any]:
    """Run an exported graph on :func:`verification_signals` and compare with the bundle.

    The reference is earshot's own scoring: ``log_mel`` of each clip, then
    :meth:`Bundle.window_scores` and the bundle's aggregate. The graph is run on the batch
    of two clips and on the first clip alone.

    Parameters
    ----------
    model_bytes : bytes
        The exported ONNX model.
    bundle : Bundle
    front_end : {"waveform", "logmel"}
    frontend_bytes : bytes, optional
        The front end alone (:func:`frontend_model`), to measure the log-mel difference.

    Returns
    -------
    dict
        ``n_clips``, ``n_samples``, ``logmel_max_abs_diff_db`` (waveform form with
        ``frontend_bytes``, else None), ``window_scores_max_abs_diff``, ``score_max_abs_diff``
        (None in the log-mel form, whose graph has no ``score``), ``score_scale``
        (``max(|threshold|, max |score|)``), ``score_rel_diff``, ``tolerance`` and ``passed``.

    Raises
    ------
    BundleError
        The graph cannot be run, or gives another number of windows than the bundle.
    """
    from earshot.features.mel import log_mel

    signals = verification_signals(bundle.features, bundle.min_frames)
    ref_mel = [log_mel(s, bundle.features) for s in signals]  # (n_mels, n_time) each
    ref_windows = bundle.window_scores(ref_mel)
    ref_scores = np.array([aggregate_scores(w, bundle.aggregate) for w in ref_windows])
    if front_end == "waveform":
        feeds = [{"waveform": signals}, {"waveform": signals[:1]}]
    else:
        stacked = np.ascontiguousarray(np.stack([m.T for m in ref_mel]), dtype=np.float32)
        feeds = [{"logmel": stacked}, {"logmel": stacked[:1]}]
    window_diff = score_diff = 0.0
    try:
        session = _session(model_bytes)
        names = [o.name for o in session.get_outputs()]
        runs = [dict(zip(names, session.run(None, feed))) for feed in feeds]
        mel = _session(frontend_bytes).run(None, {"waveform": signals})[0] if frontend_bytes is not None else None
    except Exception as exc:  # onnxruntime raises its own exception types
        raise BundleError(f"{bundle.path}: the exported {front_end} graph cannot be run by onnxruntime ({exc})") from None
    has_score = "score" in names
    for outputs in runs:
        windows = outputs["window_scores"]
        for i, ref in enumerate(ref_windows[: windows.shape[0]]):
            if windows[i].shape != ref.shape:
                raise BundleError(f"{bundle.path}: the exported graph gives {windows[i].shape[0]} windows for a clip "
                                  f"where the bundle gives {ref.shape[0]}")
            window_diff = max(window_diff, float(np.max(np.abs(windows[i] - ref))))
        if has_score:
            score_diff = max(score_diff, float(np.max(np.abs(outputs["score"] - ref_scores[: windows.shape[0]]))))
    logmel_diff = None
    if mel is not None:
        logmel_diff = float(max(np.max(np.abs(mel[i].T - ref_mel[i])) for i in range(len(ref_mel))))
    scale = max(abs(bundle.threshold_), float(np.max(np.abs(ref_scores))), 1e-12)
    worst = max(window_diff, score_diff)
    passed = worst <= RTOL * scale and (logmel_diff is None or logmel_diff <= LOGMEL_TOL_DB)
    return {
        "signal": "harmonic tones in white noise of equal RMS (earshot.bundle.export.verification_signals, seed 0)",
        "n_clips": int(signals.shape[0]),
        "n_samples": int(signals.shape[1]),
        "reference": "earshot log_mel + Bundle.window_scores + aggregate",
        "logmel_max_abs_diff_db": logmel_diff,
        "window_scores_max_abs_diff": window_diff,
        "score_max_abs_diff": score_diff if has_score else None,
        "score_scale": scale,
        "score_rel_diff": worst / scale,
        "tolerance": {"score_rel": RTOL, "logmel_db": LOGMEL_TOL_DB if logmel_diff is not None else None},
        "passed": bool(passed),
    }


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
        "inputs": [waveform_input if front_end == "waveform" else logmel_input],
        "outputs": outputs,
        "audio": {
            "sample_rate": f.sr,
            "channels": "the mean of all channels" if channel is None else f"channel {channel} (0-based) only",
            "resample": f"audio at another rate must be resampled to {f.sr} Hz first (earshot uses "
                        "scipy.signal.resample_poly)",
            "scale": "float samples in [-1, 1]: 16-bit PCM / 32768",
            "min_samples": n_min,
            "min_duration_s": n_min / f.sr,
        },
        "features": {
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
        },
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


def _ort_version() -> str:
    import onnxruntime

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
    names = {g: group_dirname(g) for g in groups}
    if len(set(names.values())) < len(names) or "index" in names.values():
        raise BundleError(f"{ms.path}: groups {', '.join(groups)} do not have distinct file names")
    if front_end == "waveform":
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


def _graph_bytes(bundle: Bundle, front_end: str) -> tuple[bytes, int, int, bytes | None]:
    """(model bytes, opset, IR version, front-end-only bytes or None) of one group's export."""
    if front_end == "logmel":
        data = (bundle.path / ONNX_FILE).read_bytes()
        opset, ir_version = _graph_versions(data, bundle)
        return data, opset, ir_version, None
    merged = waveform_model(bundle)
    opset = _default_opset(merged)
    front = frontend_model(bundle.features, opset=opset, ir_version=merged.ir_version)
    return merged.SerializeToString(), opset, int(merged.ir_version), front.SerializeToString()


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data):
            raise ValueError("truncated varint")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def _proto_fields(data: bytes):
    """(field number, wire type, value) of a protobuf message's top-level fields."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 1:
            value, i = data[i : i + 8], i + 8
        elif wire == 2:
            size, i = _varint(data, i)
            value, i = data[i : i + size], i + size
        elif wire == 5:
            value, i = data[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if i > len(data):
            raise ValueError("truncated field")
        yield number, wire, value


def _graph_versions(data: bytes, bundle: Bundle) -> tuple[int, int]:
    """Default-domain opset and IR version of a serialised ModelProto, read without the onnx
    package (the log-mel form needs nothing but a copy): ``ir_version`` is field 1, each
    ``opset_import`` field 8 (``domain`` 1, ``version`` 2)."""
    ir_version = opset = None
    try:
        for number, wire, value in _proto_fields(data):
            if number == 1 and wire == 0:
                ir_version = int(value)
            elif number == 8 and wire == 2:
                entry = {n: v for n, _, v in _proto_fields(value)}
                if entry.get(1, b"") in (b"", b"ai.onnx"):
                    opset = int(entry.get(2, 1))
    except (ValueError, TypeError) as exc:
        raise BundleError(f"{bundle.path / ONNX_FILE}: not a readable ONNX model ({exc})") from None
    if ir_version is None or opset is None:
        raise BundleError(f"{bundle.path / ONNX_FILE}: not a readable ONNX model (no IR version or opset)")
    return opset, ir_version
