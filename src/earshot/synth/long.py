"""Long recordings with a fault that starts (and optionally stops) at a known time.

The whole recording is rendered at once, so the machine's normal sound is continuous across
the fault's boundaries: the fault's changes are scaled by a gate that is 0 outside
``[fault_start_s, fault_end_s)`` and 1 inside, with short raised-cosine fades inside the range.
Outside the range the samples are exactly those of the same recording without the fault.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from earshot._util.fs import atomic_file
from earshot._util.validate import check_int
from earshot.errors import ParameterError
from earshot.synth._base import name_code
from earshot.synth._dsp import fault_gate
from earshot.synth.clip import check_common, check_fault, check_machine, check_real, get_model, render
from earshot.synth.machines import MACHINES
from earshot.synth.writer import id_name, write_wav

__all__ = ["render_long", "synthesize_long", "FADE_S"]

logger = logging.getLogger(__name__)

#: Longest fade at the fault's boundaries (shorter for a short fault: a quarter of it).
FADE_S = 0.1


def render_long(
    machine: str = "fan",
    *,
    machine_id: int = 0,
    duration_s: float = 120.0,
    fault: str | None = None,
    fault_start_s: float = 60.0,
    fault_end_s: float | None = None,
    severity: float = 0.8,
    snr_db: float = 6.0,
    sr: int = 16000,
    seed: int = 0,
) -> tuple[np.ndarray, dict]:
    """Render a long recording in memory; see :func:`synthesize_long` for the parameters.

    Returns
    -------
    y : numpy.ndarray
        float32 mono samples.
    truth : dict
        The ground truth (as written to the JSON sidecar, without ``path``).
    """
    machine = check_machine(machine)
    machine_id = check_int("machine_id", machine_id, 0, 99, wording="must")
    duration_s, sr, snr_db = check_common(duration_s, sr, snr_db)
    seed = check_int("seed", seed, 0, wording="must")
    if fault is None:
        fault = MACHINES[machine].default_fault
    fault, severity = check_fault(machine, fault, severity)
    start = check_real(fault_start_s, "fault_start_s", 0.0)
    end = duration_s if fault_end_s is None else check_real(fault_end_s, "fault_end_s", 0.0)
    if start >= duration_s:
        raise ParameterError(f"fault_start_s must be < duration_s ({duration_s}); got {start}")
    if end <= start or end > duration_s:
        raise ParameterError(
            f"fault_end_s must be in (fault_start_s, duration_s] = ({start}, {duration_s}]; got {end}"
        )
    n = int(round(duration_s * sr))
    fade = min(FADE_S, (end - start) / 4.0)
    gate = fault_gate(n, sr, start, end, fade)
    model = get_model(machine, machine_id, seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, name_code(machine), machine_id, 0x10C]))
    y = render(model, fault=fault, severity=severity, domain="source", n=n, sr=sr,
               snr_db=snr_db, rng=rng, gate=gate)
    truth = {
        "machine": machine,
        "id": id_name(machine_id),
        "machine_id": machine_id,
        "fault": fault,
        "severity": severity,
        "fault_start_s": start,
        "fault_end_s": end,
        "fade_s": fade,
        "duration_s": duration_s,
        "sr": sr,
        "snr_db": snr_db,
        "seed": seed,
        "events": [{"start_s": start, "end_s": end, "fault": fault, "severity": severity}],
    }
    return y, truth


def synthesize_long(
    path: str | os.PathLike,
    *,
    machine: str = "fan",
    machine_id: int = 0,
    duration_s: float = 120.0,
    fault: str | None = None,
    fault_start_s: float = 60.0,
    fault_end_s: float | None = None,
    severity: float = 0.8,
    snr_db: float = 6.0,
    sr: int = 16000,
    seed: int = 0,
) -> dict:
    """Write one long recording whose fault starts at a known time, with its ground truth.

    Parameters
    ----------
    path : str or path-like
        The wav file to write (mono PCM_16). The ground truth goes to ``<path>.json``.
    machine : str
        Machine type, a key of :data:`~earshot.synth.MACHINES`.
    machine_id : int
        The machine's number (0-99).
    duration_s : float
        Length of the recording in seconds (at most 3600). It is rendered in memory: about
        80 bytes per sample at the peak (2 minutes at 16 kHz: ~150 MB; 10 minutes: ~0.8 GB).
    fault : str or None
        A fault type of this machine; None picks the machine's default (fan: imbalance, pump:
        cavitation, valve: sticking, slider: rattle, bearing: outer_race).
    fault_start_s, fault_end_s : float
        The fault is present in ``[fault_start_s, fault_end_s)``; ``fault_end_s=None`` means
        to the end of the recording.
    severity : float
        Fault strength in [0, 1] (0: no fault, a control recording).
    snr_db : float
        Machine sound over factory background.
    sr : int
        Sample rate.
    seed : int
        Seed of the machine and of the recording.

    Returns
    -------
    dict
        The ground truth, also written to the sidecar: ``machine``, ``id``, ``machine_id``,
        ``fault``, ``severity``, ``fault_start_s``, ``fault_end_s``, ``fade_s``,
        ``duration_s``, ``sr``, ``snr_db``, ``seed``, ``events`` (a list of
        ``{start_s, end_s, fault, severity}``) and ``path``.

    Raises
    ------
    ParameterError
        For a bad parameter (named in the message).
    """
    path = Path(path)
    if path.is_dir():
        raise ParameterError(f"path must be a file name, not a folder; got {str(path)!r}")
    y, truth = render_long(machine, machine_id=machine_id, duration_s=duration_s, fault=fault,
                           fault_start_s=fault_start_s, fault_end_s=fault_end_s,
                           severity=severity, snr_db=snr_db, sr=sr, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, y, truth["sr"])
    truth = {**truth, "path": str(path)}
    sidecar = path.with_name(path.name + ".json")
    with atomic_file(sidecar, "w", encoding="utf-8") as fh:
        json.dump(truth, fh, indent=2)
        fh.write("\n")
    logger.info("wrote %s (%s from %.1f s to %.1f s) and %s", path, truth["fault"],
                truth["fault_start_s"], truth["fault_end_s"], sidecar)
    return truth
