"""A machine's drift: on demand (``GET /machines/{m}/drift``) and as the series of stored checks.

The computation, the stored checks and the background watcher live in
:mod:`earshot.service.drift_watch`; these routes only call them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from earshot.service.deps import ServiceState, machine_name, require_key, state
from earshot.service.drift_watch import DEFAULT_ALPHA, DEFAULT_DAYS, DEFAULT_N, check_drift, drift_history, record_check

router = APIRouter(tags=["machines"])


@router.get("/machines/{machine}/drift")
def machine_drift(
    request: Request,
    machine: str = Depends(machine_name),
    n: int = Query(DEFAULT_N, ge=5, le=5000, description="Most recent snippets in the window."),
    days: float = Query(DEFAULT_DAYS, gt=0, le=3650, description="Only snippets recorded in the last DAYS days."),
    alpha: float = Query(DEFAULT_ALPHA, gt=0, lt=1, description="False drift alarm rate of a steady machine."),
    bands: bool = Query(True, description="Also list the mel bands that moved most (decodes the window's audio)."),
    record: bool = Query(False, description="Also store the check in the machine's drift series (and notify a "
                                            "change of drift state by webhook)."),
    st: ServiceState = Depends(state),
) -> dict[str, Any]:
    """Drift of a machine's recent snippets against its model's training data.

    ``score`` is the KS statistic of the window's scores vs the model's reference normal scores,
    ``threshold`` its calibrated limit, ``drifted`` the verdict, ``bands`` what moved (Hz, dB).
    With ``record=true`` (a write: it needs the API key when the server has one) the answer also
    has ``check`` (the stored row) and ``event``.
    """
    if record:
        require_key(request)
    out = check_drift(st.store, st.registry, machine, n=n, days=days, alpha=alpha, bands=bands)
    if record:
        check, event = record_check(st.store, out, trigger="request")
        if event is not None:
            st.notifier.wake()
        out = {**out, "check": check, "event": event}
    return out


@router.get("/machines/{machine}/drift/history")
def machine_drift_history(
    machine: str = Depends(machine_name),
    limit: int = Query(500, ge=1, le=10000, description="The last LIMIT checks."),
    st: ServiceState = Depends(state),
) -> dict[str, Any]:
    """A machine's drift over time: its stored checks, oldest first (time, score, threshold,
    drifted, window size, rejected false alarms in it, the mel bands that moved)."""
    checks = drift_history(st.store, machine, limit=limit)
    return {"machine": machine, "checks": checks, "every": st.settings.drift_check_every}
