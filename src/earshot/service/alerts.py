"""Alerts: hysteresis over successive verdicts, alert rows, and webhook delivery.

One rule, timeline's event engine (:class:`~earshot.timeline.EventTracker` and its
:class:`~earshot.timeline.Hysteresis` counts), serves both the per-window timeline of a clip
and a machine's stream of snippets: an event opens after ``open_after`` consecutive anomalous
steps and closes after ``close_after`` consecutive normal ones, so one noisy verdict neither
opens nor closes it.
Webhook deliveries go through an outbox table written in the same transaction as the alert,
and a background thread posts them with retries and exponential back-off (pending ones are
resumed after a restart). Each row is tried on its own: whatever one row does (a malformed
URL, a refused address, a redirect, a timeout), the reason is recorded on that row and the
other rows are still delivered (see :mod:`earshot.service.webhooks` for the address rules).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Optional

import numpy as np
from sqlalchemy import select

from earshot.service.store import Alert, Machine, Notification, Snippet, Store, iso, utcnow
from earshot.service.webhooks import WebhookPolicy, post_json
from earshot.timeline import EventTracker, Hysteresis, WindowScore

__all__ = ["Hysteresis", "events", "apply_verdict", "alert_dict", "Notifier"]

log = logging.getLogger(__name__)

#: Longest wait between two delivery attempts (s).
MAX_BACKOFF_S = 300.0


def events(scores: Sequence[float], threshold: float, *, open_after: int = 1, close_after: int = 1
           ) -> list[tuple[int, int, int]]:
    """Events in a sequence of scores by the hysteresis rule (timeline's :class:`EventTracker`).

    Parameters
    ----------
    scores : sequence of float, shape (n,)
    threshold : float
        A step is anomalous when its score is above it.

    Returns
    -------
    list of (start, end, peak)
        Indices: the first anomalous step of the run that opened the event, one past its last
        anomalous step, and the step with the highest score.
    """
    s = np.asarray(scores, dtype=np.float64)
    # one step = one second, no minimum duration, no merging: the counts alone decide
    tracker = EventTracker(threshold=threshold, release=None, hop_s=1.0, min_duration_s=0.0, merge_gap_s=0.0,
                           open_after=open_after, close_after=close_after)
    found = []
    for i, value in enumerate(s):
        found += tracker.update(WindowScore(i, float(i), float(i + 1), float(value)))
    out: list[tuple[int, int, int]] = []
    for e in found + tracker.finish():
        start, end = int(round(e.start_s)), int(round(e.end_s))
        out.append((start, end, start + int(np.argmax(s[start:end]))))
    return out


def alert_dict(alert: Alert, machine_name: str) -> dict[str, Any]:
    return {
        "id": alert.id,
        "machine": machine_name,
        "state": alert.state,
        "opened_at": iso(alert.opened_at),
        "closed_at": iso(alert.closed_at),
        "first_snippet_id": alert.first_snippet_id,
        "close_snippet_id": alert.close_snippet_id,
        "peak_score": alert.peak_score,
        "peak_snippet_id": alert.peak_snippet_id,
        "n_anomalous": alert.n_anomalous,
        "threshold": alert.threshold,
        "model": alert.model,
        "label": alert.label,
        # the closest confirmed fault of the peak snippet (earshot.service.faults); null: none to compare with
        "fault": alert.fault,
        "fault_distance": alert.fault_distance,
        "fault_known": alert.fault_known,
    }


def apply_verdict(session, machine: Machine, snippet: Snippet, *, open_after: int, close_after: int,
                  on_peak: Optional[Callable[[Alert, Snippet], None]] = None) -> Optional[str]:
    """Update a machine's alert state with a newly stored, scored snippet (same transaction).

    Only verdicts given on arrival count: a backlog scored late (``scored_late``) is history,
    neither fed here nor counted in the run that opens an alert.

    Opens an alert (its first snippet is the first of the anomalous run) or closes the open
    one; queues a webhook notification when the machine has a URL. Returns the event.
    ``on_peak(alert, peak_snippet)`` is called when an alert opens and when its peak snippet
    changes, before the notification is written (it names the alert's closest known fault).
    """
    h = Hysteresis(active=machine.open_alert_id is not None, run_over=machine.run_over, run_under=machine.run_under)
    anomalous = bool(snippet.is_anomalous)
    what = h.step(anomalous, open_after=open_after, close_after=close_after)
    machine.run_over, machine.run_under = h.run_over, h.run_under
    now = utcnow()
    alert: Optional[Alert] = None
    if what == "open":
        run = session.scalars(
            select(Snippet).where(Snippet.machine_id == machine.id, Snippet.id < snippet.id,
                                   Snippet.is_anomalous.is_not(None), Snippet.scored_late.is_not(True))
            .order_by(Snippet.id.desc()).limit(open_after - 1)
        ).all() if open_after > 1 else []
        members = [snippet, *run]
        peak = max(members, key=lambda s: s.score)
        alert = Alert(machine_id=machine.id, state="open", opened_at=now, first_snippet_id=min(m.id for m in members),
                      peak_score=peak.score, peak_snippet_id=peak.id, n_anomalous=len(members),
                      threshold=snippet.threshold, model=snippet.model)
        session.add(alert)
        session.flush()
        machine.open_alert_id = alert.id
        for m in members:
            m.alert_id = alert.id
        if on_peak is not None:
            on_peak(alert, peak)
    elif machine.open_alert_id is not None:
        alert = session.get(Alert, machine.open_alert_id)
        if alert is not None:
            snippet.alert_id = alert.id
            if anomalous:
                alert.n_anomalous += 1
                if snippet.score is not None and snippet.score > alert.peak_score:
                    alert.peak_score, alert.peak_snippet_id = snippet.score, snippet.id
                    if on_peak is not None:
                        on_peak(alert, snippet)
            if what == "close":
                alert.state, alert.closed_at, alert.close_snippet_id = "closed", now, snippet.id
                machine.open_alert_id = None
    if what is not None and alert is not None and machine.webhook_url:
        session.add(Notification(
            alert_id=alert.id, event=f"alert.{'opened' if what == 'open' else 'closed'}", url=machine.webhook_url,
            payload={"event": f"alert.{'opened' if what == 'open' else 'closed'}", "alert": alert_dict(alert, machine.name),
                     "snippet_id": snippet.id, "score": snippet.score},
            state="pending", attempts=0, created_at=now, next_attempt_at=now,
        ))
    return what


class Notifier:
    """Delivers pending webhook notifications from the outbox in a background thread.

    Parameters
    ----------
    store : Store
    retries : int
        Attempts per notification before it is marked ``failed``.
    backoff_s : float
        Wait after the first failure; doubled after each further one (at most 300 s).
    timeout_s : float
        HTTP timeout of one attempt.
    policy : WebhookPolicy, optional
        Which non-public destinations are allowed (default: none).
    """

    def __init__(self, store: Store, *, retries: int, backoff_s: float, timeout_s: float,
                 policy: Optional[WebhookPolicy] = None):
        self.store = store
        self.policy = policy or WebhookPolicy()
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="earshot-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 1)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.deliver_due()
            except Exception:  # keep delivering whatever one bad row does
                log.exception("webhook delivery loop")
                wait = 5.0
            self._wake.wait(timeout=wait)
            self._wake.clear()

    def deliver_due(self) -> float:
        """Try every due notification once; return seconds until the next one is due (<= 5)."""
        now = utcnow()
        with self.store.read() as s:
            due = s.scalars(select(Notification).where(Notification.state == "pending", Notification.next_attempt_at <= now)
                            .order_by(Notification.id).limit(50)).all()
        for n in due:
            if self._stop.is_set():
                break
            try:
                self._attempt(n.id, n.url, n.payload)
            except Exception:  # one row's failure (even a database one) never stops the others
                log.exception("webhook notification %d", n.id)
        with self.store.read() as s:
            nxt = s.scalars(select(Notification.next_attempt_at).where(Notification.state == "pending")
                            .order_by(Notification.next_attempt_at).limit(1)).first()
        if nxt is None:
            return 5.0
        return max(0.05, min(5.0, (nxt - utcnow()).total_seconds()))

    def _attempt(self, row_id: int, url: str, payload: dict[str, Any]) -> None:
        """Post one notification and record the outcome on its row (sent, retry later, or failed)."""
        try:
            error = post_json(url, json.dumps(payload).encode(), policy=self.policy, timeout_s=self.timeout_s)
        except Exception as exc:  # post_json returns reasons; anything else is still this row's failure
            error = f"{type(exc).__name__}: {exc}"[:500]
        with self.store.write() as s:
            row = s.get(Notification, row_id)
            row.attempts += 1
            if error is None:
                row.state, row.sent_at, row.last_error = "sent", utcnow(), None
                log.info("webhook %s (notification %d) delivered", row.event, row.id)
                return
            row.last_error = error
            if row.attempts >= self.retries:
                row.state = "failed"
                log.warning("webhook %s (notification %d) failed after %d attempts: %s", row.event, row.id,
                            row.attempts, error)
            else:
                delay = min(MAX_BACKOFF_S, self.backoff_s * 2 ** (row.attempts - 1))
                row.next_attempt_at = utcnow() + timedelta(seconds=delay)
