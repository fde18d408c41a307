"""The dense autoencoder of the DCASE 2020 Task 2 baseline, as a pure torch module.

The baseline reconstructs context vectors of ``n_frames`` consecutive log-mel frames
(``n_mels * n_frames`` values, frame-major) through four 128-wide layers, an 8-wide
bottleneck and four 128-wide layers back, each hidden layer followed by batch norm and ReLU.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_linear_bn_eval

__all__ = ["DenseAutoencoder", "FrameErrorModel"]


def _block(n_in: int, n_out: int) -> list[nn.Module]:
    return [nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.ReLU()]


class DenseAutoencoder(nn.Module):
    """Dense autoencoder for context vectors.

    Parameters
    ----------
    input_dim : int
        Length of one context vector (``n_mels * n_frames``; 640 in the DCASE baseline).
    hidden : int
        Width of the hidden layers (128).
    n_layers : int
        Hidden layers on each side of the bottleneck (4 in the baseline).
    bottleneck : int
        Width of the code layer (8).

    Shapes
    ------
    ``forward``: ``(batch, input_dim) -> (batch, input_dim)``.
    """

    def __init__(self, input_dim: int, *, hidden: int = 128, n_layers: int = 4, bottleneck: int = 8):
        super().__init__()
        enc: list[nn.Module] = []
        width = input_dim
        for _ in range(n_layers):
            enc += _block(width, hidden)
            width = hidden
        enc += _block(width, bottleneck)
        dec: list[nn.Module] = []
        width = bottleneck
        for _ in range(n_layers):
            dec += _block(width, hidden)
            width = hidden
        dec.append(nn.Linear(width, input_dim))
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def folded(self) -> "DenseAutoencoder":
        """An inference copy with each batch norm folded into the linear layer before it
        (eval-mode statistics): the same function, two fewer ONNX nodes per hidden layer."""
        out = copy.deepcopy(self).eval()
        for name in ("encoder", "decoder"):
            layers, kept = list(getattr(out, name)), []
            for layer in layers:
                if isinstance(layer, nn.BatchNorm1d) and kept and isinstance(kept[-1], nn.Linear):
                    kept[-1] = fuse_linear_bn_eval(kept[-1], layer)
                else:
                    kept.append(layer)
            setattr(out, name, nn.Sequential(*kept))
        return out


class FrameErrorModel(nn.Module):
    """The scoring graph: raw log-mel frames in, one reconstruction error per context window out.

    Normalisation (per-mel mean and standard deviation of the training frames) and the
    context stacking live inside the graph as buffers, so an exported model needs nothing
    beside it but the log-mel features.

    Parameters
    ----------
    autoencoder : nn.Module
        Maps ``(n, n_frames * n_mels)`` to the same shape.
    mean, std : torch.Tensor
        Shape ``(n_mels,)``.
    n_frames : int
        Context frames per window.
    window_hop : int, default 1
        Frames between the starts of consecutive windows (1: a window at every frame).

    Shapes
    ------
    ``forward``: log-mel ``(batch, n_time, n_mels)`` in dB ->
    errors ``(batch, n_windows)`` with ``n_windows = (n_time - n_frames) // window_hop + 1``,
    the mean squared error of each window (in normalised units); window ``i`` covers frames
    ``i * window_hop ... i * window_hop + n_frames - 1``.
    """

    def __init__(self, autoencoder: nn.Module, mean: torch.Tensor, std: torch.Tensor, n_frames: int,
                 window_hop: int = 1):
        super().__init__()
        self.autoencoder = autoencoder
        self.n_frames = int(n_frames)
        self.window_hop = int(window_hop)
        self.register_buffer("mean", mean.detach().clone().float())
        self.register_buffer("inv_std", 1.0 / std.detach().clone().float())

    def context(self, logmel: torch.Tensor) -> torch.Tensor:
        """Normalised context vectors, ``(batch, n_windows, n_frames * n_mels)``."""
        x = (logmel - self.mean) * self.inv_std
        if self.window_hop == 1:  # the graph of every earlier bundle, node for node
            n_windows = x.shape[1] - self.n_frames + 1
            return torch.cat([x[:, i : i + n_windows, :] for i in range(self.n_frames)], dim=-1)
        hop = self.window_hop
        span = torch.div(x.shape[1] - self.n_frames, hop, rounding_mode="floor") * hop + 1
        return torch.cat([x[:, i : i + span : hop, :] for i in range(self.n_frames)], dim=-1)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        ctx = self.context(logmel)
        batch, n_windows, dim = ctx.shape
        flat = ctx.reshape(-1, dim)
        rec = self.autoencoder(flat)
        d = rec - flat
        return (d * d).mean(dim=-1).reshape(batch, n_windows)  # d * d: ONNX Pow is several times slower

    def export_copy(self) -> "FrameErrorModel":
        """The graph to export: this one with the autoencoder's batch norms folded
        (:meth:`DenseAutoencoder.folded`); window errors equal within float32 round-off."""
        out = copy.deepcopy(self).eval()
        if isinstance(out.autoencoder, DenseAutoencoder):
            out.autoencoder = out.autoencoder.folded()
        return out
