"""Background jobs: train a machine's model from its stored normal snippets, then hot-swap it;
score a machine's backlog of snippets stored while no model could score them.

Jobs run one at a time in a worker thread (training uses every core; two at once would only
slow both). Their state and progress live in the ``jobs`` table, so ``GET /jobs/{id}`` works
from any worker process and after a restart (a job cut off by a restart is marked failed).
The model is written with :func:`earshot.pipeline.train` (atomic: the old model stays until
the new one is complete) into ``<data>/models/<machine>/`` and replaces the machine's model in
the registry without a restart; the same job then scores the machine's unscored snippets
(:mod:`earshot.service.backlog`). A ``score`` job does only that, queued when a model is set
for a machine with such snippets, and at start-up for every machine a model now scores.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Optional

from sqlalchemy import func, or_, select, update

from earshot.bundle import Bundle
from earshot.errors import EarshotError
from earshot.features.config import FeatureConfig
from earshot.pipeline import train
from earshot.service.backlog import backlog_size, score_backlog
from earshot.service.progress import training_progress
from earshot.service.registry import ModelEntry, ModelRegistry
from earshot.service.store import Job, Machine, Snippet, Store, iso, utcnow
from earshot.service.supervised import supervised_message, train_supervised

__all__ = ["JobRunner", "job_dict", "training_snippets", "count_training_snippets"]

log = logging.getLogger(__name__)


def job_dict(job: Job) -> dict[str, Any]:
    return {
        "id": job.id, "kind": job.kind, "machine": job.machine, "state": job.state,
        "progress": round(job.progress, 4), "stage": job.stage, "message": job.message, "params": job.params,
        "result": job.result, "created_at": iso(job.created_at), "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
    }


def _normal(machine: Machine, include_unlabelled: bool, since: Optional[str] = None):
    cond = Snippet.label == 0
    if include_unlabelled:
        cond = or_(cond, (Snippet.label.is_(None) & or_(Snippet.is_anomalous.is_(None), Snippet.is_anomalous.is_(False))))
    if since:  # ISO time (store.iso): only snippets recorded since then (retraining on recent ones)
        cond = cond & (Snippet.recorded_at >= dt.datetime.fromisoformat(since.replace("Z", "")))
    return (Snippet.machine_id == machine.id) & cond


def training_snippets(session, machine: Machine, *, include_unlabelled: bool, since: Optional[str] = None) -> list[Snippet]:
    """A machine's snippets taken as normal: labelled normal, plus (``include_unlabelled``)
    unlabelled ones its model did not flag (or that were stored unscored). Never ones labelled
    anomaly. ``since`` (ISO time): only those recorded since then."""
    return list(session.scalars(select(Snippet).where(_normal(machine, include_unlabelled, since)).order_by(Snippet.id)))


def count_training_snippets(session, machine: Machine, *, include_unlabelled: bool, since: Optional[str] = None) -> int:
    """``len(training_snippets(...))`` without loading the rows."""
    return int(session.scalar(select(func.count()).select_from(Snippet)
                              .where(_normal(machine, include_unlabelled, since))))


class JobRunner:
    """Queue and run training jobs in one worker thread."""

    def __init__(self, store: Store, registry: ModelRegistry, *, trained_dir: Path, device: str = "auto"):
        self.store = store
        self.registry = registry
        self.trained_dir = Path(trained_dir)
        self.device = device  # where training jobs run (Settings.train_device)
        self._queue: "queue.Queue[Optional[str]]" = queue.Queue()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        with self.store.write() as s:  # jobs cut off by a restart will never finish
            s.execute(update(Job).where(Job.state.in_(("queued", "running")))
                      .values(state="failed", message="the server restarted before the job finished", finished_at=utcnow()))
        with self.store.read() as s:  # machines whose unscored snippets a model loaded now can score
            names = s.scalars(select(Machine.name).where(
                select(Snippet.id).where(Snippet.machine_id == Machine.id, Snippet.score.is_(None)).exists())
                .order_by(Machine.name)).all()
        for name in names:
            self.submit_backlog(name)
        self._thread = threading.Thread(target=self._run, name="earshot-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        # A training run is not interrupted; the daemon thread ends with the process.

    def submit(self, machine: str, params: dict[str, Any], *, kind: str = "train") -> Job:
        job = Job(id=str(uuid.uuid4()), kind=kind, machine=machine, state="queued", progress=0.0, stage="queued",
                  params=params, created_at=utcnow())
        with self.store.write() as s:
            s.add(job)
        self._queue.put(job.id)
        return job

    def submit_backlog(self, machine: str) -> Optional[Job]:
        """Queue a ``score`` job for ``machine``'s unscored snippets if a model scores it now.

        Returns the job (one already queued for the machine is reused), or None when there is
        nothing its model could score.
        """
        with self.store.read() as s:
            m = s.scalars(select(Machine).where(Machine.name == machine)).first()
            if m is None or backlog_size(s, m, self.registry.for_machine(m.name, m.model)) == 0:
                return None
            queued = s.scalars(select(Job).where(Job.machine == machine, Job.kind == "score", Job.state == "queued")
                               .limit(1)).first()
        if queued is not None:
            return queued
        job = self.submit(machine, {}, kind="score")
        log.info("machine %s: scoring its unscored snippets (job %s)", machine, job.id)
        return job

    def _update(self, job_id: str, **values) -> None:
        with self.store.write() as s:
            s.execute(update(Job).where(Job.id == job_id).values(**values))

    def _run(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            with self.store.read() as s:
                job = s.get(Job, job_id)
            if job is None:
                continue
            self._update(job_id, state="running", started_at=utcnow(), stage="collecting snippets")
            try:
                if job.kind == "score":
                    result = self._score(job)
                    message = (f"{result['n_scored']} stored snippets scored late with model {result['model']}"
                               f" ({result['n_anomalous']} anomalous, {result['n_not_scorable']} not scorable)")
                elif job.params.get("model") == "supervised":  # labels: CNN, held-out comparison, swap if better
                    result = train_supervised(self.store, self.registry, job.machine, job.params,
                                              trained_dir=self.trained_dir, device=self.device,
                                              update=lambda **v: self._update(job_id, **v))
                    message = supervised_message(result)
                else:
                    result = self._train(job)
                    message = f"model {result['model']} trained on {result['n_snippets']} snippets"
                    if result["n_scored_late"] or result["n_not_scorable"]:
                        message += (f"; {result['n_scored_late']} stored snippets scored late "
                                    f"({result['n_not_scorable']} not scorable)")
            except EarshotError as exc:
                self._update(job_id, state="failed", message=str(exc), finished_at=utcnow())
            except Exception as exc:  # a job must end in a state, whatever went wrong
                log.exception("job %s failed", job_id)
                self._update(job_id, state="failed", message=f"{type(exc).__name__}: {exc}", finished_at=utcnow())
            else:
                self._update(job_id, state="succeeded", progress=1.0, stage="done", result=result, message=message,
                             finished_at=utcnow())

    def _backlog_progress(self, job_id: str, lo: float, hi: float):
        def progress(done: int, total: int) -> None:
            self._update(job_id, progress=lo + (hi - lo) * done / max(total, 1),
                         stage=f"scoring stored snippets {done}/{total}")

        return progress

    def _score(self, job: Job) -> dict[str, Any]:
        self._update(job.id, stage="scoring stored snippets")
        return score_backlog(self.store, self.registry, job.machine, progress=self._backlog_progress(job.id, 0.0, 0.99))

    def _train(self, job: Job) -> dict[str, Any]:
        import torch  # deferred: torch is needed only when the service trains

        # leave cores to the requests being scored while the model trains
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
        params = dict(job.params)
        with self.store.read() as s:
            machine = s.scalars(select(Machine).where(Machine.name == job.machine)).first()
            if machine is None:
                raise EarshotError(f"machine {job.machine!r} has no snippets")
            snippets = training_snippets(s, machine, include_unlabelled=params["include_unlabelled"],
                                         since=params.get("since"))
            current = self.registry.for_machine(machine.name, machine.model)
        if len(snippets) < params["min_snippets"]:
            raise EarshotError(f"machine {job.machine!r} has {len(snippets)} normal snippets; "
                               f"at least {params['min_snippets']} are needed to train")
        features = current.bundle.features if current is not None else FeatureConfig(n_mels=params.get("n_mels") or 128)
        if params.get("n_mels"):
            features = FeatureConfig.from_dict({**features.to_dict(), "n_mels": int(params["n_mels"])})
        progress = training_progress(lambda **v: self._update(job.id, **v), end=0.95)

        work = Path(tempfile.mkdtemp(prefix=".train-", dir=self.trained_dir))
        try:
            manifest = work / "snippets.csv"
            with open(manifest, "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(["path", "label", "machine", "split"])
                for sn in snippets:
                    w.writerow([str(self.store.audio_file(sn.audio_path).resolve()), "normal", job.machine, "train"])
            out = self.trained_dir / job.machine
            model_params = {"epochs": int(params["epochs"]), "threshold": params["threshold"], "device": self.device}
            started = time.perf_counter()
            result = train(manifest, out, model="dense-ae", model_params=model_params, features=features,
                           group_by="none", seed=int(params.get("seed", 0)), progress=progress)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self._update(job.id, progress=0.97, stage="loading the new model")
        entry = ModelEntry(job.machine, Bundle(out), "trained", None)
        self.registry.put(entry)
        with self.store.write() as s:
            m = s.scalars(select(Machine).where(Machine.name == job.machine)).first()
            m.model = job.machine
        seconds = round(time.perf_counter() - started, 2)
        # snippets stored while no model scored the machine: scored now, late, without alerts
        try:
            late = score_backlog(self.store, self.registry, job.machine,
                                 progress=self._backlog_progress(job.id, 0.97, 0.995))
        except Exception:  # the model is trained and in place; the next start-up scores what is left
            log.exception("machine %s: scoring its stored snippets after training failed", job.machine)
            late = {"n_scored": 0, "n_not_scorable": 0}
        (summary,) = result.groups.values()
        return {"model": job.machine, "n_snippets": len(snippets), "threshold": summary["threshold"],
                "threshold_method": summary["threshold_method"], "threshold_source": summary["threshold_source"],
                "false_alarm_rate": summary["false_alarm_rate"], "seconds": seconds,
                "n_scored_late": late["n_scored"], "n_not_scorable": late["n_not_scorable"]}
