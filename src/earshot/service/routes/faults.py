"""``GET /machines/{machine}/faults``: the faults the team confirmed on a machine, with counts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy import func, select

from earshot.service.audio import ApiError
from earshot.service.deps import ServiceState, machine_name, state
from earshot.service.store import Machine, Snippet, iso

router = APIRouter(tags=["machines"])


@router.get("/machines/{machine}/faults")
def machine_faults(machine: str = Depends(machine_name), st: ServiceState = Depends(state)) -> dict[str, Any]:
    """The machine's known faults: each fault label of its confirmed anomalies, how many snippets
    carry it and when it was last given, most frequent first.

    ``matching`` says whether new alerts are compared with them (at least two labelled snippets:
    the "unlike any confirmed fault" threshold is calibrated on them).
    """
    with st.store.read() as s:
        m = s.scalars(select(Machine).where(Machine.name == machine)).first()
        if m is None:
            raise ApiError(404, f"machine {machine!r} not found")
        rows = s.execute(select(Snippet.fault, func.count(), func.max(Snippet.labelled_at))
                         .where(Snippet.machine_id == m.id, Snippet.label == 1, Snippet.fault.is_not(None))
                         .group_by(Snippet.fault)).all()
    faults = sorted(({"fault": f, "n": int(n), "last_labelled_at": iso(t)} for f, n, t in rows),
                    key=lambda r: (-r["n"], r["fault"]))
    n = sum(r["n"] for r in faults)
    return {"machine": machine, "faults": faults, "n_labelled": n, "matching": n >= 2}
