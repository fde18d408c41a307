"""Training-time augmentation of log-mel patches: SpecAugment masking and mixup.

Random parameters are drawn from a ``numpy.random.Generator`` passed in (same seed, same
masks) separately from applying them, so a draw can be inspected, logged or replayed.
Everything works on numpy arrays and on torch tensors (without importing torch: a tensor is
recognised by duck typing); the output always has the input's shape and type.

- :class:`SpecAugment` (Park et al., 2019, without time warping): ``time_masks`` masks of at
  most ``max_time_frames`` consecutive frames and ``freq_masks`` masks of at most
  ``max_freq_bands`` consecutive mel bands, each set to ``fill`` (0 on standardised input:
  the band's training mean).
- :func:`draw_mixup` / :func:`apply_mixup` (Zhang et al., 2018): each example is blended with
  another one of the batch, ``x = lam * x_i + (1 - lam) * x_j`` and the same for the targets,
  ``lam ~ Beta(alpha, alpha)`` per example.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from earshot.errors import ParameterError

__all__ = ["Masks", "SpecAugment", "Mixup", "draw_mixup", "apply_mixup"]


def _check_count(name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise ParameterError(f"{name}: expected an integer >= 0, got {value!r}")
    return int(value)


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


@dataclass(frozen=True)
class Masks:
    """Drawn SpecAugment masks of a batch.

    Attributes
    ----------
    time_start, time_width : np.ndarray
        Shape ``(batch, time_masks)``, frames.
    freq_start, freq_width : np.ndarray
        Shape ``(batch, freq_masks)``, mel bands.
    """

    time_start: np.ndarray
    time_width: np.ndarray
    freq_start: np.ndarray
    freq_width: np.ndarray

    def boolean(self, n_mels: int, n_frames: int) -> np.ndarray:
        """True where a value is masked, shape ``(batch, n_mels, n_frames)``."""
        t = np.arange(n_frames)
        f = np.arange(n_mels)
        in_t = ((t >= self.time_start[..., None]) & (t < (self.time_start + self.time_width)[..., None])).any(axis=1)
        in_f = ((f >= self.freq_start[..., None]) & (f < (self.freq_start + self.freq_width)[..., None])).any(axis=1)
        return in_f[:, :, None] | in_t[:, None, :]


@dataclass(frozen=True)
class SpecAugment:
    """Time and frequency masking of log-mel patches.

    Parameters
    ----------
    time_masks : int
        Masks along time per example (0 disables).
    max_time_frames : int
        Widest time mask (frames); each width is uniform in ``[0, max_time_frames]``.
    freq_masks : int
        Masks along frequency per example (0 disables).
    max_freq_bands : int
        Widest frequency mask (mel bands).
    fill : float
        Value written into masked cells.

    Examples
    --------
    >>> aug = SpecAugment(time_masks=1, max_time_frames=4, freq_masks=1, max_freq_bands=3)
    >>> x = np.ones((2, 16, 20), np.float32)
    >>> y = aug(x, np.random.default_rng(0))
    >>> y.shape == x.shape and y.dtype == x.dtype
    True
    """

    time_masks: int = 2
    max_time_frames: int = 4
    freq_masks: int = 2
    max_freq_bands: int = 8
    fill: float = 0.0

    def __post_init__(self) -> None:
        for name in ("time_masks", "max_time_frames", "freq_masks", "max_freq_bands"):
            _check_count(name, getattr(self, name))

    def draw(self, rng: np.random.Generator, batch: int, n_mels: int, n_frames: int) -> Masks:
        """Draw the masks of a batch of ``(n_mels, n_frames)`` patches.

        Widths are clipped to the patch size; starts are uniform over the positions where the
        whole mask fits.
        """
        def axis(n_masks: int, max_width: int, size: int) -> tuple[np.ndarray, np.ndarray]:
            width = rng.integers(0, min(max_width, size) + 1, size=(batch, n_masks))
            start = np.floor(rng.random((batch, n_masks)) * (size - width + 1)).astype(np.int64)
            return start, width

        t_start, t_width = axis(self.time_masks, self.max_time_frames, n_frames)
        f_start, f_width = axis(self.freq_masks, self.max_freq_bands, n_mels)
        return Masks(t_start, t_width, f_start, f_width)

    def apply(self, x, masks: Masks):
        """Masked copy of ``x``, shape ``(batch, [1,] n_mels, n_frames)`` (numpy or torch)."""
        shape = tuple(x.shape)
        if len(shape) not in (3, 4) or (len(shape) == 4 and shape[1] != 1):
            raise ParameterError(f"x: expected shape (batch, n_mels, n_frames) or (batch, 1, n_mels, n_frames), got {shape}")
        n_mels, n_frames = shape[-2], shape[-1]
        mask = masks.boolean(n_mels, n_frames)
        if mask.shape[0] != shape[0]:
            raise ParameterError(f"masks: drawn for a batch of {mask.shape[0]}, got {shape[0]} examples")
        mask = mask.reshape(shape)
        if _is_torch(x):
            import torch  # deferred: only for torch inputs; numpy inputs need no torch

            m = torch.from_numpy(mask).to(x.device)
            return x.masked_fill(m, float(self.fill))
        out = np.array(x, copy=True)
        out[mask] = self.fill
        return out

    def __call__(self, x, rng: np.random.Generator):
        """Draw masks for ``x`` and apply them."""
        shape = tuple(x.shape)
        return self.apply(x, self.draw(rng, shape[0], shape[-2], shape[-1]))


@dataclass(frozen=True)
class Mixup:
    """Drawn mixup of a batch: ``lam`` ``(batch,)`` and the partner of each example ``perm``."""

    lam: np.ndarray
    perm: np.ndarray


def draw_mixup(rng: np.random.Generator, batch: int, alpha: float) -> Mixup:
    """Draw mixup weights ``lam ~ Beta(alpha, alpha)`` and a random partner per example.

    ``alpha = 0`` gives ``lam = 1`` (no mixing).
    """
    if not (isinstance(alpha, (int, float, np.floating)) and alpha >= 0):
        raise ParameterError(f"mixup_alpha: expected a number >= 0, got {alpha!r}")
    if alpha == 0:
        return Mixup(np.ones(batch, np.float32), np.arange(batch))
    lam = rng.beta(alpha, alpha, size=batch).astype(np.float32)
    return Mixup(lam, rng.permutation(batch))


def apply_mixup(x, y, mix: Mixup):
    """Blend examples and targets: ``x_i' = lam_i x_i + (1 - lam_i) x_perm(i)`` (same for y).

    Parameters
    ----------
    x : array or tensor, shape ``(batch, ...)``
    y : array or tensor, shape ``(batch,)``

    Returns
    -------
    (x', y') of the same shapes and types.
    """
    lam = mix.lam
    if _is_torch(x):
        import torch  # deferred: only for torch inputs; numpy inputs need no torch

        lam_t = torch.from_numpy(lam).to(x.device)
        perm = torch.from_numpy(np.asarray(mix.perm))
        lx = lam_t.reshape((-1,) + (1,) * (x.dim() - 1))
        return lx * x + (1 - lx) * x[perm], lam_t * y + (1 - lam_t) * y[perm]
    x = np.asarray(x)
    y = np.asarray(y)
    lx = lam.reshape((-1,) + (1,) * (x.ndim - 1))
    return (lx * x + (1 - lx) * x[mix.perm]).astype(x.dtype, copy=False), (lam * y + (1 - lam) * y[mix.perm]).astype(np.float32)
