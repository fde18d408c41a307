"""The one small exception family of earshot.

Every error raised on purpose by earshot derives from :class:`EarshotError` and from the
Python exception that says what kind of problem it is, so callers may catch either. Messages
name the parameter or file, what was expected and what was received. The command line turns
these into one line on stderr and exit code 1; the service into a 4xx JSON answer.
"""

from __future__ import annotations

__all__ = [
    "EarshotError",
    "ParameterError",
    "AudioError",
    "DatasetError",
    "BundleError",
    "NotFittedError",
    "EarshotWarning",
    "ResampleWarning",
]


class EarshotError(Exception):
    """Base class of every error earshot raises on purpose."""


class ParameterError(EarshotError, ValueError):
    """A parameter or option has a value earshot cannot use."""


class AudioError(EarshotError, OSError):
    """An audio file is missing, unreadable, corrupt, empty or unusable."""


class DatasetError(EarshotError, ValueError):
    """A data folder or manifest holds nothing usable (no clips, no normal clips to train on...)."""


class BundleError(EarshotError, OSError):
    """A model directory is missing, incomplete, or of an unknown format version."""


class NotFittedError(EarshotError, AttributeError):
    """A detector was asked to score before :meth:`fit` was called."""


class EarshotWarning(UserWarning):
    """Base class of earshot's warnings (the library also logs each one)."""


class ResampleWarning(EarshotWarning):
    """A file's sample rate differs from the requested one and the clip was resampled.

    Issued once per ``(file rate, target rate)`` pair per process.
    """
