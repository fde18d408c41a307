"""Supervised spectrogram CNN: learns from labelled normal AND abnormal clips.

The network (:class:`earshot.models.cnn.SpectrogramCNN`) classifies fixed-length log-mel
patches; a clip's score is the aggregate (mean by default) of its patches' anomaly
probabilities, so higher = more anomalous as everywhere in earshot. Training, on CPU:

- a validation split drawn from the TRAINING clips only (whole clips, stratified by label);
- random patches of every training clip each epoch, standardised per mel band with the
  training frames' statistics, SpecAugment masking and mixup, class weighting
  (``pos_weight = n_normal / n_anomaly`` in the binary cross-entropy);
- early stopping on the validation loss (the best epoch's weights are kept);
- the threshold is fitted on the validation split: by default on its NORMAL clips'
  probabilities with the usual methods (``gamma:q``, ``percentile:p`` ...); ``threshold="f1"``
  picks the F1-optimal threshold on the labelled validation split, only when asked, and
  ``threshold_source_`` says so.

torch is imported only inside :meth:`fit` and the torch scoring path; a saved bundle scores
through ONNX (:class:`earshot.models.cnn.PatchProbabilityModel`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from earshot._util.validate import check_positive
from earshot.detection._training import (ProgressFn, calibrate, check_device, make_optimiser, resolve_device, run_epochs,
                                         seeded_rng, train_epoch, training_threads)
from earshot.detection.aggregate import aggregate
from earshot.detection.augment import SpecAugment, apply_mixup, draw_mixup
from earshot.detection.auto import rank_auc
from earshot.detection.base import TorchGraphDetector, as_store, check_aggregate, each, frame_stats, int_at_least
from earshot.detection.thresholds import F1_SPEC, f1_optimal_threshold
from earshot.errors import ParameterError
from earshot.features.store import FrameStore

__all__ = ["CNNDetector", "stratified_validation_split", "f1_optimal_threshold"]

#: Patches per forward pass when scoring.
_SCORE_PATCHES = 512


def _optional_hop(name: str, value: Any) -> None:
    if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
        raise ParameterError(f"{name}: expected a positive integer or None, got {value!r}")


def _unit_interval(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise ParameterError(f"{name}: expected 0.0 <= value < 1.0, got {value!r}")


def _non_negative(name: str, value: Any) -> None:
    if not (isinstance(value, (int, float)) and value >= 0):
        raise ParameterError(f"{name}: expected a number >= 0, got {value!r}")


def _class_weight(name: str, value: Any) -> None:
    if value not in ("balanced", "none"):
        raise ParameterError(f"{name}: expected 'balanced' or 'none', got {value!r}")


def _check_labels(y: Any, n: int) -> np.ndarray:
    if y is None:
        raise ParameterError("y: the cnn detector is supervised; fit needs labels y (1 anomaly, 0 normal), got none")
    y = np.asarray(y)
    if y.shape != (n,):
        raise ParameterError(f"y: expected shape ({n},) like X, got {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ParameterError(f"y: expected labels 0 (normal) or 1 (anomaly), got {sorted(set(y.tolist()) - {0, 1})[:3]}")
    y = y.astype(np.int64)
    n_anomaly = int(y.sum())
    if n_anomaly == 0 or n_anomaly == n:
        raise ParameterError(
            f"y: a supervised detector needs both normal (0) and anomaly (1) training clips, "
            f"got {n - n_anomaly} normal and {n_anomaly} anomaly"
        )
    return y


def stratified_validation_split(y: np.ndarray, fraction: float, rng: np.random.Generator
                                ) -> tuple[np.ndarray, np.ndarray]:
    """Split clip indices into (train, validation), stratified by label.

    Each class gives ``round(fraction * n_class)`` clips to validation, at least one when the
    class has two or more clips and ``fraction > 0``, and always leaves one to train.

    Returns
    -------
    train_idx, val_idx : np.ndarray
        Sorted, disjoint, covering ``range(len(y))``.
    """
    val: list[np.ndarray] = []
    for label in (0, 1):
        idx = np.flatnonzero(y == label)
        n_val = int(round(fraction * len(idx)))
        if fraction > 0 and len(idx) >= 2:
            n_val = max(n_val, 1)
        n_val = min(n_val, len(idx) - 1) if len(idx) else 0
        val.append(rng.permutation(idx)[:n_val])
    val_idx = np.sort(np.concatenate(val)).astype(np.int64)
    train_idx = np.setdiff1d(np.arange(len(y)), val_idx)
    return train_idx, val_idx


class CNNDetector(TorchGraphDetector):
    """Supervised residual CNN on log-mel patches with attention pooling.

    Parameters
    ----------
    n_frames : int
        Frames per patch (32: about 1 s at 16 kHz, hop 512); clips must have at least this many.
    hop_frames : int or None
        Frames between patch starts when scoring (None: ``n_frames // 2``).
    width, n_blocks : int
        Channels of the first stage (doubling per stage) and residual stages (16, 3).
    dropout : float
        Dropout before the classifier layer.
    epochs : int
        Most passes over the training clips.
    batch_size : int
        Patches per optimiser step (small batches train better on CPU: 32).
    learning_rate, weight_decay : float
        AdamW step size and decoupled weight decay.
    patches_per_clip : int
        Random patches drawn from every training clip per epoch.
    validation_fraction : float
        Share of each class held out from the training clips (whole clips) for early stopping
        and threshold calibration.
    patience : int
        Epochs without a lower validation loss before training stops.
    class_weight : {"balanced", "none"}
        ``balanced`` weighs anomaly patches by ``n_normal / n_anomaly`` in the loss.
    time_masks, freq_masks : int
        SpecAugment masks per patch along time and frequency (0 disables).
    time_mask_max, freq_mask_max : float
        Widest mask as a fraction of the patch's frames / mel bands.
    mixup_alpha : float
        Mixup's Beta(alpha, alpha) parameter (0 disables).
    aggregate : str
        Patch probabilities to clip score: ``mean``, ``max`` or ``quantile:q``.
    threshold : str
        ``gamma:q``, ``percentile:p``, ``mean-std:k``, ``max``, ``value:x`` (fitted on the
        validation split's NORMAL clips), or ``f1`` (F1-optimal on the labelled validation
        split; only when asked).
    random_state : int
        Seeds the validation split, patch draws, augmentation, shuffling and initial weights.
    device : str
        Where to train: ``auto`` (CUDA when torch sees a GPU, else the CPU), ``cpu`` or
        ``cuda`` (``cuda:N``). The fitted network is moved to the CPU afterwards, so the bundle
        and its torch-free scoring are the same either way.

    Attributes
    ----------
    threshold_ : float
    threshold_source_ : str
        ``validation`` (validation normals), ``validation-f1`` (labelled validation split,
        F1-optimal), ``train`` or ``train-f1`` (in-sample, when the validation split is too small).
    train_indices_, validation_indices_ : np.ndarray
        Positions in ``X`` of the clips trained on and of the validation clips.
    train_scores_, validation_scores_, calibration_scores_ : np.ndarray
        Clip scores of the training clips, of the validation clips, and of the normal clips
        the threshold was fitted on.
    history_ : dict
        ``loss``, ``val_loss`` per epoch, ``best_epoch``, ``stopped_epoch``, ``val_auc``.
    mean_, std_ : np.ndarray
        Per-mel normalisation of the training frames, shape ``(n_mels,)``.
    """

    kind = "cnn"
    uses_labels = True

    def __init__(
        self,
        *,
        n_frames: int = 32,
        hop_frames: int | None = None,
        width: int = 16,
        n_blocks: int = 3,
        dropout: float = 0.2,
        epochs: int = 30,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        patches_per_clip: int = 4,
        validation_fraction: float = 0.2,
        patience: int = 6,
        class_weight: str = "balanced",
        time_masks: int = 2,
        time_mask_max: float = 0.125,
        freq_masks: int = 2,
        freq_mask_max: float = 0.125,
        mixup_alpha: float = 0.2,
        aggregate: str = "mean",
        threshold: str = "gamma:0.9",
        random_state: int = 0,
        device: str = "auto",
    ):
        self.n_frames = n_frames
        self.hop_frames = hop_frames
        self.width = width
        self.n_blocks = n_blocks
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patches_per_clip = patches_per_clip
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.class_weight = class_weight
        self.time_masks = time_masks
        self.time_mask_max = time_mask_max
        self.freq_masks = freq_masks
        self.freq_mask_max = freq_mask_max
        self.mixup_alpha = mixup_alpha
        self.aggregate = aggregate
        self.threshold = threshold
        self.random_state = random_state
        self.device = device

    _PARAMS = ("n_frames", "hop_frames", "width", "n_blocks", "dropout", "epochs", "batch_size", "learning_rate",
               "weight_decay", "patches_per_clip", "validation_fraction", "patience", "class_weight", "time_masks",
               "time_mask_max", "freq_masks", "freq_mask_max", "mixup_alpha", "aggregate", "threshold",
               "random_state", "device")

    param_checks = (
        *each(("n_frames", "width", "n_blocks", "epochs", "batch_size", "patches_per_clip", "patience"),
              int_at_least(1)),
        ("hop_frames", _optional_hop),
        *each(("time_masks", "freq_masks"), int_at_least(0)),
        *each(("dropout", "validation_fraction", "time_mask_max", "freq_mask_max"), _unit_interval),
        ("learning_rate", check_positive),
        *each(("weight_decay", "mixup_alpha"), _non_negative),
        ("class_weight", _class_weight),
        ("aggregate", check_aggregate),
        ("device", check_device),
    )

    # ------------------------------------------------------------------ parameters
    @property
    def _hop(self) -> int:
        return int(self.hop_frames) if self.hop_frames is not None else max(1, int(self.n_frames) // 2)

    # ------------------------------------------------------------------ training
    def _build(self, n_mels: int, mean: np.ndarray, std: np.ndarray):
        import torch  # deferred: torch is only needed to train or score in torch

        from earshot.models.cnn import PatchProbabilityModel, SpectrogramCNN  # deferred: earshot.models imports torch

        net = SpectrogramCNN(width=int(self.width), n_blocks=int(self.n_blocks), dropout=float(self.dropout))
        return PatchProbabilityModel(net, torch.from_numpy(mean), torch.from_numpy(std), int(self.n_frames), self._hop)

    def _augmenter(self, n_mels: int):
        return SpecAugment(time_masks=int(self.time_masks), max_time_frames=int(self.time_mask_max * self.n_frames),
                           freq_masks=int(self.freq_masks), max_freq_bands=int(self.freq_mask_max * n_mels))

    def fit(self, X: Sequence[np.ndarray], y: Any = None, *, metadata: Sequence[dict] | None = None,
            progress: ProgressFn | None = None) -> "CNNDetector":
        """Train on labelled clips, stop early on the validation split, fit the threshold there.

        Parameters
        ----------
        X : sequence of np.ndarray or FrameStore
            Clips ``(n_mels, n_time)`` log-mel in dB, ``n_time >= n_frames``.
        y : array-like of shape (n_clips,)
            1 anomaly, 0 normal; both classes are needed.
        metadata : ignored
        progress : callable, optional
            Called after each epoch as ``progress(epoch, epochs, loss, val_loss)``.

        Returns
        -------
        self
        """
        spec = self._validate_params()
        device = resolve_device(self.device)
        store = as_store(X, int(self.n_frames))
        y = _check_labels(y, len(store))
        rng = seeded_rng(self.random_state)

        fraction = float(self.validation_fraction) if len(store) >= 4 else 0.0
        train_idx, val_idx = stratified_validation_split(y, fraction, rng)
        if len(np.unique(y[train_idx])) < 2:  # pragma: no cover - the split always leaves one of each
            raise ParameterError("y: the training part lacks one class")
        self.mean_, self.std_ = frame_stats(store, train_idx)
        model = self._build(store.n_mels, self.mean_, self.std_)  # on the CPU: the same initial weights anywhere
        try:
            with training_threads(device):
                self.history_ = self._train(model.to(device), store, y, train_idx, val_idx, rng, progress)
        finally:
            model.to("cpu")  # scored, saved and exported from the CPU
        self.model_ = model
        self.n_mels_ = store.n_mels
        self.train_indices_, self.validation_indices_ = train_idx, val_idx

        scores = np.array([aggregate(p, self.aggregate) for p in self._window_probs(model, store, np.arange(len(store)))])
        self.train_scores_ = scores[train_idx]
        self.validation_scores_ = scores[val_idx]
        val_normals = val_idx[y[val_idx] == 0]
        if spec.method == F1_SPEC:  # F1-optimal, only when asked
            if len(val_idx) and len(np.unique(y[val_idx])) == 2:
                self.threshold_source_ = "validation-f1"
                self.threshold_ = f1_optimal_threshold(y[val_idx], scores[val_idx])
            else:
                self.threshold_source_ = "train-f1"
                self.threshold_ = f1_optimal_threshold(y[train_idx], scores[train_idx])
            self.calibration_scores_ = scores[val_normals] if len(val_normals) else scores[train_idx][y[train_idx] == 0]
        else:
            self.threshold_source_, self.calibration_scores_, self.threshold_ = calibrate(
                scores[val_normals], scores[train_idx][y[train_idx] == 0], spec)
        self.n_train_clips_ = int(len(train_idx))
        self.n_calibration_clips_ = int(len(self.calibration_scores_))
        self.class_counts_ = {"normal": int(np.sum(y == 0)), "anomaly": int(np.sum(y == 1))}
        return self

    def _train(self, model, store: FrameStore, y: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray,
               rng: np.random.Generator, progress: ProgressFn | None) -> dict[str, Any]:
        """Train on random augmented patches, stop early on the validation split; the history."""
        import torch  # deferred: torch is only needed to train

        device = next(model.parameters()).device
        model.net.to(memory_format=torch.channels_last)
        optimiser = make_optimiser(model.parameters(), device, lr=float(self.learning_rate), kind="adamw",
                                   weight_decay=float(self.weight_decay))
        n_pos = int(y[train_idx].sum())
        n_neg = len(train_idx) - n_pos
        pos_weight = n_neg / n_pos if self.class_weight == "balanced" else 1.0
        loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, dtype=torch.float32, device=device))
        augment = self._augmenter(store.n_mels)
        mean, inv_std = self.mean_, (1.0 / self.std_).astype(np.float32)
        val_auc: list[float | None] = []

        def batch_loss(batch: np.ndarray):
            """Loss on a batch of ``(clip, start)`` rows, shape ``(B, 2)``."""
            bc, bs = batch[:, 0], batch[:, 1]
            rows = (store.offsets[bc] + bs)[:, None] + np.arange(int(self.n_frames))
            patch = ((store.frames[rows] - mean) * inv_std).transpose(0, 2, 1)  # (B, n_mels, n_frames)
            patch = augment(patch, rng)
            target = y[bc].astype(np.float32)
            patch, target = apply_mixup(patch, target, draw_mixup(rng, len(bc), float(self.mixup_alpha)))
            xb = torch.from_numpy(np.ascontiguousarray(patch[:, None], dtype=np.float32))
            xb = xb.to(device).contiguous(memory_format=torch.channels_last)
            return loss_fn(model.net(xb), torch.from_numpy(np.asarray(target, dtype=np.float32)).to(device))

        def one_epoch() -> float:  # batches of one patch are skipped: batch norm needs two examples
            clips = np.repeat(train_idx, int(self.patches_per_clip))
            clips = clips[rng.permutation(len(clips))]
            starts = np.floor(rng.random(len(clips)) * (store.lengths[clips] - int(self.n_frames) + 1)).astype(np.int64)
            return train_epoch(model, optimiser, np.stack([clips, starts], axis=1), batch_loss,
                               batch_size=int(self.batch_size), min_batch=2)

        def validate() -> float:
            probs = self._window_probs(model, store, val_idx)
            val_auc.append(_auc(y[val_idx], np.array([aggregate(p, self.aggregate) for p in probs])))
            return _weighted_bce(probs, y[val_idx], pos_weight)

        run = run_epochs(model, self.epochs, one_epoch, validate if len(val_idx) else None,
                         patience=int(self.patience), progress=progress)
        return {"loss": run.loss, "val_loss": run.val_loss, "val_auc": val_auc, "best_epoch": run.best_epoch,
                "stopped_epoch": run.stopped_epoch, "pos_weight": pos_weight}

    # ------------------------------------------------------------------ scoring
    def _window_probs(self, model, store: FrameStore, clips: np.ndarray) -> list[np.ndarray]:
        """Patch probabilities of the given clips through the scoring graph (equal lengths batched)."""
        import torch  # deferred: torch is only needed to score in torch

        from earshot.models.cnn import patch_starts  # deferred: earshot.models imports torch

        model.eval()
        device = next(model.parameters()).device
        lengths = store.lengths[clips]
        out: list[np.ndarray | None] = [None] * len(clips)
        with torch.inference_mode():
            for length in np.unique(lengths):
                pos = np.flatnonzero(lengths == length)
                n_windows = len(patch_starts(int(length), int(self.n_frames), self._hop))
                per_batch = max(1, _SCORE_PATCHES // n_windows)
                for b in range(0, len(pos), per_batch):
                    chunk = pos[b : b + per_batch]
                    x = torch.from_numpy(np.stack([store.clip_frames(clips[i]) for i in chunk])).to(device)
                    probs = model(x).cpu().numpy()
                    for i, p in zip(chunk, probs):
                        out[i] = p.astype(np.float64)
        return out  # type: ignore[return-value]

    def window_scores(self, X: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Anomaly probability of every patch, one array ``(n_windows,)`` per clip."""
        self._check_fitted()
        store = as_store(X, int(self.n_frames))
        if store.n_mels != self.n_mels_:
            raise ParameterError(f"X: expected {self.n_mels_} mel bands as in training, got {store.n_mels}")
        return self._window_probs(self.model_, store, np.arange(len(store)))

    # ------------------------------------------------------------------ export
    def fitted_state(self) -> dict[str, Any]:
        """What a bundle records of the fitted detector (JSON-safe)."""
        self._check_fitted()
        return {
            **self._fitted_common(),
            "class_counts": self.class_counts_,
            "windows": {"n_frames": int(self.n_frames), "hop_frames": self._hop, "score": "anomaly probability"},
            "validation_scores": [float(s) for s in self.validation_scores_],
            "history": _jsonable_history(self.history_),
        }

    @classmethod
    def from_fitted(cls, params: dict[str, Any], state: dict[str, Any], weights: dict) -> "CNNDetector":
        """Rebuild a fitted detector from a bundle's parameters, fitted state and weights."""
        det = cls(**params)
        det._restore_common(state)
        det._load_graph(det.n_mels_, weights)
        det.class_counts_ = dict(state.get("class_counts", {}))
        det.validation_scores_ = np.asarray(state.get("validation_scores", []), dtype=np.float64)
        return det


def _weighted_bce(probs: list[np.ndarray], y: np.ndarray, pos_weight: float) -> float:
    """Class-weighted binary cross-entropy over every patch of labelled clips."""
    total, count = 0.0, 0
    for p, label in zip(probs, y):
        p = np.clip(p, 1e-7, 1 - 1e-7)
        total += float(np.sum(-pos_weight * np.log(p))) if label == 1 else float(np.sum(-np.log1p(-p)))
        count += len(p)
    return total / max(count, 1)


def _auc(y: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC of labelled clip scores (:func:`earshot.detection.auto.rank_auc`); None with one class."""
    if np.all(y == 1) or np.all(y == 0):
        return None
    return rank_auc(scores[y == 0], scores[y == 1])


def _jsonable_history(history: dict[str, Any]) -> dict[str, Any]:
    """History with plain floats and None for missing values."""
    out: dict[str, Any] = {}
    for key, value in history.items():
        if isinstance(value, list):
            out[key] = [None if v is None or not np.isfinite(v) else float(v) for v in value]
        else:
            out[key] = value.item() if isinstance(value, np.generic) else value
    return out
