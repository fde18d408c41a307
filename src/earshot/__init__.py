"""earshot: listen to industrial machines and tell when one sounds wrong.

The package is layered one way (see ``docs/design.md``, "Architecture")::

    _util -> io -> features -> evaluation -> datasets -> synth -> models -> detection -> bundle
          -> timeline -> plots -> reports -> pipeline -> service -> cli

Importing :mod:`earshot` loads no heavy dependency (no torch, matplotlib, sklearn).
"""

from __future__ import annotations

__version__ = "0.1.0"

from earshot.errors import (  # noqa: E402  (re-exported for convenience)
    AudioError,
    BundleError,
    DatasetError,
    EarshotError,
    NotFittedError,
    ParameterError,
)

__all__ = [
    "__version__",
    "AudioError",
    "BundleError",
    "DatasetError",
    "EarshotError",
    "NotFittedError",
    "ParameterError",
]
