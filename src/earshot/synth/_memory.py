"""Keep freed memory in the process (glibc only): avoids page faults on big temporaries.

Rendering a clip allocates a few dozen arrays of one clip's length. With glibc's default
thresholds each of them is a fresh ``mmap`` whose pages fault in on first touch; on virtual
machines that costs about as much as the arithmetic. Raising the mmap and trim thresholds
makes freed arrays be reused instead. It is applied only in the worker processes that
:func:`earshot.synth.synthesize` starts (``n_jobs > 1``), never to the caller's process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

__all__ = ["keep_freed_memory"]

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(mmap_threshold: int = 32 * 2**20, trim_threshold: int = 128 * 2**20) -> bool:
    """Raise glibc's mmap and trim thresholds for this process; False where not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))
    logger.debug("mallopt thresholds raised: %s", ok)
    return ok
