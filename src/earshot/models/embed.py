"""A compact CNN that embeds a log-mel clip, and the angular-margin head it is trained with.

The network is trained (elsewhere: :mod:`earshot.detection.embed`) to classify what is known
about normal clips (machine id, section, domain, attributes) and/or which augmentation was
applied to them; an anomaly then lands far from the normal clips in the embedding space.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["EmbeddingNet", "ArcMarginHead", "MIN_MELS", "MIN_TIME"]

#: Fewest mel bands.
MIN_MELS = 2
#: Fewest frames (two poolings by 2 in time).
MIN_TIME = 4


def _block(n_in: int, n_out: int, pool: int) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv1d(n_in, n_out, 3, padding=1, bias=False), nn.BatchNorm1d(n_out), nn.ReLU()]
    return layers + ([nn.MaxPool1d(pool)] if pool > 1 else [])


class EmbeddingNet(nn.Module):
    """Log-mel clip -> unit-length embedding.

    Per-mel normalisation (buffers), then three temporal conv blocks with the mel bands as
    input channels (1-D convolutions of width 3 over time, batch norm, ReLU; max pooling by 2
    in time after the first two): each filter sees the whole spectrum, so where energy sits in
    frequency is kept, at a fifth of the cost of 2-D convolutions of similar capacity on a CPU.
    Then a mean over time, a linear projection and L2 normalisation. The mean over time comes
    before the (linear) projection, so a long clip's embedding is the projection of the
    average of its windows' features: the network trains on crops and embeds whole clips of
    any length.

    Parameters
    ----------
    n_mels : int
    mean, std : torch.Tensor
        ``(n_mels,)`` normalisation of the training frames.
    width : int
        Channels of the first two blocks (the third has twice as many).
    embedding_dim : int

    Shapes
    ------
    ``forward``: log-mel ``(batch, n_time, n_mels)``, ``n_time >= 4`` -> ``(batch, embedding_dim)``.
    """

    def __init__(self, n_mels: int, mean: torch.Tensor, std: torch.Tensor, *, width: int = 128,
                 embedding_dim: int = 64):
        super().__init__()
        if n_mels < MIN_MELS:
            raise ValueError(f"n_mels: expected at least {MIN_MELS}, got {n_mels}")
        self.register_buffer("mean", mean.detach().clone().float())
        self.register_buffer("inv_std", 1.0 / std.detach().clone().float())
        self.features = nn.Sequential(*_block(n_mels, width, 2), *_block(width, width, 2), *_block(width, 2 * width, 1))
        self.proj = nn.Linear(2 * width, embedding_dim)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        x = ((logmel - self.mean) * self.inv_std).transpose(1, 2)  # (batch, n_mels, n_time)
        h = self.features(x).mean(dim=2)  # (batch, 2 * width)
        return F.normalize(self.proj(h), dim=1)


class ArcMarginHead(nn.Module):
    """Additive angular margin (ArcFace) logits for unit-length embeddings.

    ``logits[i, c] = scale * cos(theta_ic + margin * [c == y_i])`` with ``theta_ic`` the angle
    between embedding ``i`` and class centre ``c``; train with cross-entropy.

    Parameters
    ----------
    embedding_dim, n_classes : int
    scale : float
    margin : float
        In radians.

    Shapes
    ------
    ``forward``: ``(batch, embedding_dim)``, labels ``(batch,)`` -> logits ``(batch, n_classes)``.
    """

    def __init__(self, embedding_dim: int, n_classes: int, *, scale: float = 16.0, margin: float = 0.2):
        super().__init__()
        self.centres = nn.Parameter(torch.empty(n_classes, embedding_dim))
        nn.init.xavier_uniform_(self.centres)
        self.scale = float(scale)
        self.margin = float(margin)

    def forward(self, embedding: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = F.normalize(embedding, dim=1) @ F.normalize(self.centres, dim=1).t()
        cos = cos.clamp(-1.0 + 1e-6, 1.0 - 1e-6)
        target = torch.cos(torch.acos(cos) + self.margin)
        # keep the target logit monotonic in theta beyond pi - margin (the usual ArcFace fix)
        target = torch.where(cos > math.cos(math.pi - self.margin), target,
                             cos - math.sin(math.pi - self.margin) * self.margin)
        onehot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
        return self.scale * (onehot * target + (1.0 - onehot) * cos)
