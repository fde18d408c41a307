"""Training from the team's labels: a supervised CNN for a machine, swapped in only when it is better.

``POST /machines/{m}/train`` with ``"model": "supervised"`` (or ``"auto"`` when the machine has
enough labels) queues a training job that runs :func:`train_supervised`:

1. The machine's labelled snippets (label 1: confirmed anomaly, label 0: normal, e.g. a
   rejected false alarm) are split **per label, by time**: the newest :data:`HOLDOUT` share of
   each label (at least :data:`MIN_HELD_OUT` of each) is held out, the older ones train. The
   candidate is judged on sounds recorded after those it learned from, as it will be used, and
   snippets of one alert (neighbours in time) do not land on both sides of a random split.
2. The candidate (:class:`earshot.detection.cnn.CNNDetector`, the model of
   ``earshot train --model cnn --labels``) trains on the training part plus, with
   ``include_unlabelled``, the unlabelled snippets the current model did not flag (as normal).
3. The held-out labelled snippets are scored by the candidate **and** by the machine's current
   model (the same snippets: those both can score); the candidate replaces the current model
   (the registry's hot swap, as the autoencoder job does) only when its held-out ROC AUC is
   strictly higher. Equal is not better. A machine without a current model takes the candidate.

The comparison (both AUCs, pAUC at FPR <= 0.1, the held-out counts, swapped or not and why) is
the job's ``result["comparison"]``. The current model may have been trained on some held-out
normal snippets (the autoencoder job trains on labelled normals): that favours the current
model, never the candidate.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import numpy as np
from sqlalchemy import func, or_, select

from earshot._util.fs import atomic_dir
from earshot.bundle import Bundle
from earshot.errors import EarshotError
from earshot.evaluation.metrics import pauc, roc_auc
from earshot.features.config import FeatureConfig
from earshot.pipeline import train
from earshot.service.audio import ApiError, decode, score_audio
from earshot.service.backlog import score_backlog
from earshot.service.progress import training_progress
from earshot.service.registry import ModelEntry, ModelRegistry
from earshot.service.store import Machine, Snippet, Store

__all__ = ["MODELS", "MIN_ANOMALIES", "MIN_NORMALS", "HOLDOUT", "MIN_HELD_OUT", "label_counts", "choose_model",
           "split_labelled", "held_out_comparison", "train_supervised", "supervised_message"]

log = logging.getLogger(__name__)

#: ``model`` of a training request: the dense autoencoder on normal snippets, the supervised CNN
#: on labelled ones, or ``auto`` (supervised when the machine has enough labels).
MODELS = ("autoencoder", "supervised", "auto")
#: Default fewest confirmed anomalies (label 1) for supervised training.
MIN_ANOMALIES = 8
#: Default fewest labelled normal snippets (label 0): the held-out comparison needs both labels.
MIN_NORMALS = 4
#: Share of each label held out (the newest).
HOLDOUT = 0.3
#: Fewest snippets of each label held out.
MIN_HELD_OUT = 2
#: CNN patch length (frames): a snippet shorter than this is not trained on.
CNN_FRAMES = 32
#: pAUC's false positive rate limit.
MAX_FPR = 0.1


def label_counts(session, machine: Machine) -> dict[str, int]:
    """``{"anomaly": n1, "normal": n0}``: the machine's labelled snippets."""
    rows = session.execute(select(Snippet.label, func.count()).where(Snippet.machine_id == machine.id,
                                                                    Snippet.label.in_((0, 1)))
                           .group_by(Snippet.label)).all()
    got = {int(k): int(n) for k, n in rows}
    return {"anomaly": got.get(1, 0), "normal": got.get(0, 0)}


def _missing(counts: dict[str, int], min_anomalies: int, min_normals: int) -> Optional[str]:
    if counts["anomaly"] >= min_anomalies and counts["normal"] >= min_normals:
        return None
    return (f"{counts['anomaly']} confirmed anomalies and {counts['normal']} snippets labelled normal; supervised "
            f"training needs at least {min_anomalies} and {min_normals}")


