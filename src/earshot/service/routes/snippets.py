"""One stored snippet: details, human label, audio, spectrogram picture."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Annotated, Any, Literal, Optional

from fastapi import APIRouter, Depends, Path, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from earshot.service.audio import DISPLAY_SR, ApiError, decode, spectrogram_png
from earshot.service.deps import ServiceState, require_key, state
from earshot.service.faults import check_fault
from earshot.service.ingest import LABELS, snippet_dict
from earshot.service.store import Alert, Machine, Snippet, utcnow

router = APIRouter(tags=["snippets"])

#: A snippet id as SQLite stores it (signed 64 bits): larger is a 422, not a database error.
SnippetId = Annotated[int, Path(ge=-(2**63), le=2**63 - 1, description="The snippet's id.")]
#: Rendered pictures kept in memory (by the audio's sha256; a PNG is about 100 KB at most).
_PNG_CACHE: "OrderedDict[str, bytes]" = OrderedDict()
_PNG_CACHE_SIZE = 64
_png_lock = threading.Lock()

MEDIA = {"wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg", "aiff": "audio/aiff", "mp3": "audio/mpeg"}


class LabelIn(BaseModel):
    """A human verdict: ``anomaly`` confirms an alarm, ``normal`` rejects it; null clears it."""

    label: Optional[Literal["anomaly", "normal"]] = Field(..., description="anomaly (confirm) | normal (reject) | null")
    by: Optional[str] = Field(None, max_length=64, description="Who labelled it.")
    note: Optional[str] = Field(None, max_length=2000)
    fault: Optional[str] = Field(None, max_length=1000, description=(
        "With label anomaly only: the fault type (free text such as 'bearing', trimmed, at most 64 characters); "
        "alerts of the machine are then compared with its fault-labelled snippets."))


def _load(st: ServiceState, snippet_id: int) -> tuple[Snippet, str]:
    with st.store.read() as s:
        row = s.execute(select(Snippet, Machine.name).join(Machine, Machine.id == Snippet.machine_id)
                        .where(Snippet.id == snippet_id)).first()
    if row is None:
        raise ApiError(404, f"snippet {snippet_id} not found")
    return row[0], row[1]


@router.get("/snippets/{snippet_id}")
def snippet(snippet_id: SnippetId, st: ServiceState = Depends(state)) -> dict[str, Any]:
    """One snippet: times, audio facts, model, score, verdict, alert, label."""
    sn, machine = _load(st, snippet_id)
    return snippet_dict(sn, machine)


@router.post("/snippets/{snippet_id}/label", dependencies=[Depends(require_key)])
def label(snippet_id: SnippetId, body: LabelIn, st: ServiceState = Depends(state)) -> dict[str, Any]:
    """Confirm (anomaly) or reject (normal) a snippet; its alert takes the label too.

    Labels are kept for training: ``POST /machines/{machine}/train`` uses normal-labelled
    snippets and never anomaly-labelled ones. ``fault`` names the fault of a confirmed anomaly
    (422 with any other label); the body replaces the snippet's label, so a relabel without
    ``fault`` clears it.
    """
    fault = check_fault(body.fault, body.label)
    with st.store.write() as s:
        sn = s.get(Snippet, snippet_id)
        if sn is None:
            raise ApiError(404, f"snippet {snippet_id} not found")
        sn.label = None if body.label is None else LABELS[body.label]
        sn.labelled_at = utcnow() if body.label is not None else None
        sn.labelled_by, sn.note = body.by, body.note
        if sn.alert_id is not None:
            alert = s.get(Alert, sn.alert_id)
            if alert is not None:
                alert.label = {1: "confirmed", 0: "rejected"}.get(sn.label)
        changed = fault is not None or sn.fault is not None  # (before the assignment below)
        sn.fault = fault
        m = s.get(Machine, sn.machine_id)
        out = snippet_dict(sn, m.name)
        machine_id, machine, explicit = m.id, m.name, m.model
    if changed:  # the machine's fault signatures change: refit them now, not when an alert opens
        st.faults.warm(st.store, machine_id, st.registry.for_machine(machine, explicit), st.settings.limits)
    return out


@router.get("/snippets/{snippet_id}/audio")
def audio(snippet_id: SnippetId, st: ServiceState = Depends(state)) -> FileResponse:
    """The snippet's audio, as it was uploaded."""
    sn, _ = _load(st, snippet_id)
    return FileResponse(st.store.audio_file(sn.audio_path), media_type=MEDIA.get(sn.audio_format, "application/octet-stream"),
                        filename=f"snippet-{sn.id}.{sn.audio_format}")


@router.get("/snippets/{snippet_id}/spectrogram.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
def spectrogram(snippet_id: SnippetId, st: ServiceState = Depends(state)) -> Response:
    """Log-mel spectrogram of the snippet (64 mel bands at 16 kHz, 80 dB range) as PNG.

    Bounded like an upload: the stored file is checked against the decode budget before
    decoding, its channels are mixed block by block, the picture has at most 1200 columns
    from at most 2400 STFT frames, and it is rendered once per audio file (kept in memory).
    """
    sn, _ = _load(st, snippet_id)
    with _png_lock:
        png = _PNG_CACHE.get(sn.sha256)
        if png is not None:
            _PNG_CACHE.move_to_end(sn.sha256)
    if png is None:
        y = decode(st.store.audio_file(sn.audio_path), label=f"snippet {sn.id}", sr=DISPLAY_SR,
                   limits=st.settings.limits)
        png = spectrogram_png(y, DISPLAY_SR)
        del y
        with _png_lock:
            _PNG_CACHE[sn.sha256] = png
            while len(_PNG_CACHE) > _PNG_CACHE_SIZE:
                _PNG_CACHE.popitem(last=False)
    return Response(png, media_type="image/png",
                    headers={"Cache-Control": "public, max-age=86400, immutable"})
