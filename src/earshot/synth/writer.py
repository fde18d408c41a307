"""Write a synthetic data set in the MIMII layout, with a manifest of the ground truth.

Layout::

    <out>/<machine>/id_XX/normal/NNNNNNNN.wav     mono PCM_16
    <out>/<machine>/id_XX/abnormal/NNNNNNNN.wav
    <out>/manifest.csv                            written last
    <out>/.earshot-synth.json                     marks the folder as synth output

Each clip's random generator comes from ``SeedSequence([seed, machine, id, domain, label,
index])``, so a clip's bytes do not depend on which other machines are generated with it,
nor on ``n_jobs``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
import struct
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from earshot._util.fs import atomic_file, atomic_path
from earshot._util.validate import check_int
from earshot.errors import ParameterError
from earshot.synth._base import name_code
from earshot.synth._memory import keep_freed_memory
from earshot.synth.clip import check_common, check_machine, get_model, render
from earshot.synth.machines import FAULTS

__all__ = ["synthesize", "MANIFEST_NAME", "MARKER_NAME", "MANIFEST_COLUMNS", "draw_severity"]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.csv"
MARKER_NAME = ".earshot-synth.json"
#: Columns of the manifest, in order.
MANIFEST_COLUMNS = ("path", "label", "machine", "id", "domain", "split", "fault", "severity",
                    "shift", "shift_value")
_CLIP_NAME = re.compile(r"^\d{8}\.wav$")
_TMP_NAME = re.compile(r"^\.\d{8}\.wav\.tmp")
_DOMAIN_CODE = {"source": 0, "target": 1}


def draw_severity(rng: np.random.Generator) -> float:
    """Severity of one abnormal clip: uniform in [0.1, 1], so many anomalies are subtle."""
    return float(rng.uniform(0.1, 1.0))


def id_name(machine_id: int) -> str:
    """Folder name of a machine id (MIMII style: ``id_00``, ``id_02``, ...)."""
    return f"id_{machine_id:02d}"


@dataclass(frozen=True)
class ClipJob:
    """Everything needed to render and write one clip (picklable, for worker processes)."""

    machine: str
    machine_id: int
    label: int
    domain: str
    index: int
    fault: str | None
    severity: float
    seed: int
    snr_db: float
    duration_s: float
    sr: int

    @property
    def relpath(self) -> str:
        folder = "abnormal" if self.label else "normal"
        return f"{self.machine}/{id_name(self.machine_id)}/{folder}/{self.index:08d}.wav"

    def rng(self) -> np.random.Generator:
        key = [self.seed, name_code(self.machine), self.machine_id, _DOMAIN_CODE[self.domain],
               self.label, self.index]
        return np.random.default_rng(np.random.SeedSequence(key))

    def row(self) -> dict[str, str]:
        model = get_model(self.machine, self.machine_id, self.seed)
        shift, value = model.shift_label() if self.domain == "target" else ("", "")
        return {
            "path": self.relpath,
            "label": str(self.label),
            "machine": self.machine,
            "id": id_name(self.machine_id),
            "domain": self.domain,
            "split": "",
            "fault": self.fault or "",
            "severity": f"{self.severity:.3f}" if self.label else "",
            "shift": shift,
            "shift_value": value,
        }


def plan(*, machines: Sequence[str], n_ids: int, n_normal: int, n_abnormal: int, n_target: int,
         n_target_abnormal: int, seed: int, snr_db: float, duration_s: float, sr: int) -> list[ClipJob]:
    """The list of clips to write, in manifest order."""
    jobs = []
    common = {"seed": seed, "snr_db": snr_db, "duration_s": duration_s, "sr": sr}
    for machine in machines:
        faults = FAULTS[machine]
        for k in range(n_ids):
            mid = 2 * k
            counts = (("source", n_normal, n_abnormal), ("target", n_target, n_target_abnormal))
            for domain, nn, na in counts:
                first_n = 0 if domain == "source" else n_normal
                first_a = 0 if domain == "source" else n_abnormal
                for i in range(nn):
                    jobs.append(ClipJob(machine, mid, 0, domain, first_n + i, None, 0.0, **common))
                for i in range(na):
                    idx = first_a + i
                    srng = np.random.default_rng([seed, name_code(machine), mid, _DOMAIN_CODE[domain], idx, 0x5E])
                    fault = faults[idx % len(faults)]
                    jobs.append(ClipJob(machine, mid, 1, domain, idx, fault, draw_severity(srng), **common))
    return jobs


def _to_pcm16(y: np.ndarray) -> np.ndarray:
    z = np.multiply(y, np.float32(32767.0))
    np.rint(z, out=z)
    np.clip(z, -32768.0, 32767.0, out=z)
    return z.astype(np.int16)


def _wav_header(n_samples: int, sr: int) -> bytes:
    """The canonical 44-byte header of a mono 16-bit PCM WAVE file."""
    data = 2 * n_samples
    return (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, sr, 2 * sr, 2, 16)
            + b"data" + struct.pack("<I", data))


def write_wav(path: Path, y: np.ndarray, sr: int) -> None:
    """Write mono PCM_16 atomically (:func:`~earshot._util.fs.atomic_path`: a hidden temporary name, renamed).

    The canonical 44-byte PCM header is written directly (what ``soundfile.write`` writes
    for PCM_16, at a quarter of the cost); files over 4 GB go through soundfile (RF64).
    """
    pcm = _to_pcm16(y)
    with atomic_path(path) as tmp:
        if 2 * len(pcm) + 36 < 2**32:
            with open(tmp, "wb") as fh:
                fh.write(_wav_header(len(pcm), sr))
                fh.write(pcm.astype("<i2", copy=False).tobytes())
        else:
            sf.write(str(tmp), pcm, sr, subtype="PCM_16", format="RF64")


def _run_jobs(root: str, jobs: list[ClipJob]) -> int:
    """Render and write a batch of clips (runs in a worker process or in-process)."""
    base = Path(root)
    for job in jobs:
        model = get_model(job.machine, job.machine_id, job.seed)
        y = render(model, fault=job.fault, severity=job.severity, domain=job.domain,
                   n=int(round(job.duration_s * job.sr)), sr=job.sr, snr_db=job.snr_db, rng=job.rng())
        write_wav(base / job.relpath, y, job.sr)
    return len(jobs)


def _worker_init() -> None:
    keep_freed_memory()


# ----------------------------------------------------------------------------- output folder


def _prepare(out: Path) -> None:
    """Check ``out`` may be written; clear the clips of a previous synth run there."""
    if out.exists() and not out.is_dir():
        raise ParameterError(f"out_dir must be a folder; {str(out)!r} is a file")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER_NAME).is_file():
            raise ParameterError(
                f"out_dir {str(out)!r} is not empty and is not an earshot synth output; "
                "choose a new or empty folder"
            )
        _clear_previous(out)
    out.mkdir(parents=True, exist_ok=True)


def _clear_previous(out: Path) -> None:
    """Remove the manifest and the clip files of a previous synth run (nothing else)."""
    manifest = out / MANIFEST_NAME
    if manifest.exists():
        manifest.unlink()
    removed = 0
    for folder in out.glob("*/id_*/*"):
        if folder.name not in ("normal", "abnormal") or not folder.is_dir():
            continue
        for f in folder.iterdir():
            if _CLIP_NAME.fullmatch(f.name) or _TMP_NAME.match(f.name):
                f.unlink()
                removed += 1
        for d in (folder, folder.parent, folder.parent.parent):
            try:
                d.rmdir()  # only if empty
            except OSError:
                pass
    logger.info("cleared %d clips of a previous synth run in %s", removed, out)


def _write_text_atomic(path: Path, text: str) -> None:
    with atomic_file(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


def _remove_tmp_files(out: Path, jobs: Iterable[ClipJob]) -> None:
    for folder in {(out / j.relpath).parent for j in jobs}:
        if folder.is_dir():
            for f in folder.iterdir():
                if _TMP_NAME.match(f.name):
                    f.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- the API


def synthesize(
    out_dir: str | os.PathLike,
    *,
    machines: Sequence[str] = ("fan", "pump", "valve", "slider", "bearing"),
    n_ids: int = 2,
    n_normal: int = 100,
    n_abnormal: int = 30,
    snr_db: float = 0.0,
    duration_s: float = 10.0,
    sr: int = 16000,
    seed: int = 0,
    domain_shift: bool = False,
    n_target: int | None = None,
    n_jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a synthetic data set of machine sounds with known faults (MIMII layout).

    Parameters
    ----------
    out_dir : str or path-like
        Folder to write; created if needed. A non-empty folder is refused unless it holds
        a previous synth output (whose clips and manifest are then replaced).
    machines : sequence of str
        Machine types, keys of :data:`~earshot.synth.MACHINES`.
    n_ids : int
        Machines per type (1-50), written as ``id_00``, ``id_02``, ``id_04``... like MIMII.
    n_normal, n_abnormal : int
        Normal (>= 1) and abnormal (>= 0) source-domain clips per machine id. Abnormal clips
        cycle through the machine's fault types; severities are uniform in [0.1, 1].
    snr_db : float
        Machine sound over factory background (MIMII used -6, 0 and 6 dB).
    duration_s : float
        Clip length in seconds.
    sr : int
        Sample rate.
    seed : int
        Seed of the whole data set: the machines' own parameters and every clip.
    domain_shift : bool
        Also write target-domain clips per id, recorded at another speed, load or background
        (each id has one shifted attribute, see the manifest's ``shift`` columns).
    n_target : int or None
        Target-domain normal clips per id (default: 10 % of ``n_normal``, at least 1); the
        target abnormal clips keep the source ratio (at least 1 when ``n_abnormal`` > 0).
        Only with ``domain_shift``.
    n_jobs : int
        Worker processes (1: in this process; -1: all cores). Output does not depend on it.
    progress : callable, optional
        Called as ``progress(done, total)`` after each batch of clips.

    Returns
    -------
    pathlib.Path
        Path of ``manifest.csv``: columns ``path`` (relative to ``out_dir``), ``label``
        (0/1), ``machine``, ``id``, ``domain`` (source/target), ``split`` (empty: earshot's
        default split applies), ``fault`` and ``severity`` (empty for normal clips),
        ``shift`` and ``shift_value`` (the shifted attribute of target clips).

    Raises
    ------
    ParameterError
        For a bad parameter (named in the message) or a non-empty ``out_dir`` that is not
        synth output.

    Notes
    -----
    Each wav is written under a temporary name and renamed when complete, and the manifest
    is written last, so an interrupted run leaves no half-written file and no manifest.

    Examples
    --------
    >>> import tempfile, csv
    >>> d = tempfile.mkdtemp()
    >>> m = synthesize(d, machines=["valve"], n_ids=1, n_normal=2, n_abnormal=1, duration_s=1.0)
    >>> [r["path"] for r in csv.DictReader(open(m))]
    ['valve/id_00/normal/00000000.wav', 'valve/id_00/normal/00000001.wav', 'valve/id_00/abnormal/00000000.wav']
    """
    params, n_jobs = _checked_params(machines, n_ids=n_ids, n_normal=n_normal, n_abnormal=n_abnormal,
                                     snr_db=snr_db, duration_s=duration_s, sr=sr, seed=seed,
                                     domain_shift=domain_shift, n_target=n_target, n_jobs=n_jobs, progress=progress)
    out = Path(out_dir)
    _prepare(out)

    jobs = plan(**{k: v for k, v in params.items() if k != "domain_shift"})
    marker = {
        "generator": "earshot.synth",
        "format_version": 1,
        "params": params,
    }
    _write_text_atomic(out / MARKER_NAME, json.dumps(marker, indent=2) + "\n")
    for folder in sorted({(out / j.relpath).parent for j in jobs}):
        folder.mkdir(parents=True, exist_ok=True)
    _write_clips(out, jobs, n_jobs, progress)
    return _write_manifest(out, jobs)


