"""How earshot writes numbers in its tables and pages: the one number formatter.

Every table (terminal, HTML) formats its numbers here, so a metric reads the same everywhere:

- :func:`fmt_metric`: a metric in a page, 3 decimals; ``n/a`` when undefined (None, NaN, inf);
- :func:`fmt_threshold`: a threshold, 4 significant digits; ``n/a`` when undefined;
- :func:`fmt_signed`: a difference of metrics, signed, 3 decimals; ``n/a`` when undefined;
- :func:`fmt_cell`: a cell of a terminal table, ``-`` when missing, ``n/a`` when NaN.

Standard library only (no numpy), so the command line can import it and still start fast.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["fmt_cell", "fmt_metric", "fmt_signed", "fmt_threshold", "is_finite_number"]


def is_finite_number(value: Any) -> bool:
    """True for a real number (Python or numpy, not a bool) that is neither NaN nor infinite."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def fmt_metric(value: Any) -> str:
    """A metric as printed in the table: 3 decimals, ``n/a`` when undefined."""
    return f"{float(value):.3f}" if is_finite_number(value) else "n/a"


def fmt_threshold(value: Any) -> str:
    """A threshold as printed: 4 significant digits."""
    return f"{float(value):.4g}" if is_finite_number(value) else "n/a"


def fmt_signed(value: Any) -> str:
    """A difference of two metrics (``+0.125``, ``-0.040``): 3 decimals with the sign, ``n/a`` when undefined."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.3f}"


def fmt_cell(value: Any, digits: int = 3) -> str:
    """A cell of a terminal table: ``-`` when missing (None), ``n/a`` when NaN, a float with
    ``digits`` decimals, anything else (counts, names) as ``str``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)
