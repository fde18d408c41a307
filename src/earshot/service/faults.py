"""Fault labels in the service: which confirmed fault an alert's peak snippet sounds like.

The team gives a confirmed anomaly a fault type (``POST /snippets/{id}/label`` with
``{"label": "anomaly", "fault": "bearing"}``; stored in ``snippets.fault``). When an alert
opens, and when its peak snippet changes, the peak snippet is compared with the machine's
fault-labelled snippets by :class:`~earshot.evaluation.faults.FaultSignatures` on the fault
embedding of :func:`earshot.pipeline.faults.fault_embeddings` (clip statistics of the log-mel
at the scoring model's settings), standardised by the model's training files
(:func:`earshot.pipeline.faults.normal_reference`). The answer goes to ``alerts.fault``,
``fault_distance`` and ``fault_known`` (False: "unlike any confirmed fault"); it stays NULL
while the machine has fewer than two fault-labelled snippets (the "unlike" threshold is
calibrated on them, leave-one-out).

Cost, kept off the hot path: a snippet's embedding is computed once (the labelled snippets'
stored audio is decoded once per model and kept; a new anomalous snippet's from the audio
already decoded for scoring), the normal reference once per model, and the signatures are
refitted only when the machine's set of fault-labelled snippets (ids and faults) or its model
changes, by the label request that changed it (:meth:`FaultIndex.warm`), so an arriving snippet
finds them ready (after a restart, the machine's first anomalous snippet fits them). A normal
snippet, or a machine with no fault label, costs one indexed query.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from sqlalchemy import select

from earshot.errors import EarshotError
from earshot.evaluation.faults import FaultMatch, FaultSignatures
from earshot.features.extract import fused_log_mel
from earshot.pipeline.faults import fault_embeddings, normal_reference
from earshot.service.audio import ApiError, decode
from earshot.service.store import Alert, Snippet, Store

__all__ = ["FAULT_MAX_CHARS", "FaultIndex", "FaultProbe", "check_fault"]

log = logging.getLogger(__name__)

#: Longest fault label (the ``snippets.fault`` column).
FAULT_MAX_CHARS = 64
#: Embeddings of recent anomalous snippets kept for an alert whose peak is an earlier snippet.
_RECENT = 512


def check_fault(fault: Optional[str], label: Optional[str]) -> Optional[str]:
    """The fault label to store: trimmed text of 1-64 printable characters, or None.

    An empty or blank fault is no fault. Raises a 422 :class:`ApiError` for a longer one, one
    with control characters, or a fault given with a label other than ``anomaly``.
    """
    if fault is None or not fault.strip():
        return None
    text = fault.strip()
    if label != "anomaly":
        raise ApiError(422, f"fault: only a confirmed anomaly (label 'anomaly') can carry a fault, got label {label!r}")
    if len(text) > FAULT_MAX_CHARS:
        raise ApiError(422, f"fault: expected at most {FAULT_MAX_CHARS} characters, got {len(text)}")
    if not text.isprintable():
        raise ApiError(422, "fault: expected printable text (no control characters)")
    return text


@dataclass
class FaultProbe:
    """What one anomalous snippet needs to name its alert's fault inside the alert transaction.

    Built before the transaction (the signatures fitted, the snippet's embedding computed), so
    the transaction itself only matches; ``current`` is the snippet's row once it exists.
    """

    index: "FaultIndex"
    store: Store
    entry: Any
    signatures: FaultSignatures
    embedding: np.ndarray
    limits: Any
    current: Optional[Snippet] = None

    def on_peak(self, alert: Alert, peak: Snippet) -> None:
        """Store the closest confirmed fault of ``peak`` on ``alert`` (callback of ``apply_verdict``)."""
        if peak is self.current:
            emb: Optional[np.ndarray] = self.embedding
        else:  # an earlier snippet of the run that opened the alert (open_after > 1)
            emb = self.index.embedding_of(self.store, self.entry, peak.id, peak.audio_path, self.limits)
        if emb is None:
            return
        m: FaultMatch = self.signatures.match(emb[None, :])[0]
        alert.fault, alert.fault_distance, alert.fault_known = m.fault, round(m.distance, 4), m.known

    def remember(self) -> None:
        """Keep this snippet's embedding once its row exists (a later alert may make it its peak)."""
        if self.current is not None and self.current.id is not None:
            self.index.remember(self.entry, self.current.id, self.embedding)


class FaultIndex:
    """Per-process cache of fault embeddings, normal references and signatures (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._labelled: dict[tuple, np.ndarray] = {}  # (model key, snippet id) -> embedding
        self._recent: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._normal: dict[tuple, Optional[np.ndarray]] = {}
        self._signatures: dict[tuple, tuple[tuple, FaultSignatures]] = {}

    @staticmethod
    def _key(entry: Any) -> tuple:
        return (entry.name, id(entry.bundle))

    @staticmethod
    def logmel_embedding(entry: Any, y: np.ndarray) -> np.ndarray:
        """The fault embedding ``(n_stats,)`` of audio decoded at the model's rate."""
        return fault_embeddings([fused_log_mel(y, entry.bundle.features)])[0]

    def embedding_of(self, store: Store, entry: Any, snippet_id: int, audio_path: str, limits: Any, *,
                     labelled: bool = False) -> Optional[np.ndarray]:
        """A stored snippet's embedding (cached; decoded from its stored audio the first time)."""
        key = (self._key(entry), snippet_id)
        with self._lock:
            got = self._labelled.get(key)
            if got is None:
                got = self._recent.get(key)
        if got is not None:
            return got
        try:
            y = decode(store.audio_file(audio_path), label=f"snippet {snippet_id}", sr=entry.bundle.features.sr,
                       channel=entry.bundle.channel, limits=limits)
        except (ApiError, EarshotError, OSError) as exc:  # audio gone or unreadable: the snippet is left out
            log.warning("fault embedding of snippet %d skipped: %s", snippet_id, exc)
            return None
        emb = self.logmel_embedding(entry, y)
        if labelled:
            with self._lock:
                self._labelled[key] = emb
        else:
            self.remember(entry, snippet_id, emb)
        return emb

    def remember(self, entry: Any, snippet_id: int, embedding: np.ndarray) -> None:
        """Keep a new anomalous snippet's embedding (an alert may make it its peak later)."""
        with self._lock:
            self._recent[(self._key(entry), snippet_id)] = embedding
            while len(self._recent) > _RECENT:
                self._recent.popitem(last=False)

    def _reference(self, entry: Any) -> Optional[np.ndarray]:
        key = self._key(entry)
        with self._lock:
            if key in self._normal:
                return self._normal[key]
        ref = normal_reference(entry.bundle)
        with self._lock:
            self._normal[key] = ref
        return ref

    def signatures(self, store: Store, machine_id: int, entry: Any, limits: Any) -> Optional[FaultSignatures]:
        """The machine's fault signatures for ``entry``'s model, or None (fewer than two labelled snippets)."""
        with store.read() as s:
            rows = s.execute(select(Snippet.id, Snippet.fault, Snippet.audio_path)
                             .where(Snippet.machine_id == machine_id, Snippet.label == 1, Snippet.fault.is_not(None))
                             .order_by(Snippet.id)).all()
        if len(rows) < 2:
            return None
        labelled = tuple((r.id, r.fault) for r in rows)
        sig_key = (machine_id, self._key(entry))
        with self._lock:
            cached = self._signatures.get(sig_key)
        if cached is not None and cached[0] == labelled:
            return cached[1]
        embs, faults = [], []
        for r in rows:
            emb = self.embedding_of(store, entry, r.id, r.audio_path, limits, labelled=True)
            if emb is not None:
                embs.append(emb)
                faults.append(r.fault)
        if len(embs) < 2:
            return None
        sig = FaultSignatures().fit(np.stack(embs), faults, self._reference(entry))
        with self._lock:
            self._signatures[sig_key] = (labelled, sig)
        log.info("machine %d: fault signatures of %d snippets, %d faults (model %s)", machine_id, len(embs),
                 len(set(faults)), entry.name)
        return sig

    def warm(self, store: Store, machine_id: int, entry: Any, limits: Any) -> None:
        """Fit the machine's signatures now (after a fault label changed), so the next anomalous
        snippet finds them ready; a failure is logged, never raised (the label is already stored)."""
        if entry is None:
            return
        try:
            self.signatures(store, machine_id, entry, limits)
        except EarshotError as exc:
            log.warning("machine %d: fault signatures not refitted (%s)", machine_id, exc)

    def probe(self, store: Store, machine_id: Optional[int], entry: Any, verdict: Optional[dict[str, Any]],
              y: np.ndarray, limits: Any) -> Optional[FaultProbe]:
        """What an anomalous snippet needs to name its alert's fault; None for a normal one or no signatures."""
        if machine_id is None or entry is None or not verdict or not verdict.get("is_anomalous"):
            return None
        try:
            sig = self.signatures(store, machine_id, entry, limits)
            if sig is None:
                return None
            return FaultProbe(self, store, entry, sig, self.logmel_embedding(entry, y), limits)
        except EarshotError as exc:  # a fault guess never costs the snippet
            log.warning("machine %d: no fault guess (%s)", machine_id, exc)
            return None