def _checked_params(machines: Sequence[str], *, n_ids: int, n_normal: int, n_abnormal: int, snr_db: float,
                    duration_s: float, sr: int, seed: int, domain_shift: bool, n_target: int | None, n_jobs: int,
                    progress: Callable[[int, int], None] | None) -> tuple[dict[str, Any], int]:
    """Check :func:`synthesize`'s parameters (raising :class:`ParameterError` naming the first bad one).

    Returns
    -------
    params : dict
        The checked data-set parameters, as the marker file records them (target-domain clip
        counts resolved: ``n_target``, ``n_target_abnormal``).
    n_jobs : int
    """
    if isinstance(machines, str):
        machines = [machines]
    try:
        machines = list(dict.fromkeys(machines))
    except TypeError:
        raise ParameterError(f"machines must be a list of machine types; got {machines!r}") from None
    if not machines:
        raise ParameterError("machines must name at least one machine type; got none")
    for m in machines:
        check_machine(m, "machines")
    n_ids = check_int("n_ids", n_ids, 1, 50, wording="must")
    n_normal = check_int("n_normal", n_normal, 1, wording="must")
    n_abnormal = check_int("n_abnormal", n_abnormal, 0, wording="must")
    duration_s, sr, snr_db = check_common(duration_s, sr, snr_db)
    seed = check_int("seed", seed, 0, wording="must")
    if not isinstance(domain_shift, (bool, np.bool_)):
        raise ParameterError(f"domain_shift must be True or False; got {domain_shift!r}")
    if n_target is not None:
        n_target = check_int("n_target", n_target, 0, wording="must")
        if not domain_shift:
            raise ParameterError("n_target needs domain_shift=True")
    n_jobs = check_int("n_jobs", n_jobs, -1, wording="must")
    if n_jobs == 0:
        raise ParameterError("n_jobs must be >= 1 or -1 (all cores); got 0")
    if progress is not None and not callable(progress):
        raise ParameterError(f"progress must be callable; got {progress!r}")
    if domain_shift:
        n_tn = max(1, round(0.1 * n_normal)) if n_target is None else n_target
        n_ta = max(1, round(n_tn * n_abnormal / n_normal)) if (n_abnormal and n_tn) else 0
    else:
        n_tn = n_ta = 0
    params = {"machines": machines, "n_ids": n_ids, "n_normal": n_normal,
              "n_abnormal": n_abnormal, "snr_db": snr_db, "duration_s": duration_s,
              "sr": sr, "seed": seed, "domain_shift": bool(domain_shift),
              "n_target": n_tn, "n_target_abnormal": n_ta}
    return params, n_jobs


