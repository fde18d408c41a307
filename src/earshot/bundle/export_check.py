"""The check of an exported graph against earshot's own scoring, and its tolerances.

Every exported file is checked before anything is written: onnxruntime runs it on
deterministic synthetic audio (:func:`verification_signals`: tones and noise, a length that is
not a multiple of the hop, a batch of two) and its window scores and clip scores are compared
with the bundle's own scoring (``log_mel`` + :meth:`Bundle.window_scores`); the measured
differences go into the contract (:func:`verify_export`).

Tolerance. The graph computes the DFT as float32 matrix products (the two stages of the
factorised DFT, or one dense product; see :mod:`earshot.bundle.export_frontend`) where
earshot runs a float32 FFT, so the log-mels differ by float32 round-off, which is relative
to the loudest bins of a frame: ~1e-5 dB on bands within ~45 dB of the loudest (the
verification signal, like real recordings, keeps every band there), about 1e-2 dB on bands
90 dB down (the valleys of pure tones, in both DFT forms), where float32 round-off dominates
everywhere (earshot's own FFT differs from a float64 librosa there too). The check (measured values in the constants' comments): the front end
alone within :data:`LOGMEL_TOL_DB` dB of ``log_mel``, window and clip scores within
:data:`RTOL` x ``max(|threshold|, max |score|)`` of the bundle's. Both catch a subtly wrong
front end, whichever DFT form the graph holds (a symmetric instead of periodic Hann window:
3e-2 dB at 32 mels, 9e-2 at 128, and 2e-4 to 7e-4 relative on scores) with room to spare
over float32 round-off (1e-5 dB, ~2e-7 relative).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from earshot.bundle.scorer import Bundle
from earshot.detection.aggregate import aggregate as aggregate_scores
from earshot.errors import BundleError
from earshot.features.config import FeatureConfig
from earshot.features.mel import log_mel

__all__ = ["RTOL", "LOGMEL_TOL_DB", "min_samples", "verification_signals", "verify_export"]

#: Tolerance of the verification on scores: ``max |window or clip score difference| <= RTOL *
#: max(|threshold|, max |score|)``. Measured: at most 2.3e-7 relative (dense-ae, lstm-ae, gauss,
#: knn; 32 and 128 mels; either DFT form), float32 round-off; a symmetric instead of periodic
#: Hann window gives 2e-4 to 7e-4.
RTOL = 1e-4
#: Tolerance of the verification on the log-mel front end alone (dB), the same as earshot's own
#: promise against librosa. Measured on the verification signal: 6e-6 dB (32 mels) to 1.4e-5
#: dB (128 mels) with the factorised DFT, 8e-6 to 6e-5 dB with the dense DFT product (at most
#: 1e-4 dB over the feature settings tried); a symmetric Hann window: 3e-2 to 9e-2 dB.
LOGMEL_TOL_DB = 1e-3


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
    import onnxruntime as ort  # deferred: onnxruntime start-up, only when an export is checked

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
    signals = verification_signals(bundle.features, bundle.min_frames)
    ref_mel = [log_mel(s, bundle.features) for s in signals]  # (n_mels, n_time) each
    ref_windows = bundle.window_scores(ref_mel, session=bundle.new_session())  # float32, as the exported graph
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
