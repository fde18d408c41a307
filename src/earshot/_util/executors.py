"""Where coarse tasks run: in this process, in local worker processes, or on a Dask cluster.

One small interface, three back-ends chosen by a spec string (the ``--executor`` option)::

    serial                    in this process, one task after the other
    processes                 a pool of local worker processes (the default on one machine)
    dask                      an embedded dask.distributed LocalCluster
    dask=tcp://host:8786      an existing Dask scheduler (``dask scheduler``, ``dask worker``)

:meth:`Executor.map` applies a picklable top-level function to each item of an iterable and
yields the results **in input order**, with a bounded number of tasks in flight (the iterable is
consumed lazily, so a generator over a huge folder walk is never materialised). Tasks are meant
to be coarse: a batch of files, one cross-validation fold. Work that produces big arrays writes
them to disk in the task and returns paths.

The functions given to :meth:`Executor.map` must be importable by the workers (top-level
functions of an installed module) and their results picklable. Remote Dask workers must run the
same earshot version and see the same paths (a shared filesystem).

Only the standard library is imported here; dask is imported when a Dask executor starts.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from earshot._util.cores import usable_cores
from earshot.errors import EarshotError, ParameterError

__all__ = [
    "ENV",
    "KINDS",
    "Executor",
    "SerialExecutor",
    "ProcessExecutor",
    "DaskExecutor",
    "parse_executor",
    "get_executor",
    "executor_scope",
    "default_workers",
]

log = logging.getLogger(__name__)

#: Environment variable naming the executor used when none is given (library calls, ``train``).
ENV = "EARSHOT_EXECUTOR"
#: Executor kinds accepted by :func:`parse_executor`.
KINDS = ("serial", "processes", "dask")
#: Thread-pool variables set to 1 in local worker processes (one busy thread per worker), unless
#: the user set them.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                "NUMEXPR_NUM_THREADS")
_END = object()


def default_workers() -> int:
    """CPU cores this process may use (``sched_getaffinity``), at least 1."""
    return usable_cores()


def _check_workers(workers: Any) -> int | None:
    if workers is None:
        return None
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ParameterError(f"workers: expected an integer >= 1, got {workers!r}")
    return workers


class Executor:
    """Runs ``fn(item)`` for each item somewhere; use as a context manager (``close`` on exit).

    Attributes
    ----------
    name : str
        ``serial``, ``processes`` or ``dask``.
    workers : int
        Tasks that may run at once.
    local : bool
        Whether the workers share this machine's filesystem for certain (temporary folders work).
    """

    name = "executor"
    local = True

    def __init__(self, workers: int | None = None, *, max_in_flight: int | None = None):
        self._workers = _check_workers(workers)
        self._max_in_flight = _check_workers(max_in_flight)

    @property
    def workers(self) -> int:
        return self._workers or default_workers()

    @property
    def spec(self) -> str:
        """The spec string that makes this executor again."""
        return self.name

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        """Yield ``fn(item)`` for each item, in the order of ``items``.

        At most ``max_in_flight`` (default: twice the workers) tasks are submitted ahead of the
        result being yielded, so memory stays bounded whatever the number of items. A single
        item runs in this process (starting local workers for one task costs more than it saves).
        The first task that raises makes the iteration raise the same exception; tasks not yet
        started are cancelled. (A remote Dask cluster gets even a single task.)
        """
        it = iter(items)
        first = next(it, _END)
        if first is _END:
            return
        second = next(it, _END)
        if second is _END and self.local:
            yield fn(first)
            return
        yield from self._map_many(fn, itertools.chain([first] if second is _END else [first, second], it))

    def _map_many(self, fn, items: Iterator[Any]) -> Iterator[Any]:
        raise NotImplementedError

    def _bounded(self, submit: Callable[..., Any], fn, items: Iterator[Any]) -> Iterator[Any]:
        limit = self._max_in_flight or 2 * self.workers
        pending: collections.deque = collections.deque()
        try:
            for item in items:
                pending.append(submit(fn, item))
                if len(pending) >= limit:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        """Stop the workers (idempotent)."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r}, workers={self._workers})"


class SerialExecutor(Executor):
    """Every task in this process, one after the other (debugging, tiny jobs, the reference)."""

    name = "serial"

    @property
    def workers(self) -> int:
        return 1

    def map(self, fn, items):
        for item in items:
            yield fn(item)


