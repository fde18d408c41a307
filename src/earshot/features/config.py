"""The feature configuration shared by extraction, training and model bundles."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from earshot.errors import ParameterError
from earshot.features.melscale import check_mel_bands

__all__ = ["FeatureConfig"]


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: object) -> bool:
    return (_is_int(value) or isinstance(value, (float, np.floating))) and math.isfinite(
        float(value)  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel feature parameters (librosa's names; DCASE 2020 baseline defaults).

    Parameters
    ----------
    sr : int, default 16000
        Sample rate in Hz the features are computed at.
    n_fft : int, default 1024
        FFT length in samples.
    hop_length : int, default 512
        Samples between STFT frames.
    win_length : int or None, default None
        Hann window length (``<= n_fft``, centred and zero-padded to ``n_fft``); ``None``
        means ``n_fft``.
    n_mels : int, default 128
        Number of mel bands (Slaney scale and area norm, as ``librosa.filters.mel``).
    fmin : float, default 0.0
        Lowest band edge in Hz.
    fmax : float or None, default None
        Highest band edge in Hz; ``None`` means ``sr / 2``.
    power : float, default 2.0
        Exponent of the STFT magnitude (2 = power, 1 = magnitude).
    n_frames : int, default 5
        Context frames concatenated into one feature vector
        (:func:`earshot.features.context_frames`).

    Raises
    ------
    ParameterError
        When a value is out of range; the message names the parameter, what was expected and
        what was received.

    Examples
    --------
    >>> cfg = FeatureConfig(n_mels=64)
    >>> FeatureConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    sr: int = 16000
    n_fft: int = 1024
    hop_length: int = 512
    win_length: int | None = None
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None
    power: float = 2.0
    n_frames: int = 5

    def __post_init__(self) -> None:
        for name in ("sr", "n_fft", "hop_length", "n_mels", "n_frames"):
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                raise ParameterError(f"{name} must be a positive int, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.n_fft < 2:
            raise ParameterError(f"n_fft must be an int >= 2, got {self.n_fft!r}")
        if self.win_length is not None:
            if not _is_int(self.win_length) or not 1 <= self.win_length <= self.n_fft:
                raise ParameterError(
                    f"win_length must be None or an int in [1, n_fft={self.n_fft}], "
                    f"got {self.win_length!r}"
                )
            object.__setattr__(self, "win_length", int(self.win_length))
        nyquist = self.sr / 2.0
        if not _is_real(self.fmin) or not 0.0 <= float(self.fmin) < nyquist:
            raise ParameterError(
                f"fmin must be a number in [0, sr/2={nyquist:g}) Hz, got {self.fmin!r}"
            )
        object.__setattr__(self, "fmin", float(self.fmin))
        if self.fmax is not None:
            if not _is_real(self.fmax) or not self.fmin < float(self.fmax) <= nyquist:
                raise ParameterError(
                    f"fmax must be None or a number in (fmin={self.fmin:g}, sr/2={nyquist:g}] "
                    f"Hz, got {self.fmax!r}"
                )
            object.__setattr__(self, "fmax", float(self.fmax))
        if not _is_real(self.power) or float(self.power) <= 0.0:
            raise ParameterError(f"power must be a number > 0, got {self.power!r}")
        object.__setattr__(self, "power", float(self.power))
        # Every mel band must cover at least one FFT bin (librosa only warns; an empty band
        # is a constant -100 dB feature that silently wastes model capacity).
        check_mel_bands(
            sr=self.sr, n_fft=self.n_fft, n_mels=self.n_mels, fmin=self.fmin, fmax=self.fmax
        )

    @property
    def n_bins(self) -> int:
        """Number of STFT frequency bins, ``1 + n_fft // 2``."""
        return 1 + self.n_fft // 2

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of all fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        """Build a config from :meth:`to_dict` output; missing keys take the defaults.

        Raises
        ------
        ParameterError
            ``d`` is not a mapping, or has keys that are not fields, or values out of range.
        """
        if not isinstance(d, dict):
            raise ParameterError(f"feature config must be a dict, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ParameterError(
                f"unknown feature config key(s) {', '.join(map(repr, unknown))}; "
                f"expected a subset of {sorted(known)}"
            )
        return cls(**d)

    def replace(self, **changes: Any) -> FeatureConfig:
        """A copy with some fields changed (validated; unknown names raise ParameterError)."""
        if not changes:
            return self
        return FeatureConfig.from_dict({**self.to_dict(), **changes})
