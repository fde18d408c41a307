"""The Detector contract shared by every earshot detector.

Conventions (pinned by ``tests/test_detector_contract.py``):

- **Score direction**: a higher score means more anomalous.
- **Labels**: 1 = anomaly, 0 = normal; :meth:`Detector.predict` returns 0/1.
- ``decision_function(X) = score_samples(X) - threshold_``: positive means anomalous, so
  ``predict(X) == (decision_function(X) > 0)``.
- The constructor only stores keyword parameters; :meth:`fit` validates, trains on normal
  clips, fits the threshold on normal scores and returns ``self``; learned state ends in ``_``
  (``threshold_``, ``train_scores_``, ``history_``); scoring before ``fit`` raises
  :class:`~earshot.errors.NotFittedError`.
- Unsupervised detectors (``uses_labels = False``) are fitted on normal clips only;
  supervised ones receive labelled normal and abnormal clips and ``y``.
- ``X`` is a sequence of clips, each a log-mel spectrogram of shape ``(n_mels, n_time)``
  (see :func:`earshot.features.log_mel`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from earshot._util.validate import check_fraction, check_int, check_positive
from earshot.detection.aggregate import aggregate, parse_aggregate
from earshot.detection.thresholds import ThresholdSpec
from earshot.errors import NotFittedError, ParameterError
from earshot.features.store import FrameStore

__all__ = ["Check", "ClipLevelDetector", "Detector", "TorchGraphDetector", "as_clips", "as_store", "check_aggregate", "check_bool",
           "check_clips", "check_fraction", "check_int", "check_positive", "each", "frame_stats", "int_at_least"]

#: A parameter check: ``check(name, value)`` raises :class:`ParameterError` naming ``name``.
Check = Callable[[str, Any], None]


def each(names: Sequence[str], check: Check) -> tuple[tuple[str, Check], ...]:
    """``(name, check)`` for every name: one row per parameter of a :attr:`Detector.param_checks` table."""
    return tuple((name, check) for name in names)


def int_at_least(lo: int) -> Check:
    """The check "an integer >= ``lo``" (``lo=1``: a positive integer)."""
    def check(name: str, value: Any) -> None:
        check_int(name, value, lo)
    return check


def check_bool(name: str, value: Any) -> None:
    """Raise :class:`ParameterError` unless ``value`` is True or False."""
    if not isinstance(value, (bool, np.bool_)):
        raise ParameterError(f"{name}: expected true or false, got {value!r}")


def check_aggregate(name: str, value: Any) -> None:
    """Raise :class:`ParameterError` unless ``value`` is ``mean``, ``max`` or ``quantile:q``."""
    parse_aggregate(value)


def check_clips(X: Sequence[np.ndarray], *, min_time: int = 1, name: str = "X") -> list[np.ndarray]:
    """Validate a sequence of log-mel clips and return them as float32 arrays.

    Parameters
    ----------
    X : sequence of np.ndarray
        Each of shape ``(n_mels, n_time)``, all with the same ``n_mels``.
    min_time : int
        The fewest frames a clip may have.

    Returns
    -------
    list of np.ndarray
        float32 arrays, shape ``(n_mels, n_time_i)``.
    """
    if isinstance(X, np.ndarray) and X.ndim == 2:
        raise ParameterError(f"{name}: expected a sequence of (n_mels, n_time) clips, got one 2-D array")
    clips = [np.asarray(x, dtype=np.float32) for x in X]
    if not clips:
        raise ParameterError(f"{name}: expected at least one clip, got none")
    n_mels = clips[0].shape[0] if clips[0].ndim == 2 else None
    for i, c in enumerate(clips):
        if c.ndim != 2:
            raise ParameterError(f"{name}[{i}]: expected shape (n_mels, n_time), got {c.shape}")
        if c.shape[0] != n_mels:
            raise ParameterError(f"{name}[{i}]: expected {n_mels} mel bands like the first clip, got {c.shape[0]}")
        if c.shape[1] < min_time:
            raise ParameterError(f"{name}[{i}]: expected at least {min_time} frames, got {c.shape[1]}")
        if not np.isfinite(c).all():
            raise ParameterError(f"{name}[{i}]: contains NaN or infinite values")
    return clips


def as_clips(X: Sequence[np.ndarray], min_time: int) -> Sequence[np.ndarray]:
    """Validated clips: a FrameStore as it is (checked), anything else through :func:`check_clips`."""
    if isinstance(X, FrameStore):
        if len(X) == 0:
            raise ParameterError("X: expected at least one clip, got none")
        short = np.flatnonzero(X.lengths < min_time)
        if short.size:
            raise ParameterError(f"X[{short[0]}]: expected at least {min_time} frames, got {X.lengths[short[0]]}")
        return X
    return check_clips(X, min_time=min_time)


def as_store(X: Sequence[np.ndarray], min_time: int) -> FrameStore:
    """Validated clips as one :class:`FrameStore` (see :func:`as_clips`)."""
    clips = as_clips(X, min_time)
    return clips if isinstance(clips, FrameStore) else FrameStore.from_clips(clips)


def frame_stats(store: FrameStore, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-mel mean and standard deviation (floored at 1e-3) over the frames of the given clips,
    clip by clip (never a float64 copy of every frame); both float32, shape ``(n_mels,)``."""
    total = np.zeros(store.n_mels)
    total_sq = np.zeros(store.n_mels)
    count = 0
    for i in clips:
        frames = store.clip_frames(i).astype(np.float64)
        total += frames.sum(axis=0)
        total_sq += np.einsum("ij,ij->j", frames, frames)
        count += len(frames)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-3).astype(np.float32)