def _worker_init() -> None:
    """Local worker processes leave Ctrl-C to the parent (which cancels the work)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _single_threaded_env() -> Iterator[None]:
    """Set the thread-pool variables to 1 for child processes started inside the block."""
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    for k in _THREAD_VARS:
        os.environ.setdefault(k, "1")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class ProcessExecutor(Executor):
    """A pool of local worker processes (``concurrent.futures.ProcessPoolExecutor``).

    Workers are started with the ``spawn`` method (safe with the thread pools of onnxruntime,
    BLAS and torch, and the same on Linux, macOS and Windows), on the first task, with their
    BLAS/OpenMP thread pools set to one thread. Scripts that use it must guard their entry point
    with ``if __name__ == "__main__":``, as for any spawned pool.
    """

    name = "processes"

    def __init__(self, workers: int | None = None, *, max_in_flight: int | None = None):
        super().__init__(workers, max_in_flight=max_in_flight)
        self._pool = None

    def _map_many(self, fn, items):
        if self._pool is None:
            import multiprocessing  # deferred: only the processes executor needs it
            from concurrent.futures import ProcessPoolExecutor  # deferred: as above

            self._env = _single_threaded_env()
            self._env.__enter__()  # children inherit the environment when they are spawned
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_worker_init)
            log.info("started %d worker processes", self.workers)
        from concurrent.futures.process import BrokenProcessPool  # deferred: only the processes executor needs it

        try:
            yield from self._bounded(self._pool.submit, fn, items)
        except BrokenProcessPool as exc:
            raise EarshotError(f"executor processes: a worker process died ({exc}): out of memory, or a script "
                              "without an `if __name__ == '__main__':` guard?") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._env.__exit__(None, None, None)


class DaskExecutor(Executor):
    """Tasks on a Dask cluster: an embedded ``LocalCluster`` or an existing scheduler.

    Parameters
    ----------
    address : str or None
        ``tcp://host:8786`` of a running scheduler; None starts a ``LocalCluster`` of
        ``workers`` single-threaded worker processes on this machine.
    workers : int or None
        Workers of the embedded cluster (default: the CPU cores); ignored with ``address``.
    connect_timeout_s : float
        How long to try reaching the scheduler at ``address``.
    """

    name = "dask"

    def __init__(self, address: str | None = None, workers: int | None = None, *,
                 max_in_flight: int | None = None, connect_timeout_s: float = 10.0):
        super().__init__(workers, max_in_flight=max_in_flight)
        self.address = address
        self.connect_timeout_s = connect_timeout_s
        self.local = address is None
        self._client = None
        self._cluster = None

    @property
    def spec(self) -> str:
        return "dask" if self.address is None else f"dask={self.address}"

    @property
    def workers(self) -> int:
        if self.address is not None and self._client is not None:
            return max(1, sum(self._client.nthreads().values()))
        return super().workers

    @property
    def client(self):
        """The ``dask.distributed.Client`` (started on first use)."""
        if self._client is None:
            self._start()
        return self._client

    def _start(self) -> None:
        try:
            from dask.distributed import Client, LocalCluster  # deferred: dask is the optional `dask` extra
        except ImportError:
            raise ParameterError("--executor dask needs dask.distributed: pip install 'earshot[dask]'") from None
        if self.address is None:
            self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                         dashboard_address=None, silence_logs=logging.ERROR)
            self._client = Client(self._cluster)
            log.info("started a Dask LocalCluster of %d workers", self.workers)
            return
        try:
            self._client = Client(self.address, timeout=f"{self.connect_timeout_s}s")
        except (OSError, TimeoutError) as exc:
            raise ParameterError(f"--executor dask={self.address}: cannot reach the Dask scheduler ({exc})") from None
        if not self._client.nthreads():
            log.warning("the Dask scheduler at %s has no workers yet; tasks wait for one", self.address)
        log.info("connected to the Dask scheduler at %s (%d worker threads)", self.address,
                 sum(self._client.nthreads().values()))

    def _map_many(self, fn, items):
        client = self.client
        yield from self._bounded(lambda f, x: client.submit(f, x, pure=False), fn, items)

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()
            self._cluster = None


def parse_executor(spec: str) -> tuple[str, str | None]:
    """Split an executor spec into ``(kind, address)``.

    ``serial``, ``processes``, ``dask``, ``dask=tcp://host:8786`` (``dask=host:port`` means
    ``tcp://host:port``).

    Raises
    ------
    ParameterError
        Unknown kind, an address given to a kind that takes none, or a malformed address.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ParameterError(f"--executor: expected serial, processes or dask[=ADDRESS], got {spec!r}")
    kind, sep, address = spec.strip().partition("=")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise ParameterError(f"--executor: expected serial, processes or dask[=ADDRESS], got {spec!r}")
    if not sep:
        return kind, None
    if kind != "dask":
        raise ParameterError(f"--executor: {kind} takes no address, got {spec!r} (use --workers N for the pool size)")
    address = address.strip()
    if "://" not in address:
        address = f"tcp://{address}"
    scheme, _, rest = address.partition("://")
    host, colon, port = rest.rpartition(":")
    if scheme not in ("tcp", "tls", "ucx", "inproc") or not colon or not host or not port.isdigit():
        raise ParameterError(f"--executor: expected dask=tcp://HOST:PORT, got {spec!r}")
    return kind, address


def get_executor(spec: str | Executor | None = None, *, workers: int | None = None,
                 max_in_flight: int | None = None, default: str = "serial") -> Executor:
    """An executor from a spec string (see :func:`parse_executor`), an existing one, or None.

    None takes ``$EARSHOT_EXECUTOR``, else ``default``. An :class:`Executor` is returned as is.
    """
    if isinstance(spec, Executor):
        return spec
    if spec is None:
        spec = os.environ.get(ENV) or default
    kind, address = parse_executor(spec)
    if kind == "serial":
        return SerialExecutor()
    if kind == "processes":
        return ProcessExecutor(workers, max_in_flight=max_in_flight)
    return DaskExecutor(address, workers, max_in_flight=max_in_flight)


@contextlib.contextmanager
def executor_scope(spec: str | Executor | None = None, **kwargs) -> Iterator[Executor]:
    """``with executor_scope(spec) as ex``: an executor closed on exit, unless one was given."""
    given = isinstance(spec, Executor)
    ex = get_executor(spec, **kwargs)
    try:
        yield ex
    finally:
        if not given:
            ex.close()


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of ``size`` consecutive items (the last may be shorter), lazily."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ParameterError(f"batch_size: expected an integer >= 1, got {size!r}")
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch
