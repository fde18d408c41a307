"""A machine reports a snippet: check, score, store durably, update its alert state.

Idempotent: the client names each snippet (``snippet_id``, or the ``Idempotency-Key``
header; by default the SHA-256 of its bytes). A retried upload with the same id and bytes is
answered with the stored snippet (``duplicate: true``, 200) and stored once; the same id with
other bytes is a conflict (409).

A snippet of a machine that no model scores yet is stored unscored; once a model scores the
machine (trained, set with ``PUT``, or loaded at start-up) :mod:`earshot.service.backlog`
scores it late (``scored_late: true``), without feeding the alert state.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any, Optional

from fastapi import UploadFile
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from earshot.service.alerts import apply_verdict
from earshot.service.audio import DISPLAY_SR, ApiError, check_audio, decode, score_audio
from earshot.service.deps import ServiceState, receive_upload, upload_label
from earshot.service.faults import FaultProbe
from earshot.service.store import Machine, Snippet, iso, utcnow

__all__ = ["ingest_snippet", "snippet_dict", "parse_time", "check_client_id"]

log = logging.getLogger(__name__)

CLIENT_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
LABELS = {"anomaly": 1, "normal": 0}
LABEL_NAMES = {1: "anomaly", 0: "normal", None: None}


def snippet_dict(sn: Snippet, machine: str) -> dict[str, Any]:
    return {
        "id": sn.id, "machine": machine, "snippet_id": sn.client_id, "recorded_at": iso(sn.recorded_at),
        "received_at": iso(sn.received_at), "duration_s": round(sn.duration_s, 4), "sr": sn.sr,
        "channels": sn.channels, "format": sn.audio_format, "size_bytes": sn.size_bytes, "sha256": sn.sha256,
        "model": sn.model, "score": sn.score, "threshold": sn.threshold, "is_anomalous": sn.is_anomalous,
        "scored_at": iso(sn.scored_at), "scored_late": bool(sn.scored_late),
        "alert_id": sn.alert_id, "label": LABEL_NAMES[sn.label], "labelled_at": iso(sn.labelled_at),
        "labelled_by": sn.labelled_by, "note": sn.note, "fault": sn.fault,
        "audio_url": f"/snippets/{sn.id}/audio", "spectrogram_url": f"/snippets/{sn.id}/spectrogram.png",
    }


def check_client_id(value: str) -> str:
    if not isinstance(value, str) or not CLIENT_ID_RE.fullmatch(value):
        raise ApiError(422, f"snippet_id: expected 1-128 letters, digits, '.', '_', ':' or '-', got {value[:140]!r}")
    return value


def parse_time(value: Optional[str], what: str = "recorded_at") -> Optional[dt.datetime]:
    """ISO 8601 (``2024-05-01T12:00:00Z``; no zone means UTC) -> naive UTC."""
    if value is None or value == "":
        return None
    try:
        t = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ApiError(422, f"{what}: expected an ISO 8601 time such as 2024-05-01T12:00:00Z, got {value[:64]!r}") from None
    if t.tzinfo is not None:
        t = t.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return t


def _existing(st: ServiceState, machine: str, client_id: str) -> Optional[Snippet]:
    with st.store.read() as s:
        return s.scalars(select(Snippet).join(Machine, Machine.id == Snippet.machine_id)
                         .where(Machine.name == machine, Snippet.client_id == client_id)).first()


def _duplicate(existing: Snippet, sha: str, machine: str, client_id: str) -> dict[str, Any]:
    if existing.sha256 != sha:
        raise ApiError(409, f"snippet_id {client_id!r} of machine {machine!r} was already stored with other audio "
                            f"(sha256 {existing.sha256[:12]}..., this upload {sha[:12]}...)")
    return {**snippet_dict(existing, machine), "duplicate": True, "alert_event": None}


def ingest_snippet(st: ServiceState, machine: str, file: UploadFile, *, client_id: Optional[str],
                   recorded_at: Optional[str]) -> tuple[dict[str, Any], bool]:
    """Store one reported snippet; return ``(snippet, created)``.

    The answer is given only after the audio file and the row are durably on disk.
    """
    label = upload_label(file)
    when = parse_time(recorded_at)
    tmp, sha, size = receive_upload(st, file)
    try:
        cid = check_client_id(client_id) if client_id else f"sha256-{sha}"
        existing = _existing(st, machine, cid)
        if existing is not None:
            return _duplicate(existing, sha, machine, cid), False
        with st.store.read() as s:
            row = s.scalars(select(Machine).where(Machine.name == machine)).first()
            explicit = row.model if row is not None else None
            machine_id = row.id if row is not None else None
        entry = st.registry.for_machine(machine, explicit)
        sr = entry.bundle.features.sr if entry is not None else DISPLAY_SR
        facts = check_audio(tmp, label=label, min_sr=sr, limits=st.settings.limits)
        y = decode(tmp, label=label, sr=sr, channel=entry.bundle.channel if entry is not None else None,
                   limits=st.settings.limits)
        verdict = score_audio(y, entry, label=label) if entry is not None else None
        probe = st.faults.probe(st.store, machine_id, entry, verdict, y, st.settings.limits)  # None unless anomalous
        rel = st.store.keep_audio(tmp, sha, facts.ext)
        tmp = None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)

    for attempt in range(2):
        try:
            out = _commit(st, machine, cid, when, sha, rel, size, facts, verdict, probe)
            break
        except IntegrityError:  # the same snippet_id (or a new machine) arrived twice at once
            existing = _existing(st, machine, cid)
            if existing is not None:
                return _duplicate(existing, sha, machine, cid), False
            if attempt:
                raise
    if probe is not None:
        probe.remember()
    if out["alert_event"] is not None:
        log.info("machine %s: alert %s (snippet %d, score %.4g)", machine, out["alert_event"], out["id"], out["score"])
        st.notifier.wake()
    if verdict is not None and st.drift is not None:
        st.drift.notify(machine)  # its thread decides whether a drift check is due
    return out, True


def _commit(st: ServiceState, machine: str, cid: str, when, sha: str, rel: str, size: int, facts, verdict,
            probe: Optional[FaultProbe] = None) -> dict[str, Any]:
    """One transaction: the machine (created on first report), the snippet row, the alert state."""
    now = utcnow()
    with st.store.write() as s:
        m = st.store.lock_machine(s, machine)
        if m is None:
            m = Machine(name=machine, created_at=now, n_snippets=0, run_over=0, run_under=0)
            s.add(m)
            s.flush()
        sn = Snippet(machine_id=m.id, client_id=cid, recorded_at=when or now, received_at=now, sha256=sha,
                     audio_path=rel, audio_format=facts.ext, size_bytes=size, sr=facts.sr,
                     channels=facts.channels, duration_s=facts.duration_s)
        if verdict is not None:
            sn.model, sn.score, sn.threshold = verdict["model"], verdict["score"], verdict["threshold"]
            sn.is_anomalous = verdict["is_anomalous"]
            sn.scored_at, sn.scored_late = now, False
        s.add(sn)
        s.flush()
        if probe is not None:
            probe.current = sn
        m.n_snippets = (m.n_snippets or 0) + 1
        m.last_snippet_at = sn.recorded_at
        m.last_score, m.last_threshold, m.last_is_anomalous = sn.score, sn.threshold, sn.is_anomalous
        event = None
        if verdict is not None:
            event = apply_verdict(s, m, sn, open_after=st.settings.alert_open_after,
                                  close_after=st.settings.alert_close_after,
                                  on_peak=probe.on_peak if probe is not None else None)
        return {**snippet_dict(sn, machine), "duplicate": False, "alert_event": event}
