"""A machine's drift as a time series: one computation, stored checks, and the watcher that runs them.

:func:`check_drift` is the drift of a machine's recent window against its model's training
data (what ``GET /machines/{m}/drift`` answers): the window is the machine's last ``n``
snippets scored by its current model within the last ``days`` days; confirmed anomalies are
left out (a fault is not drift) and flagged snippets the team rejected count as evidence (see
:mod:`earshot.evaluation.drift`).

:func:`record_check` stores a result as a :class:`~earshot.service.store.DriftCheck` row and,
when the machine's drift state changes (the first drifted check after a steady one, the first
steady one after a drifted one), queues a ``drift.detected`` / ``drift.cleared`` webhook in the
outbox (a :class:`~earshot.service.store.Notification` with ``alert_id`` NULL and
``drift_check_id`` set) that :class:`~earshot.service.alerts.Notifier` delivers with retries.

:class:`DriftWatcher` runs checks in its own thread, off the request path: an upload only
drops the machine's name in a set; the thread checks a machine once ``every`` snippets newer
than its last check have been scored on arrival by its current model.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any, Optional

import numpy as np
from sqlalchemy import func, select

from earshot.errors import AudioError, EarshotError, ParameterError
from earshot.pipeline.drift import band_levels, band_reference, drift_summary
from earshot.service.audio import ApiError
from earshot.service.registry import ModelRegistry
from earshot.service.store import DriftCheck, Machine, Notification, Snippet, Store, iso, utcnow

__all__ = ["DEFAULT_ALPHA", "DEFAULT_DAYS", "DEFAULT_N", "DriftWatcher", "check_dict", "check_drift", "drift_history",
           "record_check"]

log = logging.getLogger(__name__)

#: The default window: the last ``DEFAULT_N`` snippets of the last ``DEFAULT_DAYS`` days.
DEFAULT_N = 200
DEFAULT_DAYS = 7.0
#: False drift alarm rate of one check of a steady machine.
DEFAULT_ALPHA = 0.01

#: Band references kept (one per model bundle in use): reading the training files is the slow part.
_BAND_REFS: dict[int, tuple[Any, tuple]] = {}
_BAND_REFS_LOCK = threading.Lock()


def _band_ref(bundle) -> tuple:
    with _BAND_REFS_LOCK:
        hit = _BAND_REFS.get(id(bundle))
        if hit is not None and hit[0] is bundle:
            return hit[1]
    ref = band_reference(bundle)
    with _BAND_REFS_LOCK:
        if len(_BAND_REFS) >= 16:
            _BAND_REFS.clear()
        _BAND_REFS[id(bundle)] = (bundle, ref)  # the bundle is kept so that its id is not reused
    return ref


def _window(s, m: Machine, model: str, *, n: int, days: float) -> list[Snippet]:
    since = utcnow() - dt.timedelta(days=days)
    return list(s.scalars(
        select(Snippet).where(Snippet.machine_id == m.id, Snippet.model == model, Snippet.score.is_not(None),
                              Snippet.recorded_at >= since, Snippet.label.is_distinct_from(1))
        .order_by(Snippet.recorded_at.desc(), Snippet.id.desc()).limit(n)).all())


def check_drift(store: Store, registry: ModelRegistry, machine: str, *, n: int = DEFAULT_N, days: float = DEFAULT_DAYS,
                alpha: float = DEFAULT_ALPHA, bands: bool = True) -> dict[str, Any]:
    """Drift of a machine's recent snippets against its model's training data (nothing stored).

    Parameters
    ----------
    n, days : int, float
        The window: the last ``n`` snippets scored by the machine's current model within the
        last ``days`` days (confirmed anomalies left out).
    alpha : float
        False drift alarm rate of a steady machine.
    bands : bool
        Also list the mel bands that moved most (decodes the window's audio).

    Returns
    -------
    dict
        ``machine``, ``model``, ``computed_at``, ``window`` (``n``, ``from``, ``to``, ``days``,
        ``last_snippet_id``) and the fields of :func:`earshot.pipeline.drift.drift_summary`.

    Raises
    ------
    ApiError
        404: no such machine; 409: no model scores it, fewer than 5 snippets in the window, or
        a model without reference scores.
    """
    with store.read() as s:
        m = s.scalars(select(Machine).where(Machine.name == machine)).first()
        if m is None:
            raise ApiError(404, f"machine {machine!r} not found")
        entry = registry.for_machine(m.name, m.model)
        if entry is None:
            raise ApiError(409, f"machine {machine!r} has no model to compare its snippets with")
        rows = _window(s, m, entry.name, n=n, days=days)
        window = [(r.score, r.label == 0 and bool(r.is_anomalous), r.audio_path, r.recorded_at, r.id) for r in rows]
    if len(window) < 5:
        raise ApiError(409, f"machine {machine!r}: {len(window)} snippets scored by model {entry.name!r} in the last "
                            f"{days:g} days; drift needs at least 5")
    bundle = entry.bundle
    levels = None
    if bands:
        logmels = []
        for w in window:
            try:
                logmels.append(bundle.extract(store.audio_file(w[2])))
            except (EarshotError, OSError) as exc:  # a snippet whose audio is gone: its score still counts
                log.warning("drift of %s: audio %s skipped (%s)", machine, w[2], exc)
        levels = band_levels(logmels) if logmels else None
    try:
        out = drift_summary(bundle, np.array([w[0] for w in window]), levels=levels,
                            n_rejected=sum(w[1] for w in window), alpha=alpha,
                            band_ref=_band_ref(bundle) if levels is not None else None)
    except EarshotError as exc:
        raise ApiError(409, f"machine {machine!r}: {exc}") from None
    return {"machine": machine, "model": entry.name, "computed_at": iso(utcnow()),
            "window": {"n": len(window), "from": iso(window[-1][3]), "to": iso(window[0][3]), "days": days,
                       "last_snippet_id": max(w[4] for w in window)}, **out}


def check_dict(row: DriftCheck, machine: str) -> dict[str, Any]:
    """One stored check as the API shows it (a point of the drift series)."""
    d = row.details or {}
    return {"id": row.id, "machine": machine, "model": row.model, "computed_at": iso(row.computed_at),
            "n": row.n, "window_from": iso(row.window_from), "window_to": iso(row.window_to),
            "score": row.score, "threshold": row.threshold, "drifted": bool(row.drifted),
            "n_rejected": row.n_rejected, "mean_shift": d.get("mean_shift"), "alpha": d.get("alpha"),
            "reasons": d.get("reasons", []), "bands": d.get("bands", []), "trigger": d.get("trigger")}


def _parse(t: Optional[str]) -> dt.datetime:
    return dt.datetime.fromisoformat(t.replace("Z", "+00:00")).replace(tzinfo=None) if t else utcnow()


def record_check(store: Store, result: dict[str, Any], *, trigger: str) -> tuple[dict[str, Any], Optional[str]]:
    """Store a :func:`check_drift` result; queue a webhook when the machine's drift state changed.

    Parameters
    ----------
    result : dict
        What :func:`check_drift` returned.
    trigger : str
        What asked for the check (``auto``: the watcher; ``request``: ``GET ...?record=true``).

    Returns
    -------
    (dict, str or None)
        The stored check (:func:`check_dict`) and the event queued: ``drift.detected`` (this
        check is drifted, the machine's previous one was not or there was none),
        ``drift.cleared`` (the reverse), or None (no change, or the machine has no webhook URL).
    """
    keep = ("alpha", "mean_shift", "exceed_rate_recent", "exceed_rate_reference", "rejected_p_value", "reasons",
            "n_reference", "model_threshold", "reference_source", "bands", "band_reference")
    details = {k: result.get(k) for k in keep}
    details.update(trigger=trigger, days=result["window"]["days"], last_snippet_id=result["window"]["last_snippet_id"])
    with store.write() as s:
        m = store.lock_machine(s, result["machine"])  # one check at a time per machine decides the episode
        if m is None:
            raise ApiError(404, f"machine {result['machine']!r} not found")
        previous = s.scalars(select(DriftCheck.drifted).where(DriftCheck.machine_id == m.id)
                             .order_by(DriftCheck.id.desc()).limit(1)).first()
        row = DriftCheck(machine_id=m.id, model=result["model"], computed_at=_parse(result["computed_at"]),
                         n=result["window"]["n"], window_from=_parse(result["window"]["from"]),
                         window_to=_parse(result["window"]["to"]), score=float(result["score"]),
                         threshold=float(result["threshold"]), drifted=bool(result["drifted"]),
                         n_rejected=int(result.get("n_rejected") or 0), details=details)
        s.add(row)
        s.flush()
        out = check_dict(row, m.name)
        event = None
        if row.drifted and not previous:
            event = "drift.detected"
        elif not row.drifted and previous:
            event = "drift.cleared"
        if event is not None and m.webhook_url:
            now = utcnow()
            s.add(Notification(alert_id=None, drift_check_id=row.id, event=event, url=m.webhook_url,
                               payload={"event": event, "machine": m.name, "drift_check": out,
                                        "history_url": f"/machines/{m.name}/drift/history"},
                               state="pending", attempts=0, created_at=now, next_attempt_at=now))
        elif event is not None:
            event = None
    if row.drifted:
        log.info("machine %s: drift check %d drifted (D=%.3f > %.3f)", out["machine"], out["id"], out["score"],
                 out["threshold"])
    return out, event


def drift_history(store: Store, machine: str, *, limit: int = 500) -> list[dict[str, Any]]:
    """A machine's stored checks, oldest first (the last ``limit``); 404 for an unknown machine."""
    with store.read() as s:
        m = s.scalars(select(Machine).where(Machine.name == machine)).first()
        if m is None:
            raise ApiError(404, f"machine {machine!r} not found")
        rows = s.scalars(select(DriftCheck).where(DriftCheck.machine_id == m.id)
                         .order_by(DriftCheck.id.desc()).limit(limit)).all()
        return [check_dict(r, m.name) for r in reversed(rows)]


class DriftWatcher:
    """Checks machines' drift in a background thread, every ``every`` newly scored snippets.

    Parameters
    ----------
    store, registry : Store, ModelRegistry
    notifier : object with ``wake()``, optional
        Woken when a check queued a webhook.
    every : int
        Snippets scored on arrival by the machine's current model since its last check that
        trigger the next one (0: no automatic checks).
    n, days, alpha : int, float, float
        The check's window and false alarm rate (see :func:`check_drift`).
    """

    def __init__(self, store: Store, registry: ModelRegistry, notifier=None, *, every: int = 50, n: int = DEFAULT_N,
                 days: float = DEFAULT_DAYS, alpha: float = DEFAULT_ALPHA):
        self.store, self.registry, self.notifier = store, registry, notifier
        self.every, self.n, self.days, self.alpha = int(every), n, days, alpha
        self._pending: set[str] = set()
        self._failed: dict[str, int] = {}  # machine -> newest snippet id when its check could not run
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        if self.every <= 0:
            return
        self._thread = threading.Thread(target=self._run, name="earshot-drift", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def notify(self, machine: str) -> None:
        """A snippet of ``machine`` was scored on arrival (cheap: the thread decides whether to check)."""
        if self.every <= 0:
            return
        with self._lock:
            self._pending.add(machine)
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=5.0)
            self._wake.clear()
            with self._lock:
                machines, self._pending = sorted(self._pending), set()
            for name in machines:
                if self._stop.is_set():
                    return
                try:
                    self.check_if_due(name)
                except Exception:  # one machine's failure never stops the others' checks
                    log.exception("drift check of machine %s", name)

    def due(self, machine: str) -> bool:
        """Whether ``every`` snippets newer than the machine's last check were scored on arrival by its model."""
        with self.store.read() as s:
            m = s.scalars(select(Machine).where(Machine.name == machine)).first()
            entry = self.registry.for_machine(m.name, m.model) if m is not None else None
            if entry is None:
                return False
            last = s.scalars(select(DriftCheck).where(DriftCheck.machine_id == m.id)
                             .order_by(DriftCheck.id.desc()).limit(1)).first()
            after = int((last.details or {}).get("last_snippet_id") or 0) if last is not None else 0
            after = max(after, self._failed.get(machine, 0))
            fresh = s.scalar(select(func.count()).select_from(Snippet).where(
                Snippet.machine_id == m.id, Snippet.id > after, Snippet.model == entry.name,
                Snippet.score.is_not(None), Snippet.scored_late.is_not(True)))
        return int(fresh or 0) >= self.every

    def check_if_due(self, machine: str) -> Optional[dict[str, Any]]:
        """Check and record ``machine``'s drift when :meth:`due`; return the stored check (None: not due)."""
        if not self.due(machine):
            return None
        try:
            result = check_drift(self.store, self.registry, machine, n=self.n, days=self.days, alpha=self.alpha)
        except (ApiError, AudioError, ParameterError) as exc:  # too few snippets in the window, no reference scores
            log.info("drift of machine %s not checked: %s", machine, getattr(exc, "detail", exc))
            with self.store.read() as s:  # not retried before `every` more snippets
                newest = s.scalar(select(func.max(Snippet.id)).join(Machine, Machine.id == Snippet.machine_id)
                                  .where(Machine.name == machine))
            self._failed[machine] = int(newest or 0)
            return None
        out, event = record_check(self.store, result, trigger="auto")
        if event is not None and self.notifier is not None:
            self.notifier.wake()
        return out
