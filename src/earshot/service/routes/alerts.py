"""``GET /alerts`` and ``GET /notifications`` (the webhook outbox)."""

from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Depends, Query
from sqlalchemy import or_, select
from sqlalchemy.orm import aliased

from earshot.service.alerts import alert_dict
from earshot.service.audio import ApiError
from earshot.service.deps import ServiceState, state
from earshot.service.store import Alert, DriftCheck, Machine, Notification, iso
from earshot.service.webhooks import mask_url

router = APIRouter(tags=["alerts"])


@router.get("/alerts")
def alerts(
    alert_state: Optional[str] = Query(None, alias="state", description="open | closed (default: both)"),
    machine: Optional[str] = Query(None, description="Only this machine's alerts."),
    limit: int = Query(100, ge=1, le=1000),
    st: ServiceState = Depends(state),
) -> dict[str, Any]:
    """Alerts, newest first: when they opened and closed, peak score, human label."""
    if alert_state not in (None, "open", "closed"):
        raise ApiError(422, f"state: expected open or closed, got {alert_state!r}")
    stmt = select(Alert, Machine.name).join(Machine, Machine.id == Alert.machine_id).order_by(Alert.id.desc()).limit(limit)
    if alert_state:
        stmt = stmt.where(Alert.state == alert_state)
    if machine:
        stmt = stmt.where(Machine.name == machine)
    with st.store.read() as s:
        rows = s.execute(stmt).all()
    return {"alerts": [alert_dict(a, name) for a, name in rows]}


@router.get("/notifications")
def notifications(
    notification_state: Optional[str] = Query(None, alias="state", description="pending | sent | failed (default: all)"),
    machine: Optional[str] = Query(None, description="Only this machine's notifications."),
    limit: int = Query(100, ge=1, le=1000),
    st: ServiceState = Depends(state),
) -> dict[str, Any]:
    """The webhook outbox, newest first: each delivery's state, attempts and last error.

    A failed attempt leaves its reason in ``last_error`` (a refused address, a redirect not
    followed, an HTTP status, a timeout) and the time of the next try in ``next_attempt_at``;
    URLs are masked (credentials and query values as ``***``).
    """
    if notification_state not in (None, "pending", "sent", "failed"):
        raise ApiError(422, f"state: expected pending, sent or failed, got {notification_state!r}")
    drift_machine = aliased(Machine)  # a drift notification has no alert: its machine is its drift check's
    stmt = (select(Notification, Machine.name, drift_machine.name)
            .join(Alert, Alert.id == Notification.alert_id, isouter=True)
            .join(Machine, Machine.id == Alert.machine_id, isouter=True)
            .join(DriftCheck, DriftCheck.id == Notification.drift_check_id, isouter=True)
            .join(drift_machine, drift_machine.id == DriftCheck.machine_id, isouter=True)
            .order_by(Notification.id.desc()).limit(limit))
    if notification_state:
        stmt = stmt.where(Notification.state == notification_state)
    if machine:
        stmt = stmt.where(or_(Machine.name == machine, drift_machine.name == machine))
    with st.store.read() as s:
        rows = s.execute(stmt).all()
    return {"notifications": [
        {"id": n.id, "alert_id": n.alert_id, "drift_check_id": n.drift_check_id, "machine": name or drift_name,
         "event": n.event, "url": mask_url(n.url),
         "state": n.state, "attempts": n.attempts, "created_at": iso(n.created_at),
         "next_attempt_at": iso(n.next_attempt_at) if n.state == "pending" else None, "sent_at": iso(n.sent_at),
         "last_error": n.last_error}
        for n, name, drift_name in rows]}
