"""The shared skeleton of the torch window autoencoders (``dense-ae``, ``lstm-ae``).

Both reconstruct windows of ``n_frames`` consecutive normalised log-mel frames; a clip's
score is the aggregate of its windows' reconstruction errors. What differs is the network
(:meth:`WindowAutoencoder._build`), where training windows start each epoch
(:meth:`~WindowAutoencoder._epoch_windows`), whether a window is fed flat or as a sequence,
and how many clips one scoring pass takes; everything else lives here once. The scoring graph
maps log-mel ``(batch, n_time, n_mels)`` to window errors ``(batch, n_windows)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from earshot.detection._training import (
    ProgressFn,
    TrainingRun,
    calibrate,
    holdout_split,
    make_optimiser,
    mean_loss,
    resolve_device,
    run_epochs,
    seeded_rng,
    train_epoch,
    training_threads,
)
from earshot.detection.aggregate import aggregate
from earshot.detection.base import TorchGraphDetector, as_store, frame_stats
from earshot.errors import ParameterError
from earshot.features.store import FrameStore

__all__ = ["WindowAutoencoder", "window_starts"]


def window_starts(store: FrameStore, clips: np.ndarray, n_frames: int, hop: int = 1, offset: int = 0) -> np.ndarray:
    """Start rows (in ``store.frames``) of the windows of the given clips, every ``hop`` frames
    from ``offset`` (clipped to each clip's first ``hop`` frames); ``hop=1``: every window."""
    parts = []
    for i in clips:
        first = store.offsets[i] + min(offset, max(0, int(store.lengths[i]) - n_frames))
        parts.append(np.arange(first, store.offsets[i + 1] - n_frames + 1, hop))
    return np.concatenate(parts) if parts else np.empty(0, np.int64)


class WindowAutoencoder(TorchGraphDetector):
    """Fit, score and export of an autoencoder on windows of log-mel frames.

    Subclasses provide ``_build(n_mels, mean, std)`` (the scoring graph, whose
    ``autoencoder`` reconstructs a batch of windows), :meth:`_epoch_windows` and
    :meth:`_clips_per_pass`, and set the class attributes below.
    """

    #: Feed a window as one flat vector ``(n_frames * n_mels,)`` (True) or as a sequence.
    flat_windows: ClassVar[bool] = True
    #: Most held-out windows checked after each epoch (a fixed subsample keeps it cheap).
    max_validation_windows: ClassVar[int] = 50_000
    #: Windows per forward pass when validating.
    validation_chunk: ClassVar[int] = 4096
    #: Extra keyword arguments of :func:`~earshot.detection._training.train_epoch`.
    epoch_options: ClassVar[dict[str, Any]] = {}

    n_frames: int
    window_hop: int
    epochs: int
    batch_size: int
    learning_rate: float
    validation_fraction: float
    random_state: int
    device: str

    def _hop(self) -> int:
        """Frames between consecutive scoring windows (the ``window_hop`` parameter; 1: every window)."""
        return int(self.window_hop)

    def _epoch_windows(self, store: FrameStore, train_idx: np.ndarray,
                       rng: np.random.Generator) -> Callable[[], np.ndarray]:  # pragma: no cover - abstract
        """A function giving each epoch's training window starts, in the order they are fed."""
        raise NotImplementedError

    def _clips_per_pass(self, length: int) -> int:  # pragma: no cover - abstract
        """Clips of ``length`` frames scored in one forward pass."""
        raise NotImplementedError

    # ------------------------------------------------------------------ training
    def fit(self, X: Sequence[np.ndarray], y: Any = None, *, metadata: Sequence[dict] | None = None,
            progress: ProgressFn | None = None):
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
        device = resolve_device(self.device)
        store = as_store(X, int(self.n_frames))
        rng = seeded_rng(self.random_state)
        train_idx, val_idx = holdout_split(len(store), self.validation_fraction, rng)
        self.mean_, self.std_ = frame_stats(store, train_idx)
        model = self._build(store.n_mels, self.mean_, self.std_)  # on the CPU: the same initial weights anywhere
        try:
            with training_threads(device):
                run = self._train(model.to(device), store, train_idx, val_idx, rng, progress)
        finally:
            model.to("cpu")  # scored, saved and exported from the CPU
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
        """Train on the training clips' windows, keep the best epoch on the held-out clips' windows."""
        import torch  # deferred: torch is only needed to train

        device = model.mean.device
        optimiser = make_optimiser(model.parameters(), device, lr=float(self.learning_rate))
        # on a GPU the frames are uploaded once and windows gathered there; on the CPU, from numpy
        frames = torch.from_numpy(store.frames).to(device) if device.type != "cpu" else None
        epoch_windows = self._epoch_windows(store, train_idx, rng)
        val_starts = window_starts(store, val_idx, self.n_frames, self._hop())
        if val_starts.size > self.max_validation_windows:
            val_starts = np.sort(rng.choice(val_starts, self.max_validation_windows, replace=False))

        def batch_loss(starts: np.ndarray):
            x = self._gather(model, store, starts, frames)
            return torch.mean((model.autoencoder(x) - x) ** 2)

        def window_errors(starts: np.ndarray):
            x = self._gather(model, store, starts, frames)
            return ((model.autoencoder(x) - x) ** 2).mean(dim=1 if self.flat_windows else (1, 2))

        def one_epoch() -> float:
            return train_epoch(model, optimiser, epoch_windows(), batch_loss, batch_size=self.batch_size,
                               **self.epoch_options)

        def validate() -> float:
            return mean_loss(model, val_starts, window_errors, chunk=self.validation_chunk)

        return run_epochs(model, self.epochs, one_epoch, validate if val_starts.size else None, progress=progress)

    def _gather(self, model, store: FrameStore, starts: np.ndarray, frames=None):
        """Normalised windows as a torch tensor: ``(len(starts), n_frames * n_mels)`` when
        :attr:`flat_windows`, else ``(len(starts), n_frames, n_mels)``; cut from ``frames``
        (``store.frames`` already on the model's device) when given."""
        import torch  # deferred: torch is only needed to train

        rows = starts[:, None] + np.arange(self.n_frames)
        if frames is None:
            x = (torch.from_numpy(store.frames[rows]) - model.mean) * model.inv_std
        else:
            x = (frames[torch.from_numpy(rows).to(frames.device)] - model.mean) * model.inv_std
        return x.reshape(len(starts), -1) if self.flat_windows else x

    # ------------------------------------------------------------------ scoring
    def _window_scores_store(self, store: FrameStore) -> list[np.ndarray]:
        """Window errors per clip through the scoring graph, clips of equal length batched."""
        import torch  # deferred: a saved bundle scores through ONNX, without torch

        lengths = store.lengths
        out: list[np.ndarray | None] = [None] * len(store)
        with torch.inference_mode():
            for length in np.unique(lengths):
                idx = np.flatnonzero(lengths == length)
                per_batch = self._clips_per_pass(int(length))
                for b in range(0, len(idx), per_batch):
                    chunk = idx[b : b + per_batch]
                    x = torch.from_numpy(np.stack([store.clip_frames(i) for i in chunk]))
                    for i, e in zip(chunk, self.model_(x).numpy()):
                        out[i] = e.astype(np.float64)
        return out  # type: ignore[return-value]

    def _score_store(self, store: FrameStore) -> np.ndarray:
        return np.array([aggregate(w, self.aggregate) for w in self._window_scores_store(store)])

    def window_scores(self, X: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Reconstruction error of every window, one array ``(n_windows,)`` per clip."""
        if not hasattr(self, "model_"):
            self._check_fitted()
        store = as_store(X, int(self.n_frames))
        if store.n_mels != self.n_mels_:
            raise ParameterError(f"X: expected {self.n_mels_} mel bands as in training, got {store.n_mels}")
        return self._window_scores_store(store)

    # ------------------------------------------------------------------ export
    def _extra_state(self) -> dict[str, Any]:
        """What a subclass records in the bundle beside the common fitted state."""
        return {}

    def fitted_state(self) -> dict[str, Any]:
        """What a bundle records of the fitted detector (JSON-safe)."""
        self._check_fitted()
        return {**self._fitted_common(), **self._extra_state()}

    @classmethod
    def from_fitted(cls, params: dict[str, Any], state: dict[str, Any], weights: dict):
        """Rebuild a fitted detector from a bundle's parameters, fitted state and weights."""
        det = cls(**params)
        det._restore_common(state)
        det._load_graph(det.n_mels_, weights)
        return det