class Detector:
    """Base class: fit on normal clips, score, threshold, predict.

    Subclasses set ``kind`` and implement :meth:`fit` and :meth:`score_samples`.
    """

    kind: ClassVar[str] = "detector"
    #: True for supervised detectors: ``fit`` then receives normal AND abnormal training clips
    #: with their labels ``y``; unsupervised detectors receive normal clips only.
    uses_labels: ClassVar[bool] = False
    #: The parameter checks :meth:`_validate_params` runs, in order: ``(name, check)`` rows
    #: (see :func:`each`); the ``threshold`` spec is checked last by :class:`ThresholdSpec`.
    param_checks: ClassVar[tuple[tuple[str, Check], ...]] = ()
    threshold_: float

    def fit(self, X: Sequence[np.ndarray], y: Any = None, *, metadata: Sequence[dict] | None = None,
            progress: Any = None) -> "Detector":  # pragma: no cover - abstract
        """Train and fit the threshold.

        Parameters
        ----------
        X : sequence of np.ndarray
            Clips ``(n_mels, n_time)``.
        y : array-like of shape (n_clips,), optional
            Labels (1 anomaly, 0 normal); given only to detectors with ``uses_labels``.
        metadata : sequence of dict, optional
            One dict per clip (``machine``, ``id``, ``domain``, ``attributes``...) for detectors
            that learn from what is known about each clip; others ignore it.
        progress : callable, optional
            ``progress(epoch, epochs, loss, val_loss)``.
        """
        raise NotImplementedError

    def score_samples(self, X: Sequence[np.ndarray]) -> np.ndarray:  # pragma: no cover - abstract
        """Anomaly score per clip, shape ``(n_clips,)``; higher = more anomalous."""
        raise NotImplementedError

    def _validate_params(self) -> ThresholdSpec:
        """Run :attr:`param_checks` in order, then parse the threshold spec (``f1`` only for a
        supervised detector); the first bad parameter raises :class:`ParameterError`."""
        for name, check in self.param_checks:
            check(name, getattr(self, name))
        return ThresholdSpec.parse(self.threshold, labelled=self.uses_labels)

    def get_params(self) -> dict[str, Any]:
        """The constructor's keyword parameters and their values (JSON-safe), in signature order."""
        params = inspect.signature(type(self)).parameters
        return {name: getattr(self, name) for name, p in params.items() if p.kind is p.KEYWORD_ONLY}

    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise NotFittedError(
                f"{type(self).__name__} is not fitted yet: call fit(X) before scoring"
            )

    def decision_function(self, X: Sequence[np.ndarray]) -> np.ndarray:
        """``score_samples(X) - threshold_``, shape ``(n_clips,)``; positive = anomalous."""
        self._check_fitted()
        return self.score_samples(X) - self.threshold_

    def predict(self, X: Sequence[np.ndarray]) -> np.ndarray:
        """0 (normal) or 1 (anomaly) per clip, shape ``(n_clips,)``, int64."""
        return (self.decision_function(X) > 0).astype(np.int64)

    # ------------------------------------------------------------------ what a bundle keeps
    def _fitted_common(self) -> dict[str, Any]:
        """The fitted state every detector records in its bundle (JSON-safe)."""
        return {
            "threshold": self.threshold_,
            "threshold_source": self.threshold_source_,
            "n_train_clips": self.n_train_clips_,
            "n_calibration_clips": self.n_calibration_clips_,
            "n_mels": self.n_mels_,
            "calibration_scores": [float(s) for s in self.calibration_scores_],
            "train_scores": [float(s) for s in self.train_scores_],
            "history": self.history_,
        }

    def _restore_common(self, state: dict[str, Any], *, default_source: str = "train") -> None:
        """Set the attributes :meth:`_fitted_common` recorded, from a bundle's fitted state."""
        self.n_mels_ = int(state["n_mels"])
        self.history_ = state.get("history", {})
        self.threshold_source_ = state.get("threshold_source", default_source)
        self.n_train_clips_ = int(state.get("n_train_clips", 0))
        self.n_calibration_clips_ = int(state.get("n_calibration_clips", 0))
        self.train_scores_ = np.asarray(state.get("train_scores", []), dtype=np.float64)
        self.calibration_scores_ = np.asarray(state.get("calibration_scores", []), dtype=np.float64)
        self.threshold_ = float(state["threshold"])


