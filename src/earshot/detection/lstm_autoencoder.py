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

from collections.abc import Callable
from typing import Any

import numpy as np

from earshot._util.validate import check_fraction, check_positive
from earshot.detection.base import check_aggregate, each, int_at_least
from earshot.detection._training import check_device
from earshot.detection.window_base import WindowAutoencoder, window_starts
from earshot.errors import ParameterError
from earshot.features.store import FrameStore

__all__ = ["LstmAutoencoderDetector"]

#: Frames per forward pass when scoring (bounds memory on long clips).
_SCORE_FRAMES = 1 << 16
#: Largest gradient norm before each optimiser step (keeps the LSTM from exploding).
_CLIP_NORM = 5.0


def _two_time_steps(name: str, value: Any) -> None:
    if value < 2:
        raise ParameterError(f"{name}: expected at least 2 frames (time steps), got {value!r}")


class LstmAutoencoderDetector(WindowAutoencoder):
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
    device : str
        Where to train: ``auto`` (CUDA when torch sees a GPU, else the CPU), ``cpu`` or
        ``cuda`` (``cuda:N``). The fitted network is moved to the CPU afterwards, so the bundle
        and its torch-free scoring are the same either way.

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
        device: str = "auto",
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
        self.device = device

    param_checks = (
        *each(("n_frames", "window_hop", "hidden", "bottleneck", "n_layers", "epochs", "batch_size"), int_at_least(1)),
        ("n_frames", _two_time_steps),
        ("learning_rate", check_positive),
        ("validation_fraction", check_fraction),
        ("aggregate", check_aggregate),
        ("device", check_device),
    )
    flat_windows = False
    max_validation_windows = 20_000
    epoch_options = {"clip_norm": _CLIP_NORM}

    def _build(self, n_mels: int, mean: np.ndarray, std: np.ndarray):
        import torch  # deferred: torch is only needed to train or score in torch

        from earshot.models import LstmAutoencoder, SequenceErrorModel  # deferred: earshot.models imports torch

        ae = LstmAutoencoder(n_mels, int(self.n_frames), hidden=int(self.hidden), bottleneck=int(self.bottleneck),
                             n_layers=int(self.n_layers))
        return SequenceErrorModel(ae, torch.from_numpy(mean), torch.from_numpy(std), int(self.n_frames),
                                  int(self.window_hop))

    def _epoch_windows(self, store: FrameStore, train_idx: np.ndarray,
                       rng: np.random.Generator) -> Callable[[], np.ndarray]:
        """Windows every ``window_hop`` frames from a random offset per epoch, shuffled."""
        def draw() -> np.ndarray:
            offset = int(rng.integers(0, self.window_hop))
            return rng.permutation(window_starts(store, train_idx, self.n_frames, self.window_hop, offset))
        return draw

    def _clips_per_pass(self, length: int) -> int:
        return max(1, _SCORE_FRAMES // length)

    def _extra_state(self) -> dict[str, Any]:
        return {
            "window_hop": int(self.window_hop),
            "windows": {"n_frames": int(self.n_frames), "hop_frames": int(self.window_hop),
                        "score": "mean squared reconstruction error (normalised log-mel)"},
        }