def choose_model(session, machine: Machine, requested: str, *, min_anomalies: int, min_normals: int) -> dict[str, Any]:
    """Resolve a training request's ``model`` into job parameters.

    Returns ``{"model": "autoencoder" | "supervised", "requested_model", "min_anomalies",
    "min_normals", "labels": counts}``; ``auto`` becomes ``supervised`` when the machine has
    enough labels of both kinds, else ``autoencoder``. Raises ``ApiError(409)`` with the counts
    when ``supervised`` was asked for without enough labels.
    """
    counts = label_counts(session, machine)
    missing = _missing(counts, min_anomalies, min_normals)
    model = requested
    if requested == "auto":
        model = "autoencoder" if missing else "supervised"
    elif requested == "supervised" and missing:
        raise ApiError(409, f"machine {machine.name!r} has {missing}")
    return {"model": model, "requested_model": requested, "min_anomalies": min_anomalies,
            "min_normals": min_normals, "labels": counts}


def split_labelled(rows: list[Snippet], holdout: float = HOLDOUT) -> tuple[list[Snippet], list[Snippet]]:
    """``(train, held_out)``: per label, the newest ``holdout`` share (at least
    :data:`MIN_HELD_OUT`, always leaving one to train) is held out; time order is
    ``(recorded_at, id)``."""
    train_part: list[Snippet] = []
    held: list[Snippet] = []
    for label in (0, 1):
        same = sorted((r for r in rows if r.label == label), key=lambda r: (r.recorded_at, r.id))
        k = min(max(MIN_HELD_OUT, math.ceil(holdout * len(same))), len(same) - 1) if same else 0
        train_part += same[: len(same) - k]
        held += same[len(same) - k:]
    return train_part, held


def _trainable(sn: Snippet, features: FeatureConfig) -> bool:
    """Long enough for a CNN patch and sampled at least at the model's rate."""
    return sn.sr >= features.sr and 1 + int(sn.duration_s * features.sr) // features.hop_length >= CNN_FRAMES


def _collect(session, machine: Machine, include_unlabelled: bool) -> tuple[list[Snippet], list[Snippet]]:
    """``(labelled, unlabelled normal)`` snippets of the machine."""
    labelled = list(session.scalars(select(Snippet).where(Snippet.machine_id == machine.id, Snippet.label.in_((0, 1)))
                                    .order_by(Snippet.id)))
    unlabelled: list[Snippet] = []
    if include_unlabelled:
        unlabelled = list(session.scalars(select(Snippet).where(
            Snippet.machine_id == machine.id, Snippet.label.is_(None),
            or_(Snippet.is_anomalous.is_(None), Snippet.is_anomalous.is_(False))).order_by(Snippet.id)))
    return labelled, unlabelled


def _scores(store: Store, entry: ModelEntry, snippets: list[Snippet]) -> dict[int, float]:
    """Snippet id -> score by ``entry``, for the snippets it can score."""
    out: dict[int, float] = {}
    sr = entry.bundle.features.sr
    for sn in snippets:
        label = f"snippet {sn.id}"
        if sn.sr < sr:
            continue
        try:
            y = decode(store.audio_file(sn.audio_path), label=label, sr=sr, channel=entry.bundle.channel)
            out[sn.id] = float(score_audio(y, entry, label=label)["score"])
        except (ApiError, EarshotError, OSError) as exc:
            log.warning("held-out %s not scored by model %s: %s", label, entry.name, exc)
    return out


def _metrics(y: np.ndarray, s: np.ndarray) -> dict[str, Any]:
    return {"auc": round(float(roc_auc(y, s)), 6), "pauc": round(float(pauc(y, s, max_fpr=MAX_FPR)), 6)}


