"""Render one clip: a machine's sound, a fault if any, and the factory background at an SNR.

:func:`render_clip` is the single-clip primitive used by the data-set writer, the long
recordings and the tests. Levels: the background is set relative to the *normal* sound of the
machine (its RMS measured once per machine on a reference clip, :func:`reference_rms`), so a
fault adds energy instead of being renormalised away, and the whole clip is scaled by a gain
that depends only on the machine and the SNR (about -28 dBFS RMS for a normal clip).
"""

from __future__ import annotations

import logging
import math
from functools import lru_cache
from numbers import Real

import numpy as np

from earshot._util.validate import check_int
from earshot.errors import ParameterError
from earshot.synth._base import MachineModel, name_code
from earshot.synth._dsp import Canvas
from earshot.synth.faults import machine_fault
from earshot.synth.machines import FAULTS, MACHINES

__all__ = ["render_clip", "get_model", "reference_rms", "DOMAINS"]

logger = logging.getLogger(__name__)

#: Accepted values of ``domain``.
DOMAINS = ("source", "target")
#: RMS of a normal clip in the written files (-28 dBFS): headroom for clicks, impacts, faults.
OUTPUT_RMS = 10.0 ** (-28.0 / 20.0)
#: Length of the clip on which each machine's normal RMS is measured.
REFERENCE_S = 10.0
#: Longest clip or long recording (s); everything is rendered in memory.
MAX_DURATION_S = 3600.0
#: Number of independent random streams one clip uses (see :func:`_streams`).
N_STREAMS = 7


@lru_cache(maxsize=512)
def get_model(machine: str, machine_id: int, seed: int) -> MachineModel:
    """The (cached) sound model of one machine: type, id and data-set seed."""
    return MACHINES[machine](machine_id, seed=seed)


def _streams(rng: np.random.Generator) -> list[np.random.Generator]:
    """Independent generators for the stages of one clip, all derived from ``rng``.

    Order: clip parameters, kinematics, machine sound, background, fault, canvas noise,
    fault canvas noise. Each stage draws from its own stream, so adding a fault leaves the
    normal sound unchanged.
    """
    seeds = rng.integers(0, 2**63 - 1, size=N_STREAMS, dtype=np.int64)
    return [np.random.default_rng(int(s)) for s in seeds]


@lru_cache(maxsize=512)
def reference_rms(machine: str, machine_id: int, seed: int, sr: int) -> float:
    """RMS of one machine's normal sound (source domain, no background) on a reference clip."""
    model = get_model(machine, machine_id, seed)
    n = int(round(REFERENCE_S * sr))
    rng = np.random.default_rng([seed, name_code(machine), machine_id, 0xCA1])
    s = _streams(rng)
    clip = model.draw_clip(s[0], domain="source")
    kin = model.kinematics(clip, n, sr, s[1])
    canvas = Canvas(n, sr)
    model.render(kin, clip, canvas, s[2])
    y = canvas.render(s[5])
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))


def output_gain(model: MachineModel, sr: int, snr_db: float) -> float:
    """Gain from model units to file units: a normal clip at ``snr_db`` has RMS :data:`OUTPUT_RMS`."""
    ref = reference_rms(model.name, model.machine_id, model.seed, sr)
    return OUTPUT_RMS / (ref * math.sqrt(1.0 + 10.0 ** (-snr_db / 10.0)))


def render(
    model: MachineModel,
    *,
    fault: str | None,
    severity: float,
    domain: str,
    n: int,
    sr: int,
    snr_db: float,
    rng: np.random.Generator,
    gate: np.ndarray | None = None,
) -> np.ndarray:
    """Render ``n`` samples (no validation; see :func:`render_clip`).

    With ``gate`` (a per-sample 0..1 curve), the fault is confined to where the gate is
    non-zero and everything else is exactly what the normal rendering gives.
    """
    s = _streams(rng)
    clip = model.draw_clip(s[0], domain=domain)
    ref = reference_rms(model.name, model.machine_id, model.seed, sr)
    kin = model.kinematics(clip, n, sr, s[1])
    kin.level = ref
    f = machine_fault(model, fault) if (fault is not None and severity > 0.0) else None
    fp = f.draw(s[4], float(severity)) if f is not None else None
    if f is not None:
        fp["severity"] = float(severity)
        f.modify(kin, fp, gate)
    canvas = Canvas(n, sr)
    model.render(kin, clip, canvas, s[2])
    bg_db = snr_db + clip["snr_offset_db"] + s[3].normal(0.0, 1.0)
    model.background_for(clip).render(canvas, s[3], ref * 10.0 ** (-bg_db / 20.0))
    if f is not None and gate is None:
        f.render(kin, fp, canvas, s[4])
    y = canvas.render(s[5])
    if f is not None and gate is not None:
        fc = Canvas(n, sr)
        f.render(kin, fp, fc, s[4])
        part = fc.render(s[6])
        part *= gate
        y += part
    y *= np.float32(output_gain(model, sr, snr_db))
    over = int(np.count_nonzero(np.abs(y) > 1.0))
    if over:
        logger.debug("%s id %d: %d samples clipped", model.name, model.machine_id, over)
        np.clip(y, -1.0, 1.0, out=y)
    return y


# ----------------------------------------------------------------------------- validation


def check_machine(machine, name: str = "machine") -> str:
    if not isinstance(machine, str) or machine not in MACHINES:
        raise ParameterError(f"{name} must be one of {', '.join(MACHINES)}; got {machine!r}")
    return machine


def check_real(value, name: str, lo: float | None = None, hi: float | None = None,
               lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ParameterError(f"{name} must be a finite number; got {value!r}")
    value = float(value)
    if lo is not None and (value < lo or (lo_open and value <= lo)):
        raise ParameterError(f"{name} must be {'>' if lo_open else '>='} {lo}; got {value}")
    if hi is not None and value > hi:
        raise ParameterError(f"{name} must be <= {hi}; got {value}")
    return value


def check_fault(machine: str, fault, severity) -> tuple[str | None, float]:
    severity = check_real(severity, "severity", 0.0, 1.0)
    if fault is None:
        if severity > 0.0:
            raise ParameterError(f"severity must be 0 when fault is None; got {severity}")
        return None, 0.0
    if fault not in FAULTS[machine]:
        raise ParameterError(
            f"fault must be one of {', '.join(FAULTS[machine])} for machine {machine!r}; got {fault!r}"
        )
    return fault, severity


def check_common(duration_s, sr, snr_db) -> tuple[float, int, float]:
    # rendering is in memory (about 80 bytes per sample at the peak): at most an hour
    duration_s = check_real(duration_s, "duration_s", 0.0, MAX_DURATION_S, lo_open=True)
    sr = check_int("sr", sr, 8000, 192000, wording="must")
    snr_db = check_real(snr_db, "snr_db", -40.0, 80.0)
    if int(round(duration_s * sr)) < 1:
        raise ParameterError(f"duration_s is shorter than one sample at sr={sr}; got {duration_s}")
    return duration_s, sr, snr_db


def render_clip(
    machine: str,
    *,
    machine_id: int,
    fault: str | None = None,
    severity: float = 0.0,
    domain: str = "source",
    duration_s: float,
    sr: int,
    snr_db: float,
    rng: np.random.Generator,
    seed: int = 0,
) -> np.ndarray:
    """Render one clip of a machine, normal or with a fault.

    Parameters
    ----------
    machine : str
        Machine type, a key of :data:`~earshot.synth.MACHINES`.
    machine_id : int
        The machine's number (0-99). With ``seed`` it fixes the machine's own parameters
        (running speed, harmonic weights, resonances).
    fault : str or None
        A fault type of this machine (:data:`~earshot.synth.FAULTS`), or None for a normal clip.
    severity : float
        Fault strength in [0, 1]; 0 gives the normal sound.
    domain : {"source", "target"}
        ``"target"`` applies the machine's domain shift (another speed, load or background).
    duration_s : float
        Length in seconds (> 0).
    sr : int
        Sample rate (8000-192000).
    snr_db : float
        Level of the machine's normal sound over the factory background (MIMII: -6, 0, 6).
    rng : numpy.random.Generator
        Source of the clip-to-clip variation (speed drift, load, noise, fault details).
    seed : int, optional
        Seed of the machine's identity (the data-set seed in :func:`~earshot.synth.synthesize`).

    Returns
    -------
    numpy.ndarray
        float32 mono samples in [-1, 1], a normal clip about -28 dBFS RMS.

    Raises
    ------
    ParameterError
        For an unknown machine or fault, a severity outside [0, 1], a non-finite SNR, a
        non-positive duration, ...

    Examples
    --------
    >>> import numpy as np
    >>> y = render_clip("fan", machine_id=0, fault="imbalance", severity=0.8, duration_s=1.0,
    ...                 sr=16000, snr_db=0.0, rng=np.random.default_rng(0))
    >>> y.dtype, y.shape
    (dtype('float32'), (16000,))
    """
    machine = check_machine(machine)
    machine_id = check_int("machine_id", machine_id, 0, 99, wording="must")
    fault, severity = check_fault(machine, fault, severity)
    duration_s, sr, snr_db = check_common(duration_s, sr, snr_db)
    if domain not in DOMAINS:
        raise ParameterError(f"domain must be one of {DOMAINS}; got {domain!r}")
    if not isinstance(rng, np.random.Generator):
        raise ParameterError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    seed = check_int("seed", seed, 0, wording="must")
    model = get_model(machine, machine_id, seed)
    n = int(round(duration_s * sr))
    return render(model, fault=fault, severity=severity, domain=domain, n=n, sr=sr,
                  snr_db=snr_db, rng=rng)
