"""Machines: status, configuration, reported snippets (ingest and history), training jobs."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, Optional

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from earshot.detection.thresholds import ThresholdSpec
from earshot.errors import ParameterError
from earshot.service.alerts import alert_dict
from earshot.service.audio import ApiError
from earshot.service.deps import ServiceState, machine_name, require_key, state
from earshot.service.ingest import ingest_snippet, snippet_dict
from earshot.service.jobs import count_training_snippets, job_dict
from earshot.service.store import Alert, Machine, Snippet, iso, utcnow
from earshot.service.supervised import MIN_ANOMALIES, MIN_NORMALS, choose_model
from earshot.service.webhooks import WebhookError, WebhookPolicy, mask_url

router = APIRouter(tags=["machines"])


class MachineIn(BaseModel):
    """A machine's configuration (fields left out keep their value)."""

    model: Optional[str] = Field(None, description="Model that scores this machine (GET /models); null: automatic.")
    webhook_url: Optional[str] = Field(None, description="http(s) URL posted a JSON event when an alert opens or closes "
                                                        "or the machine's drift is detected or cleared.")


class TrainIn(BaseModel):
    """Training a machine's model from its stored normal snippets."""

    epochs: Optional[int] = Field(None, ge=1, le=1000, description="Training epochs (default: the server's).")
    threshold: str = Field("gamma:0.9", description="gamma:q | percentile:p | mean-std:k | max | value:x")
    include_unlabelled: bool = Field(True, description="Also use unlabelled snippets the current model did not flag.")
    min_snippets: Optional[int] = Field(None, ge=1, description="Fewest normal snippets to accept (default: the server's).")
    n_mels: Optional[int] = Field(None, ge=8, le=256, description="Mel bands (default: the current model's, else 128).")
    model: Literal["autoencoder", "supervised", "auto"] = Field(
        "autoencoder", description="autoencoder (normal snippets) | supervised (CNN on labelled snippets, swapped in "
                                   "only when better on held-out labels) | auto (supervised when the labels suffice).")
    min_anomalies: int = Field(MIN_ANOMALIES, ge=3, description="Fewest confirmed anomalies for supervised training.")
    min_normal_labels: int = Field(MIN_NORMALS, ge=3, description="Fewest snippets labelled normal for supervised training.")
    seed: int = 0
    since_days: Optional[float] = Field(None, gt=0, le=3650, description="Only snippets recorded in the last DAYS days "
                                        "(retraining on recent normal snippets after drift).")


def _status(m: Machine) -> str:
    if m.open_alert_id is not None:
        return "alert"
    if m.last_is_anomalous is None:
        return "unscored" if m.n_snippets else "no data"
    return "warning" if m.last_is_anomalous else "ok"


def shows_secrets(request: Request) -> bool:
    """True when the request carries the server's API key: only then are webhook URLs shown whole
    (without a key configured, every reader sees them masked: no credentials, no query values)."""
    if not request.app.state.earshot.settings.api_key:
        return False
    try:
        require_key(request)
    except ApiError:
        return False
    return True


def machine_dict(st: ServiceState, s, m: Machine, *, history: int, secrets: bool = False) -> dict[str, Any]:
    entry = st.registry.for_machine(m.name, m.model)
    out = {
        "name": m.name, "status": _status(m), "model": entry.name if entry else None, "model_setting": m.model,
        "webhook_url": m.webhook_url if secrets else mask_url(m.webhook_url), "created_at": iso(m.created_at), "n_snippets": m.n_snippets,
        "last_snippet_at": iso(m.last_snippet_at), "last_score": m.last_score, "threshold": m.last_threshold,
        "last_is_anomalous": m.last_is_anomalous, "open_alert": None,
    }
    if m.open_alert_id is not None:
        alert = s.get(Alert, m.open_alert_id)
        out["open_alert"] = alert_dict(alert, m.name) if alert else None
    if history:
        rows = s.execute(select(Snippet.id, Snippet.recorded_at, Snippet.score, Snippet.threshold, Snippet.is_anomalous,
                                Snippet.label, Snippet.scored_late)
                         .where(Snippet.machine_id == m.id).order_by(Snippet.id.desc()).limit(history)).all()
        out["history"] = [{"id": r.id, "t": iso(r.recorded_at), "score": r.score, "threshold": r.threshold,
                           "is_anomalous": r.is_anomalous, "label": {1: "anomaly", 0: "normal"}.get(r.label),
                           "scored_late": bool(r.scored_late)}
                          for r in reversed(rows)]
    return out


def _get_machine(s, name: str) -> Machine:
    m = s.scalars(select(Machine).where(Machine.name == name)).first()
    if m is None:
        raise ApiError(404, f"machine {name!r} not found (it appears when it reports its first snippet or is PUT)")
    return m


@router.get("/machines")
def machines(request: Request, history: int = Query(50, ge=0, le=1000, description="Last scores per machine, for plots."),
             st: ServiceState = Depends(state)) -> dict[str, Any]:
    """Every machine with its status (alert | warning | ok | unscored | no data) and score history.

    Webhook URLs are masked (credentials and query values as ``***``) unless the request
    carries the API key."""
    secrets = shows_secrets(request)
    with st.store.read() as s:
        rows = s.scalars(select(Machine).order_by(Machine.name)).all()
        return {"machines": [machine_dict(st, s, m, history=history, secrets=secrets) for m in rows]}


@router.get("/machines/{machine}")
def machine(request: Request, machine: str = Depends(machine_name), history: int = Query(200, ge=0, le=5000),
            st: ServiceState = Depends(state)) -> dict[str, Any]:
    """One machine: status, model, open alert, score history and label counts (webhook URL masked
    as in ``GET /machines``)."""
    secrets = shows_secrets(request)
    with st.store.read() as s:
        m = _get_machine(s, machine)
        out = machine_dict(st, s, m, history=history, secrets=secrets)
        counts = s.execute(select(Snippet.label, func.count()).where(Snippet.machine_id == m.id).group_by(Snippet.label)).all()
        out["labels"] = {{1: "anomaly", 0: "normal", None: "unlabelled"}[k]: n for k, n in counts}
        out["n_training_snippets"] = count_training_snippets(s, m, include_unlabelled=True)
    return out


@router.put("/machines/{machine}", dependencies=[Depends(require_key)])
def configure(body: MachineIn, machine: str = Depends(machine_name), st: ServiceState = Depends(state)) -> dict[str, Any]:
    """Create or configure a machine: which model scores it, where its alerts are posted.

    Setting a model for a machine with snippets stored unscored queues a job scoring them
    (``backlog_job``; they are marked ``scored_late`` and open no alert).
    """
    given = body.model_fields_set
    if "model" in given and body.model is not None and st.registry.get(body.model) is None:
        raise ApiError(422, f"model: expected one of {', '.join(st.registry.names()) or '(no models loaded)'}, got {body.model!r}")
    if "webhook_url" in given and body.webhook_url:
        try:  # the destination is checked again at each delivery (the name may resolve elsewhere later)
            WebhookPolicy(st.settings.webhook_allow).resolve(body.webhook_url)
        except WebhookError as exc:
            raise ApiError(422, f"webhook_url: {exc} (got {mask_url(body.webhook_url)[:100]!r})") from None
    with st.store.write() as s:
        m = st.store.lock_machine(s, machine)
        if m is None:
            m = Machine(name=machine, created_at=utcnow(), n_snippets=0, run_over=0, run_under=0)
            s.add(m)
        if "model" in given:
            m.model = body.model
        if "webhook_url" in given:
            m.webhook_url = body.webhook_url or None
        s.flush()
        out = machine_dict(st, s, m, history=0, secrets=True)
    # snippets stored while no model scored the machine are scored now, in the background
    job = st.jobs.submit_backlog(machine) if "model" in given else None
    out["backlog_job"] = {**job_dict(job), "url": f"/jobs/{job.id}"} if job is not None else None
    return out


@router.post("/machines/{machine}/snippets", dependencies=[Depends(require_key)], status_code=201,
             responses={200: {"description": "A retried upload: the snippet stored before (duplicate: true)."},
                        409: {"description": "The snippet_id was stored with other audio."}})
def post_snippet(
    response: Response,
    machine: str = Depends(machine_name),
    file: UploadFile = File(..., description="The snippet: wav or flac, checked by decoding."),
    snippet_id: Optional[str] = Form(None, description="Client-chosen id making retries idempotent (default: SHA-256 of the bytes)."),
    recorded_at: Optional[str] = Form(None, description="ISO 8601 recording time (default: when received)."),
    idempotency_key: Optional[str] = Header(None, description="Alternative to the snippet_id field."),
    st: ServiceState = Depends(state),
) -> dict[str, Any]:
    """A machine reports a snippet: scored with its model, stored durably, alert state updated."""
    out, created = ingest_snippet(st, machine, file, client_id=snippet_id or idempotency_key, recorded_at=recorded_at)
    if not created:
        response.status_code = 200
    return out


@router.get("/machines/{machine}/snippets")
def snippets(
    machine: str = Depends(machine_name),
    limit: int = Query(50, ge=1, le=500),
    before_id: Optional[int] = Query(None, ge=-(2**63), le=2**63 - 1, description="Page cursor: snippets with a smaller id (from `next`)."),
    label: Optional[str] = Query(None, description="anomaly | normal | unlabelled"),
    anomalous: Optional[bool] = Query(None, description="Only flagged (true) or unflagged (false) snippets."),
    st: ServiceState = Depends(state),
) -> dict[str, Any]:
    """A machine's snippets, newest first, one page at a time (``next`` is the following page)."""
    with st.store.read() as s:
        m = _get_machine(s, machine)
        cond = [Snippet.machine_id == m.id]
        if label is not None:
            if label not in ("anomaly", "normal", "unlabelled"):
                raise ApiError(422, f"label: expected anomaly, normal or unlabelled, got {label!r}")
            cond.append(Snippet.label.is_(None) if label == "unlabelled" else Snippet.label == (1 if label == "anomaly" else 0))
        if anomalous is not None:
            cond.append(Snippet.is_anomalous.is_(anomalous))
        total = s.scalar(select(func.count()).select_from(Snippet).where(*cond))
        page_cond = cond + ([Snippet.id < before_id] if before_id is not None else [])
        rows = s.scalars(select(Snippet).where(*page_cond).order_by(Snippet.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = None
    if more:
        extra = "".join(f"&{k}={v}" for k, v in (("label", label), ("anomalous", None if anomalous is None else str(anomalous).lower()))
                        if v is not None)
        nxt = f"/machines/{machine}/snippets?limit={limit}&before_id={rows[-1].id}{extra}"
    return {"items": [snippet_dict(r, machine) for r in rows], "total": total, "next": nxt}


@router.post("/machines/{machine}/train", dependencies=[Depends(require_key)], status_code=202)
def train(body: Optional[TrainIn] = None, machine: str = Depends(machine_name),
          st: ServiceState = Depends(state)) -> dict[str, Any]:
    """Train this machine's model from its stored normal snippets in the background (GET /jobs/{id})."""
    body = body or TrainIn()
    try:
        ThresholdSpec.parse(body.threshold)
    except ParameterError as exc:
        raise ApiError(422, f"threshold: {exc}") from None
    params = {"epochs": body.epochs or st.settings.train_epochs, "threshold": body.threshold,
              "include_unlabelled": body.include_unlabelled, "n_mels": body.n_mels, "seed": body.seed,
              "min_snippets": body.min_snippets or st.settings.train_min_snippets}
    if body.since_days is not None:
        params["since_days"] = body.since_days
        params["since"] = iso(utcnow() - dt.timedelta(days=body.since_days))
    with st.store.read() as s:  # "auto": supervised when the labels suffice; 409 when "supervised" lacks them
        params.update(choose_model(s, _get_machine(s, machine), body.model, min_anomalies=body.min_anomalies,
                                   min_normals=body.min_normal_labels))
    if params["model"] == "supervised":
        job = st.jobs.submit(machine, params)
        return {**job_dict(job), "url": f"/jobs/{job.id}"}
    with st.store.read() as s:
        m = _get_machine(s, machine)
        n = count_training_snippets(s, m, include_unlabelled=body.include_unlabelled, since=params.get("since"))
    if n < params["min_snippets"]:
        recent = f" recorded in the last {body.since_days:g} days" if body.since_days is not None else ""
        raise ApiError(409, f"machine {machine!r} has {n} normal snippets{recent}; "
                            f"at least {params['min_snippets']} are needed to train")
    job = st.jobs.submit(machine, params)
    return {**job_dict(job), "url": f"/jobs/{job.id}"}
