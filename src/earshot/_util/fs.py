"""Atomic output: write to a temporary name beside the target, rename when complete.

A directory being written is also locked (:func:`target_lock`): a second writer of the same
target refuses at once instead of silently replacing the first one's result.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from earshot.errors import EarshotError

__all__ = ["PendingFile", "atomic_dir", "atomic_file", "atomic_path", "target_lock"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _as_created(path: Path, mode: int) -> None:
    """Give a mkstemp/mkdtemp result (0600/0700) the mode a plain open/mkdir would give."""
    os.chmod(path, mode & ~_umask())


@contextlib.contextmanager
def target_lock(target: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on ``target`` (the file ``.NAME.lock`` beside it) for the block.

    The lock is an ``flock`` on that file: the system releases it when the holder dies (even
    by SIGKILL), so a crash leaves no stale lock; the file is removed when the block ends.

    Raises
    ------
    EarshotError
        Another process holds the lock ("another earshot is writing TARGET").
    """
    target = Path(target)
    lock = target.parent / f".{target.name}.lock"
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EarshotError(f"another earshot is writing {target} (lock {lock}); wait for it to finish "
                               "or write elsewhere") from None
        try:  # the holder before us may have removed the file after we opened it: lock the current one
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield lock
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(lock)
        os.close(fd)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike, *, replace: bool = True) -> Iterator[Path]:
    """Yield a fresh temporary directory that becomes ``target`` only if the block succeeds.

    On error (an exception, or SIGINT/SIGTERM turned into one by the command line) the
    temporary directory is removed and ``target`` is left as it was. With ``replace``, an
    existing ``target`` is swapped out only after the new one is complete. The target is
    locked meanwhile (:func:`target_lock`): a second writer refuses at once.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target_lock(target):
        yield from _atomic_dir(target, replace)


def _atomic_dir(target: Path, replace: bool) -> Iterator[Path]:
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
