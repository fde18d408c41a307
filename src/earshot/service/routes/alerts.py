"""``GET /alerts``."""

from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from earshot.service.alerts import alert_dict
from earshot.service.audio import ApiError
from earshot.service.deps import ServiceState, state
from earshot.service.store import Alert, Machine

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
