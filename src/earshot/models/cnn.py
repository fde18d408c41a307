"""A small residual CNN on log-mel patches with attention pooling, as pure torch modules.

:class:`SpectrogramCNN` maps one normalised log-mel patch ``(batch, 1, n_mels, n_frames)``
to one anomaly logit: a 3x3 stem, residual stages that halve both axes and double the width,
then attention pooling over the time-frequency cells of the last feature map (a 1x1
convolution scores each cell, a softmax over all cells weights their features), a dropout and
a linear layer. :class:`PatchProbabilityModel` is the scoring graph a bundle exports to ONNX:
raw log-mel ``(batch, n_time, n_mels)`` in, one anomaly probability per patch out.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ResidualBlock", "AttentionPool", "SpectrogramCNN", "PatchProbabilityModel", "patch_starts"]


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a shortcut (1x1 when the shape changes).

    Shapes
    ------
    ``(batch, c_in, F, T) -> (batch, c_out, ceil(F / stride), ceil(T / stride))``.
    """

    def __init__(self, c_in: int, c_out: int, *, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.shortcut(x))


class AttentionPool(nn.Module):
    """Attention pooling over every time-frequency cell of a feature map.

    Shapes
    ------
    ``(batch, channels, F, T) -> (batch, channels)``; :attr:`last_weights` keeps the
    ``(batch, F * T)`` attention weights of the last call (for pictures).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.score = nn.Conv2d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.score(x).flatten(1)  # (batch, F*T)
        weights = torch.softmax(logits, dim=1)
        feats = x.flatten(2)  # (batch, C, F*T)
        return torch.bmm(feats, weights.unsqueeze(2)).squeeze(2)


class SpectrogramCNN(nn.Module):
    """Residual CNN classifier of log-mel patches (anomaly logit).

    Parameters
    ----------
    width : int
        Channels of the stem and the first stage (16); each further stage doubles them.
    n_blocks : int
        Residual stages (3): the first keeps the resolution, each further one halves both axes.
    dropout : float
        Dropout before the linear layer.

    Shapes
    ------
    ``forward``: normalised patches ``(batch, 1, n_mels, n_frames)`` -> logits ``(batch,)``.
    """

    def __init__(self, *, width: int = 16, n_blocks: int = 3, dropout: float = 0.2):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.MaxPool2d(2, ceil_mode=True),
        )
        blocks: list[nn.Module] = []
        c = width
        for i in range(n_blocks):
            c_out = width * 2**i
            blocks.append(ResidualBlock(c, c_out, stride=1 if i == 0 else 2))
            c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.pool = AttentionPool(c)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.blocks(self.stem(x))
        return self.head(self.dropout(self.pool(z))).squeeze(1)


def patch_starts(n_time, n_frames: int, hop_frames: int) -> torch.Tensor:
    """First frames of the patches covering ``n_time`` frames: every ``hop_frames`` frames,
    the last one moved back to end on the clip's last frame.

    Shapes
    ------
    ``(n_windows,)`` with ``n_windows = ceil((n_time - n_frames) / hop_frames) + 1``.
    """
    span = n_time - n_frames
    n_windows = (span + hop_frames - 1) // hop_frames + 1
    starts = torch.arange(n_windows) * hop_frames
    return torch.clamp(starts, max=span)


class PatchProbabilityModel(nn.Module):
    """The scoring graph: raw log-mel in, one anomaly probability per patch out.

    Normalisation (per-mel mean and standard deviation of the training frames) and the
    patching live in the graph, so an exported model needs nothing beside the log-mel.

    Parameters
    ----------
    net : SpectrogramCNN
    mean, std : torch.Tensor
        Shape ``(n_mels,)``.
    n_frames : int
        Frames per patch.
    hop_frames : int
        Frames between patch starts.

    Shapes
    ------
    ``forward``: log-mel ``(batch, n_time, n_mels)`` in dB, ``n_time >= n_frames`` ->
    probabilities ``(batch, n_windows)`` (see :func:`patch_starts`).
    """

    def __init__(self, net: nn.Module, mean: torch.Tensor, std: torch.Tensor, n_frames: int, hop_frames: int):
        super().__init__()
        self.net = net
        self.n_frames = int(n_frames)
        self.hop_frames = int(hop_frames)
        self.register_buffer("mean", mean.detach().clone().float())
        self.register_buffer("inv_std", 1.0 / std.detach().clone().float())

    def normalise(self, logmel: torch.Tensor) -> torch.Tensor:
        """``(..., n_mels)`` dB -> standardised per mel band."""
        return (logmel - self.mean) * self.inv_std

    def patches(self, logmel: torch.Tensor) -> torch.Tensor:
        """Normalised patches ``(batch * n_windows, 1, n_mels, n_frames)``."""
        x = self.normalise(logmel)
        starts = patch_starts(x.shape[1], self.n_frames, self.hop_frames)
        rows = starts.unsqueeze(1) + torch.arange(self.n_frames).unsqueeze(0)  # (n_windows, n_frames)
        p = x[:, rows, :]  # (batch, n_windows, n_frames, n_mels)
        return p.transpose(2, 3).reshape(-1, 1, x.shape[2], self.n_frames)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        batch = logmel.shape[0]
        logits = self.net(self.patches(logmel))
        return torch.sigmoid(logits).reshape(batch, -1)
