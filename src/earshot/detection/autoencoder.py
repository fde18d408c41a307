"""Dense autoencoder detector (the DCASE 2020 Task 2 baseline, done carefully).

The network learns to reconstruct context vectors of normal log-mel frames; a clip's score
is the aggregate (mean by default) of its windows' reconstruction errors. torch is imported
only when the detector is trained or scored in torch; a saved bundle scores through ONNX.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from earshot.detection._training import (
    ProgressFn,
    TrainingRun,
    calibrate,
    holdout_split,
    mean_loss,
    run_epochs,
    seeded_rng,
    train_epoch,
)
from earshot.detection.aggregate import aggregate, parse_aggregate
from earshot.detection.base import TorchGraphDetector, check_clips, check_fraction, check_int, check_positive
from earshot.detection.thresholds import ThresholdSpec
from earshot.errors import ParameterError
from earshot.features.store import FrameStore

__all__ = ["AutoencoderDetector"]

#: Windows per forward pass when scoring (bounds the activations: about 10 MB per 1,000 windows).
_SCORE_CHUNK = 4096


def _as_store(X: Sequence[np.ndarray], min_time: int) -> FrameStore:
    if isinstance(X, FrameStore):
        if len(X) == 0:
            raise ParameterError("X: expected at least one clip, got none")
        short = np.flatnonzero(X.lengths < min_time)
        if short.size:
            raise ParameterError(f"X[{short[0]}]: expected at least {min_time} frames, got {X.lengths[short[0]]}")
        return X
    return FrameStore.from_clips(check_clips(X, min_time=min_time))


def _window_starts(store: FrameStore, clips: np.ndarray, n_frames: int) -> np.ndarray:
    """Start rows (in ``store.frames``) of every context window of the given clips."""
    parts = [np.arange(store.offsets[i], store.offsets[i + 1] - n_frames + 1) for i in clips]
    return np.concatenate(parts) if parts else np.empty(0, np.int64)


def _frame_stats(store: FrameStore, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-mel mean and standard deviation over the frames of the given clips, clip by clip."""
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


