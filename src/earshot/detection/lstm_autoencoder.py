"""LSTM autoencoder detector: sequences of log-mel frames with real time steps.

The network (:class:`earshot.models.LstmAutoencoder`) reconstructs windows of ``n_frames``
consecutive normalised log-mel frames, one LSTM step per frame; windows start every
``window_hop`` frames. A clip's score is the aggregate (mean by default) of its windows'
reconstruction errors, exactly as for the dense autoencoder, and the scoring graph has the
same contract: log-mel ``(batch, n_time, n_mels)`` -> window errors ``(batch, n_windows)``,
so bundles, ``score``, ``evaluate`` and ``detect`` treat both alike. torch is imported only
when the detector is trained or scored in torch.
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
from earshot.detection.autoencoder import _as_store, _frame_stats
from earshot.detection.base import TorchGraphDetector, check_fraction, check_int, check_positive
from earshot.detection.thresholds import ThresholdSpec
from earshot.errors import ParameterError
from earshot.features.store import FrameStore

__all__ = ["LstmAutoencoderDetector"]

#: Frames per forward pass when scoring (bounds memory on long clips).
_SCORE_FRAMES = 1 << 16
#: Windows per forward pass when validating.
_VAL_CHUNK = 4096
#: Largest gradient norm before each optimiser step (keeps the LSTM from exploding).
_CLIP_NORM = 5.0


def _window_starts(store: FrameStore, clips: np.ndarray, n_frames: int, hop: int, offset: int = 0) -> np.ndarray:
    """Start rows (in ``store.frames``) of the windows of the given clips, every ``hop`` frames
    from ``offset`` (clipped to each clip's first ``hop`` frames)."""
    parts = []
    for i in clips:
        first = store.offsets[i] + min(offset, max(0, int(store.lengths[i]) - n_frames))
        parts.append(np.arange(first, store.offsets[i + 1] - n_frames + 1, hop))
    return np.concatenate(parts) if parts else np.empty(0, np.int64)


class LstmAutoencoderDetector(TorchGraphDetector):
    """LSTM sequence autoencoder on windows of log-mel frames.

    Parameters
    ----------
    n_frames : int
        Frames per window, i.e. LSTM time steps per sequence (16 frames = 0.5 s at the
        default 16 kHz / hop 512).
    window_hop : int
        Frames between consecutive scoring windows (8: windows overlap by half). Training
        windows also start every ``window_hop`` frames, from a random offset each epoch, so
        every start position is seen over the epochs.
    hidden : int
        LSTM width.
    bottleneck : int
        Code width.
    n_layers : int
        Stacked LSTM layers in the encoder and in the decoder.
    epochs : int
        Passes over the training windows.
    batch_size : int
        Windows per optimiser step.
    learning_rate : float
        Adam step size.
    validation_fraction : float
        Share of the normal training clips held out (whole clips): the best epoch on them is
        kept and the threshold is fitted on their scores (with fewer than 5 held-out clips,
        on the training clips' scores; ``threshold_source_`` says which).
    aggregate : str
        Window errors to clip score: ``mean``, ``max`` or ``quantile:q``.
    threshold : str
        ``gamma:q``, ``percentile:p``, ``mean-std:k``, ``max`` or ``value:x``.
    random_state : int
        Seeds the split, the shuffling, the window offsets and the initial weights.

    Attributes
    ----------
    threshold_ : float
    threshold_source_ : str
    train_scores_, calibration_scores_ : np.ndarray
    history_ : dict
        ``{"loss": [...], "val_loss": [...], "best_epoch": n}``.
    mean_, std_ : np.ndarray
        Per-mel normalisation, shape ``(n_mels,)``.
    """

    kind = "lstm-ae"

    def __init__(
        self,
        *,
        n_frames: int = 16,
        window_hop: int = 8,
        hidden: int = 64,
        bottleneck: int = 16,
        n_layers: int = 1,
        epochs: int = 30,
        batch_size: int = 256,
        learning_rate: float = 2e-3,
        validation_fraction: float = 0.1,
        aggregate: str = "mean",
        threshold: str = "gamma:0.9",
        random_state: int = 0,
    ):
        self.n_frames = n_frames
        self.window_hop = window_hop
        self.hidden = hidden
        self.bottleneck = bottleneck
        self.n_layers = n_layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.aggregate = aggregate
        self.threshold = threshold
        self.random_state = random_state

    # ------------------------------------------------------------------ parameters
    def _validate_params(self) -> ThresholdSpec:
        for name in ("n_frames", "window_hop", "hidden", "bottleneck", "n_layers", "epochs", "batch_size"):
            check_int(name, getattr(self, name))
        if self.n_frames < 2:
            raise ParameterError(f"n_frames: expected at least 2 frames (time steps), got {self.n_frames!r}")
        check_positive("learning_rate", self.learning_rate)
        check_fraction("validation_fraction", self.validation_fraction)
        parse_aggregate(self.aggregate)
        return ThresholdSpec.parse(self.threshold)

    # ------------------------------------------------------------------ training
    def _build(self, n_mels: int, mean: np.ndarray, std: np.ndarray):
        import torch

        from earshot.models import LstmAutoencoder, SequenceErrorModel

        ae = LstmAutoencoder(n_mels, int(self.n_frames), hidden=int(self.hidden), bottleneck=int(self.bottleneck),
                             n_layers=int(self.n_layers))
        return SequenceErrorModel(ae, torch.from_numpy(mean), torch.from_numpy(std), int(self.n_frames),
                                  int(self.window_hop))

    def fit(self, X: Sequence[np.ndarray], y: Any = None, *, metadata: Sequence[dict] | None = None,
            progress: ProgressFn | None = None) -> "LstmAutoencoderDetector":
        """Train on normal clips and fit the threshold on normal scores.

        Parameters
        ----------
        X : sequence of np.ndarray or FrameStore
            Normal clips, each ``(n_mels, n_time)`` log-mel in dB, ``n_time >= n_frames``.
        y, metadata : ignored
            The autoencoder learns from normal clips only.
        progress : callable, optional
            ``progress(epoch, epochs, loss, val_loss)`` after each epoch.

        Returns
        -------
        self
        """
        spec = self._validate_params()
        store = _as_store(X, int(self.n_frames))
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
        """Train on windows every ``window_hop`` frames (a random offset per epoch), keep the
        best epoch on the held-out clips' windows."""
        import torch

        optimiser = torch.optim.Adam(model.parameters(), lr=float(self.learning_rate))
        val_starts = _window_starts(store, val_idx, self.n_frames, self.window_hop)
        if val_starts.size > 20_000:
            val_starts = np.sort(rng.choice(val_starts, 20_000, replace=False))

        def batch_loss(starts: np.ndarray):
            x = self._gather(model, store, starts)
            return torch.mean((model.autoencoder(x) - x) ** 2)

        def window_errors(starts: np.ndarray):
            x = self._gather(model, store, starts)
            return ((model.autoencoder(x) - x) ** 2).mean(dim=(1, 2))

        def one_epoch() -> float:
            offset = int(rng.integers(0, self.window_hop))
            starts = _window_starts(store, train_idx, self.n_frames, self.window_hop, offset)
            return train_epoch(model, optimiser, rng.permutation(starts), batch_loss,
                               batch_size=self.batch_size, clip_norm=_CLIP_NORM)

        def validate() -> float:
            return mean_loss(model, val_starts, window_errors, chunk=_VAL_CHUNK)

        return run_epochs(model, self.epochs, one_epoch, validate if val_starts.size else None, progress=progress)

    def _gather(self, model, store: FrameStore, starts: np.ndarray):
        """Normalised windows ``(len(starts), n_frames, n_mels)`` as a torch tensor."""
        import torch

        rows = starts[:, None] + np.arange(self.n_frames)
        return (torch.from_numpy(store.frames[rows]) - model.mean) * model.inv_std

    # ------------------------------------------------------------------ scoring
    def _window_scores_store(self, store: FrameStore) -> list[np.ndarray]:
        """Window errors per clip through the scoring graph, clips of equal length batched."""
        import torch

        lengths = store.lengths
        out: list[np.ndarray | None] = [None] * len(store)
        with torch.inference_mode():
            for length in np.unique(lengths):
                idx = np.flatnonzero(lengths == length)
                per_batch = max(1, _SCORE_FRAMES // int(length))
                for b in range(0, len(idx), per_batch):
                    chunk = idx[b : b + per_batch]
                    x = torch.from_numpy(np.stack([store.clip_frames(i) for i in chunk]))
                    for i, e in zip(chunk, self.model_(x).numpy()):
                        out[i] = e.astype(np.float64)
        return out  # type: ignore[return-value]

    def _score_store(self, store: FrameStore) -> np.ndarray:
        return np.array([aggregate(w, self.aggregate) for w in self._window_scores_store(store)])

    def window_scores(self, X: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Reconstruction error of every window, one array ``((n_time - n_frames) // window_hop + 1,)`` per clip."""
        if not hasattr(self, "model_"):
            self._check_fitted()
        store = _as_store(X, int(self.n_frames))
        if store.n_mels != self.n_mels_:
            raise ParameterError(f"X: expected {self.n_mels_} mel bands as in training, got {store.n_mels}")
        return self._window_scores_store(store)

    # ------------------------------------------------------------------ export
    def fitted_state(self) -> dict[str, Any]:
        """What a bundle records of the fitted detector (JSON-safe)."""
        self._check_fitted()
        return {
            **self._fitted_common(),
            "window_hop": int(self.window_hop),
            "windows": {"n_frames": int(self.n_frames), "hop_frames": int(self.window_hop),
                        "score": "mean squared reconstruction error (normalised log-mel)"},
        }

    @classmethod
    def from_fitted(cls, params: dict[str, Any], state: dict[str, Any], weights: dict) -> "LstmAutoencoderDetector":
        """Rebuild a fitted detector from a bundle's parameters, fitted state and weights."""
        det = cls(**params)
        det._restore_common(state)
        det._load_graph(det.n_mels_, weights)
        return det