class ClipLevelDetector(Detector):
    """A detector that scores whole clips: the bundle sees one "window" per clip."""

    def window_scores(self, X: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One "window" per clip: ``[array([score])]`` (the bundle's view of a clip-level model)."""
        return [np.array([s]) for s in self.score_samples(X)]


class TorchGraphDetector(Detector):
    """A detector whose fitted network ``model_`` is itself the scoring graph.

    ``model_`` maps log-mel ``(batch, n_time, n_mels)`` to window scores ``(batch, n_windows)``
    with the normalisation buffers ``mean`` and ``inv_std`` inside; subclasses provide
    ``_build(n_mels, mean, std)`` and ``window_scores``.
    """

    aggregate: str

    def score_samples(self, X: Sequence[np.ndarray]) -> np.ndarray:
        """Clip scores, shape ``(n_clips,)``: the aggregate of each clip's window scores."""
        self._check_fitted()
        return np.array([aggregate(w, self.aggregate) for w in self.window_scores(X)])

    def window_scores(self, X: Sequence[np.ndarray]) -> list[np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def scoring_module(self):
        """The torch scoring graph (eval mode): log-mel ``(batch, n_time, n_mels)`` -> ``(batch, n_windows)``."""
        self._check_fitted()
        return self.model_.eval()

    def state_dict(self) -> dict:
        """Weights of the scoring graph (network and normalisation buffers)."""
        self._check_fitted()
        return self.model_.state_dict()

    def _load_graph(self, n_mels: int, weights: dict) -> None:
        """Rebuild ``model_`` (and ``mean_``, ``std_``) from a bundle's weights."""
        model = self._build(n_mels, np.zeros(n_mels, np.float32), np.ones(n_mels, np.float32))
        model.load_state_dict(weights)
        model.eval()
        self.model_ = model
        self.mean_ = model.mean.numpy().copy()
        self.std_ = (1.0 / model.inv_std).numpy().copy()