class AutoencoderDetector(TorchGraphDetector):
    """Dense autoencoder on context frames of log-mel spectrograms.

    Parameters
    ----------
    n_frames : int
        Consecutive frames per context window (5 in the DCASE baseline).
    hidden, n_layers, bottleneck : int
        Network width, hidden layers per side, code width (128, 4, 8 in the baseline).
    epochs : int
        Passes over the training windows.
    batch_size : int
        Windows per optimiser step.
    learning_rate : float
        Adam step size.
    validation_fraction : float
        Share of the normal training clips held out (whole clips) to watch the validation loss
        (the best epoch's weights are kept) and to calibrate the threshold on clips the network
        never trained on. With fewer than 5 held-out clips the threshold is fitted on the
        training clips' scores instead, and ``threshold_source_`` says so.
    aggregate : str
        Window scores to clip score: ``mean``, ``max`` or ``quantile:q``.
    threshold : str
        ``gamma:q``, ``percentile:p``, ``mean-std:k``, ``max`` or ``value:x`` (see
        :mod:`earshot.detection.thresholds`).
    random_state : int
        Seeds the clip split, the shuffling and the network's initial weights.

    Attributes
    ----------
    threshold_ : float
    threshold_source_ : str
        ``"validation"`` or ``"train"``.
    train_scores_, calibration_scores_ : np.ndarray
        Clip scores of the training clips and of the clips the threshold was fitted on.
    history_ : dict
        ``{"loss": [...], "val_loss": [...]}`` per epoch; ``best_epoch``.
    mean_, std_ : np.ndarray
        Per-mel normalisation of the training frames, shape ``(n_mels,)``.
    """

    kind = "dense-ae"

    def __init__(
        self,
        *,
        n_frames: int = 5,
        hidden: int = 128,
        n_layers: int = 4,
        bottleneck: int = 8,
        epochs: int = 30,
        batch_size: int = 512,
        learning_rate: float = 1e-3,
        validation_fraction: float = 0.1,
        aggregate: str = "mean",
        threshold: str = "gamma:0.9",
        random_state: int = 0,
    ):
        self.n_frames = n_frames
        self.hidden = hidden
        self.n_layers = n_layers
        self.bottleneck = bottleneck
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.aggregate = aggregate
        self.threshold = threshold
        self.random_state = random_state

    # ------------------------------------------------------------------ parameters
    def _validate_params(self) -> ThresholdSpec:
        for name in ("n_frames", "hidden", "n_layers", "bottleneck", "epochs", "batch_size"):
            check_int(name, getattr(self, name))
        check_positive("learning_rate", self.learning_rate)
        check_fraction("validation_fraction", self.validation_fraction)
        parse_aggregate(self.aggregate)
        return ThresholdSpec.parse(self.threshold)

    # ------------------------------------------------------------------ training
    def _build(self, n_mels: int, mean: np.ndarray, std: np.ndarray):
        import torch

        from earshot.models import DenseAutoencoder, FrameErrorModel

        ae = DenseAutoencoder(
            n_mels * self.n_frames, hidden=self.hidden, n_layers=self.n_layers, bottleneck=self.bottleneck
        )
        return FrameErrorModel(ae, torch.from_numpy(mean), torch.from_numpy(std), self.n_frames)

    def fit(self, X: Sequence[np.ndarray], y: Any = None, *, metadata: Sequence[dict] | None = None,
            progress: ProgressFn | None = None) -> "AutoencoderDetector":
        """Train on normal clips and fit the threshold on normal scores.

        Parameters
        ----------
        X : sequence of np.ndarray or FrameStore
            Normal clips, each ``(n_mels, n_time)`` log-mel in dB, ``n_time >= n_frames``.
        y, metadata : ignored
            Present for API consistency; the autoencoder learns from normal clips only.
        progress : callable, optional
            Called after each epoch as ``progress(epoch, epochs, loss, val_loss)``.

        Returns
        -------
        self
        """
        spec = self._validate_params()
        store = _as_store(X, self.n_frames)
        rng = seeded_rng(self.random_state)
        train_idx, val_idx = holdout_split(len(store), self.validation_fraction, rng)
        self.mean_, self.std_ = _frame_stats(store, train_idx)
        model = self._build(store.n_mels, self.mean_, self.std_)
        run = self._train(model, store, train_idx, val_idx, rng, progress)
        self.model_ = model
        self.history_ = run.history()
        self.n_mels_ = store.n_mels

        scores = self._score_store(store)
        self.train_scores_ = scores[train_idx]
        self.threshold_source_, self.calibration_scores_, self.threshold_ = calibrate(
            scores[val_idx], self.train_scores_, spec)
        self.n_train_clips_ = int(len(train_idx))
        self.n_calibration_clips_ = int(len(self.calibration_scores_))
        return self

    def _train(self, model, store: FrameStore, train_idx: np.ndarray, val_idx: np.ndarray,
               rng: np.random.Generator, progress: ProgressFn | None) -> TrainingRun:
        """Train on every context window of the training clips, keep the best epoch on the held-out clips."""
        import torch

        optimiser = torch.optim.Adam(model.parameters(), lr=float(self.learning_rate))
        train_starts = _window_starts(store, train_idx, self.n_frames)
        val_starts = _window_starts(store, val_idx, self.n_frames)
        if val_starts.size > 50_000:  # a fixed subsample keeps the per-epoch check cheap
            val_starts = np.sort(rng.choice(val_starts, 50_000, replace=False))

        def batch_loss(starts: np.ndarray):
            x = self._gather(model, store, starts)
            return torch.mean((model.autoencoder(x) - x) ** 2)

        def window_errors(starts: np.ndarray):
            x = self._gather(model, store, starts)
            return ((model.autoencoder(x) - x) ** 2).mean(dim=1)

        def one_epoch() -> float:  # batches of one window are skipped: batch norm needs two samples
            return train_epoch(model, optimiser, rng.permutation(train_starts), batch_loss,
                               batch_size=self.batch_size, min_batch=2)

        def validate() -> float:
            return mean_loss(model, val_starts, window_errors, chunk=_SCORE_CHUNK)

        return run_epochs(model, self.epochs, one_epoch, validate if val_starts.size else None, progress=progress)

    def _gather(self, model, store: FrameStore, starts: np.ndarray):
        """Normalised, flattened context windows ``(len(starts), n_frames * n_mels)`` (torch)."""
        import torch

        rows = starts[:, None] + np.arange(self.n_frames)
        x = (torch.from_numpy(store.frames[rows]) - model.mean) * model.inv_std
        return x.reshape(len(starts), -1)

    # ------------------------------------------------------------------ scoring
    def _window_scores_store(self, store: FrameStore) -> list[np.ndarray]:
        """Window errors per clip through the scoring graph, clips of equal length batched."""
        import torch

        lengths = store.lengths
        out: list[np.ndarray | None] = [None] * len(store)
        with torch.inference_mode():
            for length in np.unique(lengths):
                idx = np.flatnonzero(lengths == length)
                per_batch = max(1, _SCORE_CHUNK // max(1, int(length) - self.n_frames + 1))
                for b in range(0, len(idx), per_batch):
                    chunk = idx[b : b + per_batch]
                    x = torch.from_numpy(np.stack([store.clip_frames(i) for i in chunk]))
                    errors = self.model_(x).numpy()
                    for i, e in zip(chunk, errors):
                        out[i] = e.astype(np.float64)
        return out  # type: ignore[return-value]

    def _score_store(self, store: FrameStore) -> np.ndarray:
        return np.array([aggregate(w, self.aggregate) for w in self._window_scores_store(store)])

    def window_scores(self, X: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Reconstruction error of every context window, one array ``(n_time - n_frames + 1,)`` per clip."""
        if not hasattr(self, "model_"):
            self._check_fitted()
        store = _as_store(X, self.n_frames)
        if store.n_mels != self.n_mels_:
            raise ParameterError(f"X: expected {self.n_mels_} mel bands as in training, got {store.n_mels}")
        return self._window_scores_store(store)

    # ------------------------------------------------------------------ export
    def fitted_state(self) -> dict[str, Any]:
        """What a bundle records of the fitted detector (JSON-safe)."""
        self._check_fitted()
        return {
            **self._fitted_common(),
        }

    @classmethod
    def from_fitted(cls, params: dict[str, Any], state: dict[str, Any], weights: dict) -> "AutoencoderDetector":
        """Rebuild a fitted detector from a bundle's parameters, fitted state and weights."""
        det = cls(**params)
        det._restore_common(state)
        det._load_graph(det.n_mels_, weights)
        return det
