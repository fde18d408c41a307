"""Dense autoencoder detector (the DCASE 2020 Task 2 baseline, done carefully).

The network learns to reconstruct context vectors of normal log-mel frames; a clip's score
is the aggregate (mean by default) of its windows' reconstruction errors. Fitting, scoring and
export are shared with the LSTM autoencoder (:mod:`earshot.detection.window_base`). torch is
imported only when the detector is trained or scored in torch; a saved bundle scores through ONNX.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from earshot._util.validate import check_fraction, check_positive
from earshot.detection.base import check_aggregate, each, int_at_least
from earshot.detection._training import check_device
from earshot.detection.window_base import WindowAutoencoder, window_starts
from earshot.features.store import FrameStore

__all__ = ["AutoencoderDetector"]

#: Windows per forward pass when scoring (bounds the activations: about 10 MB per 1,000 windows).
_SCORE_CHUNK = 4096


class AutoencoderDetector(WindowAutoencoder):
    """Dense autoencoder on context frames of log-mel spectrograms.

    Parameters
    ----------
    n_frames : int
        Consecutive frames per context window (5 in the DCASE baseline).
    window_hop : int
        Frames between the starts of consecutive scoring windows. 1 (the default, as in the
        DCASE 2020 baseline) scores every window; 2 scores every second one, so the network
        runs half as often per clip (about 1.25x more files/s end to end) with the same ROC
        AUC on every real and synthetic set measured (``bench/score_options.py``), but
        timelines (``detect``, ``listen``) average fewer windows and their event edges move
        more. Training always uses every window. Bundles saved before this parameter existed
        score every window.
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
    device : str
        Where to train: ``auto`` (CUDA when torch sees a GPU, else the CPU), ``cpu`` or
        ``cuda`` (``cuda:N``). The fitted network is moved to the CPU afterwards, so the bundle
        and its torch-free scoring are the same either way.

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
        window_hop: int = 1,
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
        device: str = "auto",
    ):
        self.n_frames = n_frames
        self.window_hop = window_hop
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
        self.device = device

    param_checks = (
        *each(("n_frames", "window_hop", "hidden", "n_layers", "bottleneck", "epochs", "batch_size"), int_at_least(1)),
        ("learning_rate", check_positive),
        ("validation_fraction", check_fraction),
        ("aggregate", check_aggregate),
        ("device", check_device),
    )
    #: batches of one window are skipped: batch norm needs two samples
    epoch_options = {"min_batch": 2}

    def _build(self, n_mels: int, mean: np.ndarray, std: np.ndarray):
        import torch  # deferred: torch is only needed to train or score in torch

        from earshot.models import DenseAutoencoder, FrameErrorModel  # deferred: earshot.models imports torch

        ae = DenseAutoencoder(
            n_mels * self.n_frames, hidden=self.hidden, n_layers=self.n_layers, bottleneck=self.bottleneck
        )
        return FrameErrorModel(ae, torch.from_numpy(mean), torch.from_numpy(std), self.n_frames,
                               int(self.window_hop))

    @classmethod
    def from_fitted(cls, params, state, weights):
        """Rebuild a fitted detector; a bundle saved before ``window_hop`` existed scored every window."""
        return super().from_fitted({"window_hop": 1, **params}, state, weights)

    def _epoch_windows(self, store: FrameStore, train_idx: np.ndarray,
                       rng: np.random.Generator) -> Callable[[], np.ndarray]:
        """Every context window of the training clips, shuffled anew each epoch."""
        starts = window_starts(store, train_idx, self.n_frames)
        return lambda: rng.permutation(starts)

    def _clips_per_pass(self, length: int) -> int:
        return max(1, _SCORE_CHUNK // max(1, (length - self.n_frames) // int(self.window_hop) + 1))