def _write_clips(out: Path, jobs: list[ClipJob], n_jobs: int, progress: Callable[[int, int], None] | None) -> None:
    """Render and write every clip (in ``n_jobs`` worker processes); on any failure, remove the
    half-written temporary files and re-raise."""
    total = len(jobs)
    logger.info("writing %d clips to %s (n_jobs=%d)", total, out, n_jobs)
    workers = (os.cpu_count() or 1) if n_jobs == -1 else n_jobs
    try:
        if workers <= 1 or total < 8:
            step = max(1, min(64, total // 100 or 1))
            for start in range(0, total, step):
                _run_jobs(str(out), jobs[start : start + step])
                if progress is not None:
                    progress(min(start + step, total), total)
        else:
            batch = max(1, min(32, math.ceil(total / (workers * 8))))
            done = 0
            with ProcessPoolExecutor(max_workers=workers, initializer=_worker_init) as pool:
                futures = [pool.submit(_run_jobs, str(out), jobs[s : s + batch])
                           for s in range(0, total, batch)]
                try:
                    for fut in as_completed(futures):
                        done += fut.result()
                        if progress is not None:
                            progress(done, total)
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
    except BaseException:
        _remove_tmp_files(out, jobs)
        raise


def _write_manifest(out: Path, jobs: list[ClipJob]) -> Path:
    """Write ``manifest.csv`` (last: its presence marks a complete run); return its path."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for job in jobs:
        writer.writerow(job.row())
    manifest = out / MANIFEST_NAME
    _write_text_atomic(manifest, buf.getvalue())
    logger.info("wrote %d clips and %s", len(jobs), manifest)
    return manifest
