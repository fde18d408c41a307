"""An on-disk cache of log-mel features, keyed by file content and feature configuration.

Training several models on the same data (other detectors, other thresholds, cross-validation)
decodes each file once::

    EARSHOT_CACHE=~/.cache/earshot earshot train DATA --out m1 --model dense-ae
    EARSHOT_CACHE=~/.cache/earshot earshot train DATA --out m2 --model lstm-ae

Layout (one folder per feature configuration, one ``.npy`` per distinct file content)::

    <root>/v1/<config key>/config.json
    <root>/v1/<config key>/<sha[:2]>/<sha256 of the file bytes>.npy     (n_mels, n_time) float32

The config key hashes :class:`~earshot.features.FeatureConfig`, the channel choice and the
feature code version :data:`FEATURE_VERSION`; renamed or copied files hit the same entry, an
edited file misses. Entries are written to a temporary name and renamed, so concurrent workers
and killed runs never leave a half-written entry; an unreadable entry is recomputed. The cache
never expires: delete the folder to reclaim the space.

This module also runs feature extraction on an executor (:func:`prefetch`,
:func:`feature_reader`): workers compute batches of files, write the log-mels to disk (the
cache, or a temporary folder) and return paths. numpy/scipy only; no torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from earshot._util.executors import SerialExecutor, batched, get_executor
from earshot._util.fs import atomic_file
from earshot.errors import AudioError, ParameterError
from earshot.features.config import FeatureConfig
from earshot.features.extract import file_log_mel
from earshot.features.store import FrameStore

__all__ = ["ENV", "FEATURE_VERSION", "FeatureCache", "resolve_cache", "file_digest", "prefetch", "feature_reader",
           "map_with_frames"]

log = logging.getLogger(__name__)

#: Environment variable naming the cache folder when none is given.
ENV = "EARSHOT_CACHE"
#: Bumped whenever the log-mel computation changes, so old entries are not reused.
FEATURE_VERSION = 1
#: Files per extraction task when running on an executor.
DEFAULT_BATCH = 64


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as exc:
        raise AudioError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def config_key(config: FeatureConfig, channel: int | None) -> str:
    """A short hash of what the features depend on besides the file bytes."""
    desc = {"features": config.to_dict(), "channel": channel, "version": FEATURE_VERSION}
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:16]


def _too_short(path, n_time: int, min_frames: int, config: FeatureConfig) -> AudioError:
    seconds = max(0, n_time - 1) * config.hop_length / config.sr
    return AudioError(f"{path}: too short (about {seconds:.3f} s gives {n_time} frames; at least {min_frames} are needed)")


class FeatureCache:
    """Log-mel features on disk, keyed by file content and feature configuration.

    Parameters
    ----------
    root : path-like
        The cache folder (created when first written).

    Attributes
    ----------
    hits, misses : int
        Lookups answered from disk / computed, in this process.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(os.path.abspath(os.path.expanduser(os.fspath(root))))
        if self.root.exists() and not self.root.is_dir():
            raise ParameterError(f"cache {str(self.root)!r}: expected a folder, got a file")
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r})"

    def __reduce__(self):  # workers get a fresh cache object on the same folder
        return (FeatureCache, (str(self.root),))

    def folder(self, config: FeatureConfig, channel: int | None) -> Path:
        """The folder holding one configuration's entries (with its ``config.json``)."""
        return self.root / f"v{FEATURE_VERSION}" / config_key(config, channel)

    def entry(self, digest: str, config: FeatureConfig, channel: int | None) -> Path:
        """Where the features of a file with content hash ``digest`` live."""
        return self.folder(config, channel) / digest[:2] / f"{digest}.npy"

    def _read(self, entry: Path, config: FeatureConfig) -> np.ndarray | None:
        try:
            logmel = np.load(entry, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # damaged entry: recompute it
            log.warning("cache entry %s is unreadable (%s); recomputing", entry, exc)
            return None
        if logmel.ndim != 2 or logmel.shape[0] != config.n_mels or logmel.dtype != np.float32:
            log.warning("cache entry %s has shape %s %s; recomputing", entry, logmel.shape, logmel.dtype)
            return None
        return logmel

    def _write(self, entry: Path, logmel: np.ndarray, config: FeatureConfig, channel: int | None) -> None:
        folder = entry.parent.parent
        if not (folder / "config.json").exists():
            with atomic_file(folder / "config.json", "wb", permissions=0o644) as fh:
                fh.write(json.dumps({"features": config.to_dict(), "channel": channel,
                                     "feature_version": FEATURE_VERSION}, indent=2).encode())
        with atomic_file(entry, "wb", permissions=0o644) as fh:
            np.save(fh, np.ascontiguousarray(logmel, dtype=np.float32), allow_pickle=False)

    def log_mel(self, path: str | os.PathLike, config: FeatureConfig, *, channel: int | None = None,
                min_frames: int = 1) -> np.ndarray:
        """The log-mel of ``path`` as :func:`earshot.features.extract.file_log_mel` gives it,
        from the cache when present (computed and stored otherwise).

        Returns
        -------
        np.ndarray
            ``(n_mels, n_time)``, float32.
        """
        return self.load(self.store(path, config, channel=channel, min_frames=min_frames), config,
                         path=path, min_frames=min_frames)

    def store(self, path: str | os.PathLike, config: FeatureConfig, *, channel: int | None = None,
              min_frames: int = 1) -> Path:
        """Make sure the features of ``path`` are cached; return the entry's path."""
        entry = self.entry(file_digest(path), config, channel)
        if entry.exists() and self._read(entry, config) is not None:
            self.hits += 1
            return entry
        self.misses += 1
        logmel = file_log_mel(path, config, channel=channel, min_frames=min_frames)
        self._write(entry, logmel, config, channel)
        return entry

    def load(self, entry: Path, config: FeatureConfig, *, path: Any = None, min_frames: int = 1) -> np.ndarray:
        """Read an entry written by :meth:`store` (checking ``min_frames`` as extraction does)."""
        logmel = self._read(Path(entry), config)
        if logmel is None:
            raise AudioError(f"{path or entry}: its cached features at {entry} vanished or are damaged; run again")
        if logmel.shape[1] < min_frames:
            raise _too_short(path or entry, logmel.shape[1], min_frames, config)
        return logmel


def resolve_cache(cache: str | os.PathLike | FeatureCache | bool | None) -> FeatureCache | None:
    """A :class:`FeatureCache` from a folder, an existing cache, ``None`` (``$EARSHOT_CACHE``
    when set, else no cache) or ``False`` (no cache, whatever the environment)."""
    if cache is False:
        return None
    if isinstance(cache, FeatureCache):
        return cache
    if cache is None or cache is True:
        env = os.environ.get(ENV)
        if not env:
            if cache is True:
                raise ParameterError(f"cache: no folder given and ${ENV} is not set")
            return None
        cache = env
    return FeatureCache(cache)


# ---------------------------------------------------------------------- on an executor
def _extract_batch(task: tuple) -> list[str]:
    """Worker task: cache the log-mels of a batch of files; return the entries' paths."""
    paths, config_dict, channel, min_frames, root = task
    cache = FeatureCache(root)
    config = FeatureConfig.from_dict(config_dict)
    return [str(cache.store(p, config, channel=channel, min_frames=min_frames)) for p in paths]


def prefetch(paths: Iterable[str | os.PathLike], config: FeatureConfig, *, channel: int | None = None,
             min_frames: int = 1, cache: FeatureCache, executor, batch_size: int = DEFAULT_BATCH,
             progress=None) -> dict[str, Path]:
    """Compute the log-mels of files on an executor, in batches, into ``cache``.

    Parameters
    ----------
    paths : iterable of path-like
        Audio files; repeated paths are computed once.
    cache : FeatureCache
        Where the workers write (it must be reachable by them: a local folder for local
        executors, a shared one for a remote Dask cluster).
    executor : Executor

    Returns
    -------
    dict
        ``str(path)`` -> cache entry path. The first file that fails raises its error (the
        same as extracting in order would).
    """
    unique = list(dict.fromkeys(str(p) for p in paths))
    tasks = ((batch, config.to_dict(), channel, min_frames, str(cache.root)) for batch in batched(unique, batch_size))
    entries: dict[str, Path] = {}
    for batch_entries in executor.map(_extract_batch, tasks):
        for e in batch_entries:
            entries[unique[len(entries)]] = Path(e)
        if progress is not None:
            progress("features", len(entries), len(unique))
    return entries


class _Reader:
    """``file_log_mel``'s signature over entries computed ahead by :func:`prefetch` (or a cache)."""

    def __init__(self, cache: FeatureCache | None, entries: dict[str, Path] | None, tmp=None):
        self.cache = cache
        self.entries = entries or {}
        self._tmp = tmp  # a TemporaryDirectory removed with the reader

    def __call__(self, path, config: FeatureConfig, *, channel: int | None = None, min_frames: int = 1) -> np.ndarray:
        entry = self.entries.get(str(path))
        if entry is not None:
            return self.cache.load(entry, config, path=path, min_frames=min_frames)
        if self.cache is not None:
            return self.cache.log_mel(path, config, channel=channel, min_frames=min_frames)
        return file_log_mel(path, config, channel=channel, min_frames=min_frames)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def feature_reader(items: Sequence, config: FeatureConfig, *, channel: int | None = None, min_frames: int = 1,
                   cache: str | os.PathLike | FeatureCache | bool | None = None, executor=None,
                   batch_size: int = DEFAULT_BATCH, progress=None):
    """A drop-in for :func:`earshot.features.extract.file_log_mel` over a known list of files.

    With no cache and a serial executor (the default unless ``$EARSHOT_CACHE`` /
    ``$EARSHOT_EXECUTOR`` say otherwise) this *is* ``file_log_mel``. With a cache, features come
    from it and are added to it. With a parallel executor and more than one batch of files, the
    files are extracted ahead on the executor into the cache (or a temporary folder removed
    with the reader) and read back in order.

    Parameters
    ----------
    items : sequence of path-like or (path, start, stop)
        As :func:`earshot.pipeline.extract_store` takes them.
    """
    cache = resolve_cache(cache)
    ex = get_executor(executor)
    paths = list(dict.fromkeys(str(p[0] if isinstance(p, tuple) else p) for p in items))
    if isinstance(ex, SerialExecutor) or len(paths) <= batch_size:
        if cache is None:
            return file_log_mel
        return _Reader(cache, None)
    tmp = None
    if cache is None:
        if not ex.local:
            raise ParameterError(f"--executor {ex.spec}: remote workers need a shared feature cache: "
                                 f"set --cache / ${ENV} to a folder they can all reach")
        tmp = tempfile.TemporaryDirectory(prefix="earshot-features-")
        cache = FeatureCache(tmp.name)
    try:
        whole = {str(p[0]) for p in items if isinstance(p, tuple) and p[1] is not None}
        entries = prefetch(paths, config, channel=channel, min_frames=1 if whole else min_frames, cache=cache,
                           executor=ex, batch_size=batch_size, progress=progress)
    except BaseException:
        if tmp is not None:
            tmp.cleanup()
        raise
    finally:
        if executor is None or isinstance(executor, str):
            ex.close()
    return _Reader(cache, entries, tmp)


# ---------------------------------------------------------------------- frames shared with workers
class _MappedFrames:
    """Pickles as a path: a worker reopens the spilled frames as a read-only memory map, so every
    task of a pool shares one copy in the page cache instead of receiving the array."""

    def __init__(self, folder: str):
        self.folder = folder

    def open(self):
        frames = np.load(os.path.join(self.folder, "frames.npy"), mmap_mode="r")
        offsets = np.load(os.path.join(self.folder, "offsets.npy"))
        return FrameStore(frames, offsets)


def _with_frames(task: tuple):
    fn, item, frames_arg, mapped, kwargs = task
    return fn(item, **{frames_arg: mapped.open()}, **kwargs)


def map_with_frames(executor, fn, items: Sequence, *, frames, frames_arg: str = "clips", **kwargs):
    """Run ``fn(item, **{frames_arg: frames}, **kwargs)`` for each item on a parallel executor.

    For work that needs one big :class:`~earshot.features.FrameStore` in every task (the
    clips of a cross-validation, one fold per task): the frames are written once to a
    temporary folder and each worker memory-maps them. ``fn`` must be a top-level function and
    ``kwargs`` picklable.

    Returns
    -------
    iterator or None
        The results in the order of ``items`` (the temporary folder is removed when the iterator
        is exhausted or closed); None when ``executor`` resolves to the serial executor, so the
        caller keeps its own in-process loop (with its progress callbacks).
    """
    ex = get_executor(executor)
    if isinstance(ex, SerialExecutor):
        return None
    if not ex.local:
        raise ParameterError(f"--executor {ex.spec}: cross-validation folds run on local workers only "
                             "(processes, or dask without an address)")
    owned = not hasattr(executor, "map")

    def run():
        tmp = tempfile.TemporaryDirectory(prefix="earshot-frames-")
        try:
            np.save(os.path.join(tmp.name, "frames.npy"), np.ascontiguousarray(frames.frames))
            np.save(os.path.join(tmp.name, "offsets.npy"), np.asarray(frames.offsets))
            mapped = _MappedFrames(tmp.name)
            yield from ex.map(_with_frames, ((fn, item, frames_arg, mapped, kwargs) for item in items))
        finally:
            tmp.cleanup()
            if owned:
                ex.close()

    return run()
