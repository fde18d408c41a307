"""``GET /jobs/{id}`` (and ``GET /jobs``): background job state and progress."""

from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from earshot.service.audio import ApiError
from earshot.service.deps import ServiceState, state
from earshot.service.jobs import job_dict
from earshot.service.store import Job

router = APIRouter(tags=["jobs"])


@router.get("/jobs/{job_id}")
def job(job_id: str, st: ServiceState = Depends(state)) -> dict[str, Any]:
    """A job: state (queued | running | succeeded | failed), progress 0..1, stage, result."""
    with st.store.read() as s:
        row = s.get(Job, job_id[:36])
    if row is None:
        raise ApiError(404, f"job {job_id[:64]!r} not found")
    return job_dict(row)


@router.get("/jobs")
def jobs(machine: Optional[str] = Query(None), limit: int = Query(50, ge=1, le=500),
         st: ServiceState = Depends(state)) -> dict[str, Any]:
    """Recent jobs, newest first."""
    stmt = select(Job).order_by(Job.created_at.desc()).limit(limit)
    if machine:
        stmt = stmt.where(Job.machine == machine)
    with st.store.read() as s:
        return {"jobs": [job_dict(j) for j in s.scalars(stmt)]}
