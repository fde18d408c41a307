"""Atomic output: write to a temporary name beside the target, rename when complete."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PendingFile", "atomic_dir", "atomic_file", "atomic_path"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _as_created(path: Path, mode: int) -> None:
    """Give a mkstemp/mkdtemp result (0600/0700) the mode a plain open/mkdir would give."""
    os.chmod(path, mode & ~_umask())


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike, *, replace: bool = True) -> Iterator[Path]:
    """Yield a fresh temporary directory that becomes ``target`` only if the block succeeds.

    On error the temporary directory is removed and ``target`` is left as it was. With
    ``replace``, an existing ``target`` is swapped out only after the new one is complete.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    _as_created(tmp, 0o777)
    try:
        yield tmp
        if target.exists():
            if not replace:
                raise FileExistsError(target)
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / "x")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class PendingFile:
    """A temporary file beside ``target`` that becomes ``target`` on :meth:`commit`.

    For a file written over a while (a recording) rather than in one block; in a block use
    :func:`atomic_path` or :func:`atomic_file`. The temporary name is hidden
    (``.NAME.tmp-XXXXXXXX`` plus ``suffix``).

    Parameters
    ----------
    target : path-like
    suffix : str
        Added to the temporary name (e.g. ``.wav`` for a library that reads the extension).
    permissions : int, optional
        Mode bits of the finished file; None: what a plain ``open`` would give (0666 less the
        umask).
    """

    def __init__(self, target: str | os.PathLike, *, suffix: str = "", permissions: int | None = None):
        self.target = Path(target)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.target.name}.tmp-", suffix=suffix, dir=self.target.parent)
        os.close(fd)
        self.tmp = Path(name)
        self.permissions = permissions

    def commit(self) -> Path:
        """Give the file its mode and rename it to the target; return the target."""
        if self.permissions is None:
            _as_created(self.tmp, 0o666)
        else:
            os.chmod(self.tmp, self.permissions)
        os.replace(self.tmp, self.target)
        return self.target

    def discard(self) -> None:
        """Remove the temporary file (the target is left as it was)."""
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.tmp)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, suffix: str = "", permissions: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` (for writers that take a file name); it
    becomes ``target`` when the block succeeds and is removed when it fails.

    See :class:`PendingFile` for ``suffix`` and ``permissions``.
    """
    pending = PendingFile(target, suffix=suffix, permissions=permissions)
    try:
        yield pending.tmp
        pending.commit()
    except BaseException:
        pending.discard()
        raise


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike, mode: str = "w", *, permissions: int | None = None, **kwargs) -> Iterator:
    """Open a temporary file beside ``target``; rename it to ``target`` when the block succeeds.

    ``mode`` and ``kwargs`` go to :func:`open`; see :class:`PendingFile` for ``permissions``.
    """
    with atomic_path(target, permissions=permissions) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh
