"""A loaded bundle: scores log-mel clips (or, for a waveform-input encoder, waveforms) or audio
files through ONNX (no torch)."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from earshot._util.cores import usable_cores
from earshot.bundle.faults import read_faults
from earshot.bundle.format import MANIFEST, ONNX_FILE, ONNX_INT8_FILE, check_format, read_json
from earshot.detection.aggregate import aggregate
from earshot.detection.base import Detector, check_clips
from earshot.errors import BundleError, ParameterError
from earshot.features.config import FeatureConfig
from earshot.features.extract import file_log_mel, file_waveform
from earshot.io.channels import channel_rule

__all__ = ["Bundle", "PRECISIONS", "PRECISION_ENV"]

log = logging.getLogger(__name__)

#: Windows per ONNX call.
_CHUNK_WINDOWS = 8192
#: Whole signals per ONNX call for a waveform model (a 10 s clip at 16 kHz is 640 kB).
_WAVEFORM_CLIPS = 32
#: Files one lane of :meth:`Bundle.score_files` decodes and scores at a time.
_LANE_FILES = 8
#: What ``precision`` may be: the int8 graph where the bundle has one (auto), the float32 graph
#: always, or the int8 graph or an error.
PRECISIONS = ("auto", "float32", "int8")
#: The environment variable giving the default ``precision`` (reaches worker processes too).
PRECISION_ENV = "EARSHOT_PRECISION"


def _threshold(entry: Any, manifest_path: Path) -> float:
    """The manifest's ``threshold.value``: a finite number with a ``method`` beside it, else BundleError.

    A NaN threshold would flag nothing (every comparison is false), an infinite one nothing or
    everything: detection would be silently off, so such a model is refused on load.
    """
    if not isinstance(entry, dict):
        raise BundleError(f"{manifest_path}: threshold: expected an object with value and method, got {entry!r}")
    value = entry.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BundleError(f"{manifest_path}: threshold.value: expected a finite number, got {value!r} "
                          "(the model would flag nothing; retrain it or calibrate a new threshold)")
    if not isinstance(entry.get("method"), str) or not entry["method"]:
        raise BundleError(f"{manifest_path}: threshold.method: expected how the threshold was set "
                          f"(e.g. \"gamma:0.9\"), got {entry.get('method')!r}")
    return float(value)


class Bundle(Detector):
    """A fitted detector read from a bundle directory; scoring runs on onnxruntime.

    It follows the :class:`~earshot.detection.base.Detector` conventions (higher score = more
    anomalous, ``decision_function = score - threshold_``) but cannot be refitted.

    Parameters
    ----------
    path : path-like
        The bundle directory (``manifest.json``, ``model.onnx``, ``weights.pt``, and
        ``model.int8.onnx`` where it was stored).
    precision : {"auto", "float32", "int8"}, optional
        Which scoring graph to run: ``auto`` (default) the dynamic-int8 graph where the bundle
        has one (``scoring.int8.graph`` in the manifest) and ``model.onnx`` otherwise;
        ``float32`` always ``model.onnx``; ``int8`` the int8 graph or a ParameterError. Default:
        ``$EARSHOT_PRECISION``, else ``auto``.
    threads : int, optional
        Intra-op threads of the clip-scoring session (0, the default: onnxruntime's own, all
        cores; 1 in a worker process, so that it builds one session, not one to replace).

    Attributes
    ----------
    manifest : dict
    features : FeatureConfig
    channel : int, "all" or None
        The channel rule of training (``features.channel`` in the manifest; see
        :mod:`earshot.io.channels`).
    threshold_ : float
    graph : str
        The graph clip scoring runs (``model.onnx`` or ``model.int8.onnx``; timelines always
        run ``model.onnx``, see :meth:`new_session`).
    faults : BundleFaults or None
        Fault signatures stored by ``train --labels`` with faults (:mod:`earshot.bundle.faults`).
    """

    def __init__(self, path: str | os.PathLike, *, precision: str | None = None, threads: int = 0):
        self.path = Path(path)
        if not self.path.is_dir():
            raise BundleError(f"{self.path}: no such model directory")
        manifest_path = self.path / MANIFEST
        if not manifest_path.exists():
            raise BundleError(f"{self.path}: not an earshot model (no {MANIFEST})")
        self.manifest = read_json(manifest_path)
        check_format(self.manifest, manifest_path)
        try:
            feats = dict(self.manifest["features"])
            self.channel = channel_rule(feats.pop("channel", None), name="features.channel")
            self.features = FeatureConfig.from_dict(feats)
            self.threshold_ = _threshold(self.manifest["threshold"], manifest_path)
            self.aggregate = str(self.manifest.get("aggregate", "mean"))
            self.min_frames = int(self.manifest["scoring"]["min_frames"])
            self.input = str(self.manifest["scoring"].get("input", "logmel"))
            self.min_samples = int(self.manifest["scoring"].get("min_samples", 1))
            self.kind = str(self.manifest["model"]["kind"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{manifest_path}: incomplete manifest ({exc})") from None
        if self.input not in ("logmel", "waveform"):
            raise BundleError(f"{manifest_path}: scoring.input: expected 'logmel' or 'waveform', got {self.input!r}")
        onnx_path = self.path / ONNX_FILE
        if not onnx_path.exists():
            raise BundleError(f"{self.path}: incomplete bundle (no {ONNX_FILE})")
        self.faults = read_faults(self.path, self.manifest)  # stored fault signatures (BundleFaults) or None
        self.graph = self._graph(precision, manifest_path)
        self._session = self.new_session(threads, clips=True)
        # one-thread session of score_files' lanes, made when first needed (a one-thread bundle's own)
        self._lane_session = self._session if threads == 1 else None
        self._streams: bool | None = None  # see `streams`, probed when first asked

    def _graph(self, precision: str | None, manifest_path: Path) -> str:
        """The scoring graph's file for ``precision`` (see the class docstring)."""
        precision = precision or os.environ.get(PRECISION_ENV) or "auto"
        if precision not in PRECISIONS:
            raise ParameterError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}"
                                 + (f" (from ${PRECISION_ENV})" if os.environ.get(PRECISION_ENV) == precision else ""))
        int8 = self.manifest["scoring"].get("int8")
        stored = isinstance(int8, dict) and int8.get("graph") == ONNX_INT8_FILE
        if stored and not (self.path / ONNX_INT8_FILE).exists():
            raise BundleError(f"{self.path}: incomplete bundle ({manifest_path.name} lists {ONNX_INT8_FILE}, "
                              "which is missing)")
        if precision == "int8" and not stored:
            raise ParameterError(f"{self.path}: precision int8: this bundle has no int8 graph (older bundle, or its "
                                 "int8 scores were not close enough at save time); use auto or float32")
        return ONNX_INT8_FILE if stored and precision != "float32" else ONNX_FILE

    def new_session(self, threads: int = 0, *, clips: bool = False):
        """A new onnxruntime session, ``threads`` intra-op threads (0: onnxruntime's default).

        On ``model.onnx`` (float32), what timelines run: they score the windows of a stream in
        calls of varying extent, where dynamic int8 (one scale per call) would make a window's
        score depend on its neighbours. With ``clips``, on :attr:`graph`: what clip scoring
        runs, one clip per call (see :meth:`window_scores`).
        """
        import onnxruntime as ort  # deferred: a second of start-up that `earshot --help` does not need

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        onnx_path = self.path / (self.graph if clips else ONNX_FILE)
        try:
            return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BundleError(f"{onnx_path}: cannot be loaded by onnxruntime ({exc})") from None

    def use_session(self, session) -> None:
        """Score clips with ``session`` from now on (e.g. ``new_session(1, clips=True)`` in a worker process)."""
        self._session = session
        self._lane_session = session

    @property
    def group(self) -> str | None:
        """The data group this bundle was trained on (e.g. ``fan/id_00``)."""
        return self.manifest.get("training", {}).get("group")

    @property
    def streams(self) -> bool:
        """Whether the scoring graph gives a score per model window (dense-ae, lstm-ae, cnn...)
        rather than one per clip (gauss, knn, embed: statistics of the whole clip).

        Told by the graph itself: a log-mel twice the model's window long gives one score
        from a clip-level model, several from a windowed one (one ONNX call, remembered).
        """
        if self._streams is None and self.input == "waveform":
            self._streams = False  # a waveform encoder gives one score per clip
        if self._streams is None:
            x = np.zeros((1, 2 * self.min_frames, self.features.n_mels), dtype=np.float32)
            (scores,) = self._session.run(None, {"logmel": x})
            self._streams = bool(np.asarray(scores).shape[-1] > 1)
        return self._streams

    def check_streams(self, what: str, name: str | None = None) -> None:
        """Refuse, in one line, to give ``what`` (a timeline) with a model that scores whole clips."""
        if not self.streams:
            raise ParameterError(
                f"{name or self.path}: {what} needs a model that scores windows of a recording (dense-ae, lstm-ae, "
                f"cnn); this {self.kind} model scores whole clips only (train one with --model dense-ae, or score "
                "clips with earshot score / POST /score)")

    def refuse_waveform_input(self, what: str, name: str | None = None) -> None:
        """Refuse, in one line, ``what`` (a timeline, an export) with a model fed waveforms
        (``scoring.input`` ``"waveform"``, a waveform-input encoder): those paths feed log-mel."""
        if self.input == "waveform":
            raise ParameterError(f"{name or self.path}: {what} is not available for a model that takes waveforms "
                                 "(a waveform-input encoder); score its clips with earshot score")

    def fit(self, X: Any, y: Any = None) -> "Bundle":
        raise ParameterError("a loaded bundle cannot be refitted: train a new model with `earshot train`")

    # ------------------------------------------------------------------ scoring
    def window_scores(self, X: Sequence[np.ndarray], *, session=None) -> list[np.ndarray]:
        """Window scores per clip, one array ``(n_time - min_frames + 1,)`` per clip.

        With the int8 graph each clip is its own ONNX call: dynamic quantisation takes the
        scale of a call's whole input, so a clip's score would depend on the clips beside it.

        Parameters
        ----------
        X : sequence of np.ndarray
            Log-mel clips ``(n_mels, n_time)`` made with :attr:`features`.
        session : onnxruntime.InferenceSession, optional
            The session to run (default: the bundle's).
        """
        session = session or self._session
        if self.input == "waveform":
            return self._waveform_scores(X, session)
        clips = check_clips(X, min_time=self.min_frames)
        if clips[0].shape[0] != self.features.n_mels:
            raise ParameterError(f"X: expected {self.features.n_mels} mel bands as in training, got {clips[0].shape[0]}")
        lengths = np.array([c.shape[1] for c in clips])
        out: list[np.ndarray | None] = [None] * len(clips)
        for length in np.unique(lengths):
            idx = np.flatnonzero(lengths == length)
            per_call = max(1, _CHUNK_WINDOWS // max(1, int(length) - self.min_frames + 1))
            if self.graph == ONNX_INT8_FILE:  # dynamic int8 scales each call's input as a whole: one clip per call
                per_call = 1
            for b in range(0, len(idx), per_call):
                chunk = idx[b : b + per_call]
                x = np.ascontiguousarray(np.stack([clips[i].T for i in chunk]), dtype=np.float32)
                (scores,) = session.run(None, {"logmel": x})
                for i, s in zip(chunk, scores):
                    out[i] = s.astype(np.float64)
        return out  # type: ignore[return-value]

    def _waveform_scores(self, X: Sequence[np.ndarray], session) -> list[np.ndarray]:
        """:meth:`window_scores` of a waveform model: one score per 1-D signal at the model's sr."""
        clips = [np.asarray(x, dtype=np.float32) for x in X]
        for i, c in enumerate(clips):
            if c.ndim != 1 or c.size < self.min_samples:
                raise ParameterError(f"X: clip {i}: this model takes waveforms of at least {self.min_samples} samples "
                                     f"at {self.features.sr} Hz (n_samples,), got shape {c.shape}")
        lengths = np.array([c.size for c in clips])
        out: list[np.ndarray | None] = [None] * len(clips)
        for length in np.unique(lengths):
            idx = np.flatnonzero(lengths == length)
            per_call = _WAVEFORM_CLIPS
            for b in range(0, len(idx), per_call):
                chunk = idx[b : b + per_call]
                (scores,) = session.run(None, {"waveform": np.ascontiguousarray(np.stack([clips[i] for i in chunk]))})
                for i, s in zip(chunk, scores):
                    out[i] = s.astype(np.float64)
        return out  # type: ignore[return-value]

    def score_samples(self, X: Sequence[np.ndarray], *, session=None) -> np.ndarray:
        """Clip scores ``(n_clips,)``: the bundle's aggregate of each clip's window scores.

        Clips of one length share ONNX calls (see :meth:`window_scores`).
        """
        return np.array([aggregate(w, self.aggregate) for w in self.window_scores(X, session=session)])

    def score_clip(self, logmel: np.ndarray) -> tuple[float, np.ndarray]:
        """One clip in one ONNX call: its score (the bundle's aggregate) and its window scores.

        ``logmel`` is what :meth:`extract` gives (a waveform ``(n_samples,)`` for a waveform model).

        The score depends on this clip only, never on which clips share a batch (float32
        kernels round differently for other batch shapes): what ``earshot score`` (batch) and
        the service give for a clip.
        """
        (windows,) = self.window_scores([logmel])
        return float(aggregate(windows, self.aggregate)), windows

    def verdict(self, score: float) -> dict[str, Any]:
        """``score, threshold, is_anomalous`` of a clip score (anomalous when score > threshold)."""
        return {"score": float(score), "threshold": self.threshold_, "is_anomalous": bool(score > self.threshold_)}

    def extract(self, path: str | os.PathLike) -> np.ndarray:
        """Decode one audio file and compute its log-mel ``(n_mels, n_time)`` as in training (a
        waveform model: the decoded mono signal ``(n_samples,)`` at its sr, see ``scoring.input``)."""
        if self.input == "waveform":
            return file_waveform(path, self.features.sr, channel=self.channel, min_samples=self.min_samples)
        return file_log_mel(path, self.features, channel=self.channel, min_frames=self.min_frames)

    def score_files(self, paths: Sequence[str | os.PathLike], *,
                    on_file: Callable[[], None] | None = None) -> np.ndarray:
        """Clip scores ``(n_files,)`` for audio files, in the order given.

        The files are dealt to one lane per available core, :data:`_LANE_FILES` at a time; a
        lane decodes its files, computes their log-mel and scores them with a one-thread
        onnxruntime session, so decoding and the network use every core at once instead of
        taking turns (both release the GIL; measured in ``bench/score.py``). Scores are those
        of :meth:`score_samples` on :meth:`extract` of each file.

        Parameters
        ----------
        paths : sequence of path-like
            Audio files.
        on_file : callable, optional
            Called once per file once it is scored, in order (for progress bars).

        Raises
        ------
        AudioError
            A file cannot be decoded (the first such file, in order).
        """
        paths = list(paths)
        steps = [paths[i : i + _LANE_FILES] for i in range(0, len(paths), _LANE_FILES)]
        lanes = min(len(steps), usable_cores())
        if lanes <= 1:
            scores = self.score_samples([self.extract(p) for p in paths]) if paths else np.zeros(0)
            for _ in range(len(paths) if on_file else 0):
                on_file()
            return scores
        if self._lane_session is None:
            self._lane_session = self.new_session(threads=1, clips=True)
        session = self._lane_session

        def lane(step: list) -> np.ndarray:
            return self.score_samples([self.extract(p) for p in step], session=session)

        out = []
        with ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="earshot-lane") as pool:
            for scores in pool.map(lane, steps):
                out.append(scores)
                for _ in range(len(scores) if on_file else 0):
                    on_file()
        return np.concatenate(out)