def held_out_comparison(store: Store, held: list[Snippet], candidate: ModelEntry, current: Optional[ModelEntry]
                        ) -> dict[str, Any]:
    """Score the held-out labelled snippets with both models; decide the swap.

    Returns
    -------
    dict
        ``candidate`` and ``current`` (``model``, ``kind``, ``auc``, ``pauc``; current is None
        without a model), ``held_out`` (``anomaly``, ``normal``, ``not_scorable``), ``held_out_ids``
        (the snippets' ids), ``split``, ``max_fpr``,
        ``swapped`` and ``reason``.
    """
    cand = _scores(store, candidate, held)
    cur = _scores(store, current, held) if current is not None else cand
    both = [sn for sn in held if sn.id in cand and sn.id in cur]
    y = np.array([sn.label for sn in both], dtype=np.int64)
    out: dict[str, Any] = {
        "split": f"per label, the newest {HOLDOUT:.0%} (at least {MIN_HELD_OUT}) held out; older ones trained on",
        "held_out": {"anomaly": int(y.sum()), "normal": int(len(y) - y.sum()), "not_scorable": len(held) - len(both)},
        "held_out_ids": sorted(sn.id for sn in held),
        "max_fpr": MAX_FPR, "candidate": {"model": candidate.name, "kind": candidate.bundle.kind},
        "current": None if current is None else {"model": current.name, "kind": current.bundle.kind},
    }
    if y.size == 0 or y.min() == y.max():
        out.update(swapped=False, reason="the held-out snippets both models can score lack one label: no comparison")
        return out
    out["candidate"].update(_metrics(y, np.array([cand[sn.id] for sn in both])))
    if current is None:
        out.update(swapped=True, reason="the machine had no model")
        return out
    out["current"].update(_metrics(y, np.array([cur[sn.id] for sn in both])))
    a, b = out["candidate"]["auc"], out["current"]["auc"]
    better = a > b
    out.update(swapped=better, reason=(f"held-out AUC {a:.3f} > {b:.3f}" if better else
                                       f"held-out AUC {a:.3f} is not higher than the current model's {b:.3f}"))
    return out


def _write_manifest(path: Path, store: Store, machine: str, rows: list[tuple[Snippet, int]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "machine", "split"])
        for sn, label in rows:
            w.writerow([str(store.audio_file(sn.audio_path).resolve()), "anomaly" if label else "normal", machine, "train"])


def _install(candidate_dir: Path, out: Path) -> None:
    """Move a written bundle to ``out``, replacing what is there only once it is complete."""
    with atomic_dir(out) as tmp:
        os.rmdir(tmp)
        os.replace(candidate_dir, tmp)


