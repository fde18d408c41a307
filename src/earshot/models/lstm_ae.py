"""An LSTM autoencoder over sequences of log-mel frames, as a pure torch module.

Unlike AMULET's LSTM autoencoder (one time step per sequence, so the LSTM never sees time),
each sequence here is ``n_frames`` consecutive log-mel frames, one LSTM step per frame. The
encoder LSTM reads the sequence; its last hidden state goes through a linear bottleneck; the
decoder LSTM unrolls the code over ``n_frames`` steps (the "repeat vector" sequence
autoencoder of Srivastava et al. 2015 and Malhotra et al. 2016) and a linear layer maps each
step back to the mel bands.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LstmAutoencoder", "SequenceErrorModel"]


class LstmAutoencoder(nn.Module):
    """Sequence-to-sequence autoencoder for windows of log-mel frames.

    Parameters
    ----------
    n_mels : int
        Features per time step.
    n_frames : int
        Time steps per sequence (the decoder unrolls this many).
    hidden : int
        LSTM width (encoder and decoder).
    bottleneck : int
        Code width.
    n_layers : int
        Stacked LSTM layers on each side.

    Shapes
    ------
    ``forward``: ``(batch, n_frames, n_mels) -> (batch, n_frames, n_mels)``.
    """

    def __init__(self, n_mels: int, n_frames: int, *, hidden: int = 64, bottleneck: int = 16, n_layers: int = 1):
        super().__init__()
        self.n_frames = int(n_frames)
        self.encoder = nn.LSTM(n_mels, hidden, num_layers=n_layers, batch_first=True)
        self.to_code = nn.Linear(hidden, bottleneck)
        self.decoder = nn.LSTM(bottleneck, hidden, num_layers=n_layers, batch_first=True)
        self.to_mels = nn.Linear(hidden, n_mels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.encoder(x)
        code = torch.tanh(self.to_code(h[-1]))  # (batch, bottleneck)
        steps = code.unsqueeze(1).expand(-1, self.n_frames, -1)
        out, _ = self.decoder(steps)
        return self.to_mels(out)


class SequenceErrorModel(nn.Module):
    """The scoring graph: raw log-mel frames in, one reconstruction error per sequence window out.

    Per-mel normalisation (training frames' mean and standard deviation) and the cutting into
    windows of ``n_frames`` frames every ``window_hop`` frames happen inside the graph, so an
    exported model needs nothing beside it but the log-mel features.

    Parameters
    ----------
    autoencoder : LstmAutoencoder
    mean, std : torch.Tensor
        Shape ``(n_mels,)``.
    n_frames : int
        Frames per window.
    window_hop : int
        Frames between the starts of consecutive windows.

    Shapes
    ------
    ``forward``: log-mel ``(batch, n_time, n_mels)`` in dB -> errors ``(batch, n_windows)``,
    ``n_windows = (n_time - n_frames) // window_hop + 1``; window ``i`` covers frames
    ``i * window_hop ... i * window_hop + n_frames - 1``; its error is the mean squared
    reconstruction error over its frames and mel bands (normalised units).
    """

    def __init__(self, autoencoder: nn.Module, mean: torch.Tensor, std: torch.Tensor, n_frames: int, window_hop: int):
        super().__init__()
        self.autoencoder = autoencoder
        self.n_frames = int(n_frames)
        self.window_hop = int(window_hop)
        self.register_buffer("mean", mean.detach().clone().float())
        self.register_buffer("inv_std", 1.0 / std.detach().clone().float())
        self.register_buffer("offsets", torch.arange(self.n_frames))

    def windows(self, logmel: torch.Tensor) -> torch.Tensor:
        """Normalised windows ``(batch, n_windows, n_frames, n_mels)``."""
        x = (logmel - self.mean) * self.inv_std
        n_windows = torch.div(x.shape[1] - self.n_frames, self.window_hop, rounding_mode="floor") + 1
        starts = torch.arange(n_windows, device=x.device) * self.window_hop
        index = starts.unsqueeze(1) + self.offsets.unsqueeze(0)  # (n_windows, n_frames)
        return x[:, index]

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        w = self.windows(logmel)
        batch, n_windows = w.shape[0], w.shape[1]
        flat = w.reshape(-1, self.n_frames, w.shape[-1])
        rec = self.autoencoder(flat)
        d = rec - flat
        return (d * d).mean(dim=(1, 2)).reshape(batch, n_windows)  # d * d: ONNX Pow is several times slower
