"""Parameter checks shared by every layer: each raises :class:`~earshot.errors.ParameterError`
with a message that names the parameter, what was expected and what was received.

Two wordings exist for historical reasons and are kept byte for byte (tests and users read
them): ``"name: expected a positive integer, got 0"`` (detectors, the default) and
``"name must be >= 1; got 0"`` (the synthetic data generator, ``wording="must"``).
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

from earshot.errors import ParameterError

__all__ = ["check_fraction", "check_int", "check_positive"]


def check_int(name: str, value: Any, lo: int | None = 1, hi: int | None = None, *, wording: str = "expected") -> int:
    """Return ``value`` as an int; raise :class:`ParameterError` unless it is an integer (not a
    bool) in ``[lo, hi]`` (an open end where ``None``).

    Parameters
    ----------
    name : str
        The parameter's name, as the message shows it.
    value : object
        What was received.
    lo, hi : int or None
        Smallest and largest accepted value (``lo=1``: a positive integer).
    wording : {"expected", "must"}
        ``"expected"``: ``"n_frames: expected a positive integer, got 0"``;
        ``"must"``: ``"seed must be an integer; got 'a'"`` / ``"sr must be in [8000, 192000]; got 10"``.
    """
    is_int = isinstance(value, Integral) and not isinstance(value, bool)
    in_range = is_int and (lo is None or value >= lo) and (hi is None or value <= hi)
    if wording == "must":
        if not is_int:
            raise ParameterError(f"{name} must be an integer; got {value!r}")
        if not in_range:
            bounds = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
            raise ParameterError(f"{name} must be {bounds}; got {int(value)}")
        return int(value)
    if not in_range:
        if hi is not None:
            what = f"an integer in [{lo}, {hi}]"
        elif lo is None:
            what = "an integer"
        else:
            what = "a positive integer" if lo == 1 else f"an integer >= {lo}"
        raise ParameterError(f"{name}: expected {what}, got {value!r}")
    return int(value)


def check_positive(name: str, value: Any) -> None:
    """Raise :class:`ParameterError` unless ``value`` is a number > 0 (a learning rate, say)."""
    if not (isinstance(value, (int, float)) and value > 0):
        raise ParameterError(f"{name}: expected a positive number, got {value!r}")


def check_fraction(name: str, value: Any) -> None:
    """Raise :class:`ParameterError` unless ``0 <= value < 1`` (a held-out fraction, say)."""
    if not (0.0 <= float(value) < 1.0):
        raise ParameterError(f"{name}: expected 0 <= value < 1, got {value!r}")