def train_supervised(store: Store, registry: ModelRegistry, machine: str, params: dict[str, Any], *,
                     trained_dir: Path, device: str, update: Callable[..., None]) -> dict[str, Any]:
    """The job body: train a CNN on the machine's labelled snippets, compare on held-out ones, swap if better.

    Parameters
    ----------
    params : dict
        The job's parameters (``epochs``, ``threshold``, ``include_unlabelled``, ``n_mels``,
        ``seed``, ``min_anomalies``, ``min_normals``).
    update : callable
        ``update(**job_columns)``: progress and stage of the job.

    Returns
    -------
    dict
        ``model``, ``kind``, ``n_snippets`` and the counts trained on, ``threshold``,
        ``seconds``, ``comparison`` (:func:`held_out_comparison`).
    """
    with store.read() as s:
        m = s.scalars(select(Machine).where(Machine.name == machine)).first()
        if m is None:
            raise EarshotError(f"machine {machine!r} has no snippets")
        missing = _missing(label_counts(s, m), int(params["min_anomalies"]), int(params["min_normals"]))
        labelled, unlabelled = _collect(s, m, bool(params["include_unlabelled"]))
        current = registry.for_machine(m.name, m.model)
    if missing:
        raise EarshotError(f"machine {machine!r} has {missing}")
    features = current.bundle.features if current is not None else FeatureConfig(n_mels=params.get("n_mels") or 128)
    if params.get("n_mels"):
        features = FeatureConfig.from_dict({**features.to_dict(), "n_mels": int(params["n_mels"])})
    train_part, held = split_labelled(labelled)
    rows = [(sn, int(sn.label)) for sn in train_part] + [(sn, 0) for sn in unlabelled]
    rows = [(sn, y) for sn, y in rows if _trainable(sn, features)]
    n_anomaly = sum(y for _, y in rows)
    if n_anomaly == 0 or n_anomaly == len(rows):
        raise EarshotError(f"machine {machine!r}: no {'anomaly' if n_anomaly == 0 else 'normal'} snippet long enough "
                           f"to train on (a CNN patch is {CNN_FRAMES} frames)")
    work = Path(tempfile.mkdtemp(prefix=".supervised-", dir=trained_dir))
    try:
        manifest = work / "snippets.csv"
        _write_manifest(manifest, store, machine, rows)
        model_params = {"epochs": int(params["epochs"]), "threshold": params["threshold"], "device": device}
        started = time.perf_counter()
        result = train(manifest, work / "candidate", model="cnn", model_params=model_params, features=features,
                       group_by="none", seed=int(params.get("seed", 0)),
                       progress=training_progress(update, end=0.85, prefix="supervised "))
        update(progress=0.88, stage="scoring held-out labelled snippets")
        candidate = ModelEntry(machine, Bundle(work / "candidate"), "trained", None)
        comparison = held_out_comparison(store, held, candidate, current)
        late = {"n_scored": 0, "n_not_scorable": 0}
        if comparison["swapped"]:
            update(progress=0.96, stage="loading the new model")
            _install(work / "candidate", trained_dir / machine)
            registry.put(ModelEntry(machine, Bundle(trained_dir / machine), "trained", None))
            with store.write() as s:
                s.scalars(select(Machine).where(Machine.name == machine)).first().model = machine
            late = _score_late(store, registry, machine)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (summary,) = result.groups.values()
    log.info("machine %s: supervised candidate %s (%s)", machine,
             "swapped in" if comparison["swapped"] else "not swapped in", comparison["reason"])
    return {"model": machine if comparison["swapped"] else (current.name if current else None), "kind": "cnn",
            "trained": "supervised", "n_snippets": len(rows), "n_anomalies": n_anomaly, "n_normal": len(rows) - n_anomaly,
            "n_unlabelled": sum(1 for sn, _ in rows if sn.label is None), "threshold": summary["threshold"],
            "threshold_method": summary["threshold_method"], "threshold_source": summary["threshold_source"],
            "false_alarm_rate": summary["false_alarm_rate"], "seconds": round(time.perf_counter() - started, 2),
            "n_scored_late": late["n_scored"], "n_not_scorable": late["n_not_scorable"], "comparison": comparison}


def _score_late(store: Store, registry: ModelRegistry, machine: str) -> dict[str, Any]:
    """The machine's snippets stored unscored, scored by the model just swapped in (as the autoencoder job does)."""
    try:
        return score_backlog(store, registry, machine)
    except Exception:  # the model is in place; the next start-up scores what is left
        log.exception("machine %s: scoring its stored snippets after training failed", machine)
        return {"n_scored": 0, "n_not_scorable": 0}


def supervised_message(result: dict[str, Any]) -> str:
    """One line for the job's ``message``."""
    c = result["comparison"]
    held = c["held_out"]
    cur = c["current"]
    cand_auc = c["candidate"].get("auc")
    line = (f"supervised cnn trained on {result['n_snippets']} snippets ({result['n_anomalies']} anomalies); "
            f"held out {held['anomaly']} anomalies + {held['normal']} normal: AUC "
            f"{'n/a' if cand_auc is None else f'{cand_auc:.3f}'}")
    if cur is not None and cur.get("auc") is not None:
        line += f" vs current {cur['model']} {cur['auc']:.3f}"
    return line + ("; swapped in" if c["swapped"] else "; current model kept") + f" ({c['reason']})"
