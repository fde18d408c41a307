"""A machine's drift: its recent snippets against the training data of the model that scores it.

Computed on demand (no stored time series yet): the window is the machine's last ``n``
snippets scored by its current model within the last ``days`` days; confirmed anomalies are
left out (a fault is not drift) and flagged snippets the team rejected count as evidence
(see :mod:`earshot.evaluation.drift`).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from earshot.errors import EarshotError
from earshot.pipeline.drift import band_levels, drift_summary
from earshot.service.audio import ApiError
from earshot.service.deps import ServiceState, machine_name, state
from earshot.service.store import Machine, Snippet, iso, utcnow

router = APIRouter(tags=["machines"])

log = logging.getLogger(__name__)


def _window(s, m: Machine, model: str, *, n: int, days: float) -> list[Snippet]:
    since = utcnow() - dt.timedelta(days=days)
    return list(s.scalars(
        select(Snippet).where(Snippet.machine_id == m.id, Snippet.model == model, Snippet.score.is_not(None),
                              Snippet.recorded_at >= since, Snippet.label.is_distinct_from(1))
        .order_by(Snippet.recorded_at.desc(), Snippet.id.desc()).limit(n)).all())


@router.get("/machines/{machine}/drift")
def machine_drift(
    machine: str = Depends(machine_name),
    n: int = Query(200, ge=5, le=5000, description="Most recent snippets in the window."),
    days: float = Query(7.0, gt=0, le=3650, description="Only snippets recorded in the last DAYS days."),
    alpha: float = Query(0.01, gt=0, lt=1, description="False drift alarm rate of a steady machine."),
    bands: bool = Query(True, description="Also list the mel bands that moved most (decodes the window's audio)."),
    st: ServiceState = Depends(state),
) -> dict[str, Any]:
    """Drift of a machine's recent snippets against its model's training data.

    ``score`` is the KS statistic of the window's scores vs the model's reference normal scores,
    ``threshold`` its calibrated limit, ``drifted`` the verdict, ``bands`` what moved (Hz, dB).
    """
    with st.store.read() as s:
        m = s.scalars(select(Machine).where(Machine.name == machine)).first()
        if m is None:
            raise ApiError(404, f"machine {machine!r} not found")
        entry = st.registry.for_machine(m.name, m.model)
        if entry is None:
            raise ApiError(409, f"machine {machine!r} has no model to compare its snippets with")
        rows = _window(s, m, entry.name, n=n, days=days)
        window = [(r.score, r.label == 0 and bool(r.is_anomalous), r.audio_path, r.recorded_at) for r in rows]
    if len(window) < 5:
        raise ApiError(409, f"machine {machine!r}: {len(window)} snippets scored by model {entry.name!r} in the last "
                            f"{days:g} days; drift needs at least 5")
    bundle = entry.bundle
    levels = None
    if bands:
        logmels = []
        for _, _, rel, _ in window:
            try:
                logmels.append(bundle.extract(st.store.audio_file(rel)))
            except (EarshotError, OSError) as exc:  # a snippet whose audio is gone: its score still counts
                log.warning("drift of %s: audio %s skipped (%s)", machine, rel, exc)
        levels = band_levels(logmels) if logmels else None
    try:
        out = drift_summary(bundle, np.array([w[0] for w in window]), levels=levels,
                            n_rejected=sum(w[1] for w in window), alpha=alpha)
    except EarshotError as exc:
        raise ApiError(409, f"machine {machine!r}: {exc}") from None
    return {"machine": machine, "model": entry.name, "computed_at": iso(utcnow()),
            "window": {"n": len(window), "from": iso(window[-1][3]), "to": iso(window[0][3]), "days": days}, **out}
