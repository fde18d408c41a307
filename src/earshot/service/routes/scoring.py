"""``POST /score``: one verdict for an uploaded sound, nothing stored."""

from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile

from earshot.service.audio import ApiError, check_audio, data_url, decode, score_audio, spectrogram_png
from earshot.service.deps import ServiceState, receive_upload, require_key, state, upload_label

router = APIRouter(tags=["scoring"])


@router.post("/score", dependencies=[Depends(require_key)])
def score(
    file: UploadFile = File(..., description="A wav, flac, mp3, ogg or aiff file (checked by decoding, not by name)."),
    model: Optional[str] = Form(None, description="Model name (GET /models); default: the service's default model."),
    timeline: bool = Query(False, description="Add per-window scores binned in timeline_window_s and their events."),
    spectrogram: bool = Query(False, description="Add a log-mel spectrogram PNG as a data URL."),
    st: ServiceState = Depends(state),
) -> dict[str, Any]:
    """Score one clip: score, threshold, verdict, model, duration and optionally a timeline."""
    if model:
        entry = st.registry.get(model)
        if entry is None:
            raise ApiError(422, f"model: expected one of {', '.join(st.registry.names()) or '(no models loaded)'}, got {model!r}")
    else:
        entry = st.registry.default
        if entry is None:
            raise ApiError(422, "model: this service has no default model; name one of "
                                f"{', '.join(st.registry.names()) or '(no models loaded)'}")
    label = upload_label(file)
    tmp, _sha, _size = receive_upload(st, file)
    try:
        sr = entry.bundle.features.sr
        facts = check_audio(tmp, label=label, min_sr=sr, limits=st.settings.limits)
        y = decode(tmp, label=label, sr=sr, channel=entry.bundle.channel, limits=st.settings.limits)
    finally:
        tmp.unlink(missing_ok=True)
    out = score_audio(y, entry, label=label, timeline_window_s=st.settings.timeline_window_s if timeline else None)
    out.update(verdict="anomalous" if out["is_anomalous"] else "normal", duration_s=round(facts.duration_s, 4),
               sr=facts.sr, channels=facts.channels, format=facts.ext,
               resampled_from=facts.sr if facts.sr != sr else None)
    if spectrogram:
        out["spectrogram_png"] = data_url(spectrogram_png(y, sr))
    return out
