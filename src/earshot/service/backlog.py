"""Scoring the backlog: snippets stored while no model could score their machine.

A machine without a model (none set, none named like it, no default) still has its snippets
stored, unscored, to train on. Once a model scores it (its training job swapped one in, a
``PUT /machines/{machine}`` set one, or a restart loaded one) those snippets are scored in the
background, in batches of :data:`BATCH` (decoded and scored outside any transaction, written
in one short transaction per batch, so live uploads keep flowing). Their verdicts are written
with ``scored_at`` (now) and ``scored_late = true``; they do **not** feed the machine's alert
state: old audio opens no alert and posts no webhook today. The machine's last verdict (its
status) is filled in only when its newest snippet was among them.

A snippet the model cannot score (sampled below the model's rate, too short for it,
undecodable) is left unscored, counted and logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Optional

from sqlalchemy import func, select

from earshot.errors import EarshotError
from earshot.service.audio import ApiError, decode, score_audio
from earshot.service.registry import ModelEntry, ModelRegistry
from earshot.service.store import Machine, Snippet, Store, utcnow

__all__ = ["BATCH", "score_backlog", "backlog_size"]

log = logging.getLogger(__name__)

#: Snippets scored per batch (one read, one write transaction).
BATCH = 32


def _unscored(machine_id: int, min_sr: Optional[int] = None):
    cond = (Snippet.machine_id == machine_id) & Snippet.score.is_(None)
    if min_sr is not None:
        cond = cond & (Snippet.sr >= min_sr)
    return cond


def backlog_size(session, machine: Machine, entry: Optional[ModelEntry]) -> int:
    """How many of ``machine``'s unscored snippets ``entry`` could score (by sample rate); 0 without a model."""
    if entry is None:
        return 0
    return int(session.scalar(select(func.count()).select_from(Snippet)
                              .where(_unscored(machine.id, entry.bundle.features.sr))))


def score_backlog(store: Store, registry: ModelRegistry, machine: str, *, batch: int = BATCH,
                  progress: Optional[Callable[[int, int], None]] = None) -> dict[str, Any]:
    """Score ``machine``'s unscored snippets with the model that scores it now.

    Parameters
    ----------
    batch : int
        Snippets per transaction.
    progress : callable, optional
        ``progress(done, total)`` after each batch.

    Returns
    -------
    dict
        ``model`` (None when no model scores the machine), ``n_scored``, ``n_anomalous``,
        ``n_not_scorable``.
    """
    with store.read() as s:
        m = s.scalars(select(Machine).where(Machine.name == machine)).first()
        if m is None:
            return {"model": None, "n_scored": 0, "n_anomalous": 0, "n_not_scorable": 0}
        entry = registry.for_machine(m.name, m.model)
        machine_id = m.id
        total = int(s.scalar(select(func.count()).select_from(Snippet).where(_unscored(machine_id))))
    out = {"model": entry.name if entry is not None else None, "n_scored": 0, "n_anomalous": 0, "n_not_scorable": 0}
    if entry is None or total == 0:
        return out
    sr = entry.bundle.features.sr
    after = 0
    done = 0
    while True:
        with store.read() as s:
            rows = s.scalars(select(Snippet).where(_unscored(machine_id), Snippet.id > after)
                             .order_by(Snippet.id).limit(batch)).all()
        if not rows:
            break
        after = rows[-1].id
        verdicts: list[tuple[int, dict[str, Any]]] = []
        for sn in rows:
            label = f"snippet {sn.id}"
            try:
                if sn.sr < sr:
                    raise ApiError(422, f"{label}: sampled at {sn.sr} Hz, below the model's {sr} Hz")
                y = decode(store.audio_file(sn.audio_path), label=label, sr=sr, channel=entry.bundle.channel)
                verdicts.append((sn.id, score_audio(y, entry, label=label)))
            except (ApiError, EarshotError, OSError) as exc:
                out["n_not_scorable"] += 1
                log.warning("machine %s: %s left unscored by model %s: %s", machine, label, entry.name, exc)
        _write(store, machine, machine_id, verdicts, out)
        done += len(rows)
        if progress is not None:
            progress(done, total)
    if out["n_scored"] or out["n_not_scorable"]:
        log.info("machine %s: %d stored snippet(s) scored late with model %s (%d anomalous, %d not scorable)",
                 machine, out["n_scored"], entry.name, out["n_anomalous"], out["n_not_scorable"])
    return out


def _write(store: Store, machine: str, machine_id: int, verdicts: list[tuple[int, dict[str, Any]]],
           out: dict[str, Any]) -> None:
    """One transaction: the batch's verdicts, and the machine's last verdict if its newest snippet got one."""
    if not verdicts:
        return
    now = utcnow()
    with store.write() as s:
        m = store.lock_machine(s, machine)
        for snippet_id, v in verdicts:
            sn = s.get(Snippet, snippet_id)
            if sn is None or sn.score is not None:  # scored meanwhile (another backlog job)
                continue
            sn.model, sn.score, sn.threshold = v["model"], v["score"], v["threshold"]
            sn.is_anomalous = v["is_anomalous"]
            sn.scored_at, sn.scored_late = now, True
            out["n_scored"] += 1
            out["n_anomalous"] += int(v["is_anomalous"])
        if m is not None and m.last_score is None:
            newest = s.scalars(select(Snippet).where(Snippet.machine_id == machine_id)
                               .order_by(Snippet.id.desc()).limit(1)).first()
            if newest is not None and newest.score is not None:
                m.last_score, m.last_threshold = newest.score, newest.threshold
                m.last_is_anomalous = newest.is_anomalous
