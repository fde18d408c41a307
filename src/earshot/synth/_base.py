"""The contracts shared by machine models and faults: :class:`Kinematics`, :class:`MachineModel`,
:class:`Fault`.

Rendering one clip goes through fixed stages, each with its own random stream, so that a
fault changes only what it touches (the normal machine sound is the same with or without it):

1. ``model.draw_clip(rng)`` -> clip parameters (speed offset, load, level jitter: the
   clip-to-clip variation of a healthy machine), and ``fault.draw(rng, severity)`` -> the
   fault's parameters (audiomentations' *randomize_parameters*);
2. ``model.kinematics(clip, n, sr, rng)`` -> :class:`Kinematics` (shaft phase, events,
   activity), then ``fault.modify(kin, p, gate)`` (speed wobble, late clicks, modulation);
3. ``model.render(kin, clip, canvas, rng)`` and ``fault.render(kin, p, canvas, rng)`` add
   their sound (*apply*).

``gate`` (None, or a per-sample 0..1 curve) confines a fault to a time range: kinematic
changes are scaled by it, and the fault's own sound is multiplied by it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from earshot.synth._dsp import Canvas, control_times, phase_from_speed, slow_wobble, steady_phase
from earshot.synth.noise import Background

__all__ = ["Fault", "Kinematics", "MachineModel", "name_code", "severity_gain"]


def name_code(name: str) -> int:
    """A stable 32-bit code for a name (seeds must not depend on registry order)."""
    return zlib.crc32(name.encode("utf-8"))


def severity_gain(severity: float, max_db: float, exponent: float = 1.5) -> float:
    """Amplitude of a fault component: ``10**(max_db/20) * severity**exponent``.

    With the default exponent, severity 0.5 is 9 dB and 0.1 is 30 dB below the maximum.
    """
    return float(10.0 ** (max_db / 20.0) * max(severity, 0.0) ** exponent)


@dataclass
class Kinematics:
    """How the machine moves during one clip (what faults read and modify).

    Attributes
    ----------
    n, sr : int
        Length in samples and sample rate.
    t : numpy.ndarray
        Control-point times (s), float64.
    level : float
        RMS of the normal machine sound (the reference for fault levels).
    speed : numpy.ndarray or None
        Main rotation frequency (Hz) at the control points (shaft, motor).
    phase : numpy.ndarray or None
        Per-sample phase (float32 cycles, exact modulo 1) of the main rotation.
    cycles : numpy.ndarray or None
        Cumulative cycles of the main rotation at the control points (float64).
    am : numpy.ndarray or None
        Per-sample amplitude factor applied to the machine's own sound (None: 1).
    motion : numpy.ndarray or None
        Per-sample activity 0..1 (slider speed, valve opening); set by the model.
    events : dict
        Event name -> ``(positions, gains)`` arrays (sample positions, float64).
    extra : dict
        Anything else a model or fault wants to pass on.
    """

    n: int
    sr: int
    t: np.ndarray
    level: float = 1.0
    speed: np.ndarray | None = None
    phase: np.ndarray | None = None
    cycles: np.ndarray | None = None
    am: np.ndarray | None = None
    motion: np.ndarray | None = None
    events: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def multiply_am(self, factor: np.ndarray) -> None:
        """Multiply the amplitude factor by a per-sample curve."""
        self.am = factor.astype(np.float32) if self.am is None else self.am * factor

    def mains_phase(self, f_line: float = 50.0, order: int = 2) -> np.ndarray:
        """Per-sample phase (cycles) of ``order`` times the mains frequency (cached, read-only)."""
        return steady_phase(self.n, self.sr, f_line * order)


class Fault:
    """A fault of one machine (bound to a machine id: its fixed traits come from ``rng``).

    Subclasses set :attr:`name` and :attr:`summary` and override :meth:`setup`,
    :meth:`draw`, :meth:`modify` and/or :meth:`render`.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def __init__(self, model: "MachineModel", rng: np.random.Generator) -> None:
        self.model = model
        self.setup(rng)

    def setup(self, rng: np.random.Generator) -> None:
        """Draw the id-level traits of this fault (e.g. which resonance it excites)."""

    def draw(self, rng: np.random.Generator, severity: float) -> dict[str, Any]:
        """Draw the clip-level parameters of the fault at ``severity`` (0..1)."""
        return {"severity": severity}

    def modify(self, kin: Kinematics, p: dict, gate: np.ndarray | None) -> None:
        """Change the machine's motion (speed, events, modulation), scaled by ``gate``."""

    def render(self, kin: Kinematics, p: dict, canvas: Canvas, rng: np.random.Generator) -> None:
        """Add the fault's own sound to ``canvas`` (the caller applies the gate)."""


class MachineModel:
    """A sound model of one machine type; an instance is one machine (type, id, seed).

    Parameters
    ----------
    machine_id : int
        The machine's number; with ``seed`` it fixes the machine's own parameters.
    seed : int
        Seed of the data set (different seeds give different machines).

    Attributes
    ----------
    p : dict
        The machine's fixed parameters (running speed, harmonic weights, resonances...).
    shift : tuple of (str, float)
        The attribute that differs in the target domain and its value: ``("speed", factor)``,
        ``("load", dB)`` or ``("background", dB of SNR change)``.
    fault_cache : dict
        This machine's faults by name, each drawn once (see
        :func:`earshot.synth.faults.machine_fault`).
    """

    name: ClassVar[str] = ""
    faults: ClassVar[tuple[str, ...]] = ()
    default_fault: ClassVar[str] = ""
    shifts: ClassVar[tuple[str, ...]] = ("speed", "load", "background")

    def __init__(self, machine_id: int = 0, *, seed: int = 0) -> None:
        self.machine_id = int(machine_id)
        self.seed = int(seed)
        rng = np.random.default_rng([self.seed, name_code(self.name), self.machine_id, 0x1D])
        self.p = self.draw_identity(rng)
        kind = self.shifts[int(rng.integers(len(self.shifts)))]
        if kind == "speed":
            value = 1.0 + float(rng.choice([-1.0, 1.0]) * rng.uniform(0.10, 0.20))
        elif kind == "load":
            value = float(rng.choice([-1.0, 1.0]) * rng.uniform(3.0, 6.0))
        else:
            value = -float(rng.uniform(2.0, 5.0))
        self.shift = (kind, value)
        self.background = Background.from_seed(self.seed, self.name)
        self.target_background = Background.from_seed(self.seed, self.name + "/target")
        self.fault_cache: dict[str, Fault] = {}
        self._cache: dict = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(machine_id={self.machine_id}, seed={self.seed})"

    def shift_label(self) -> tuple[str, str]:
        """The shifted attribute of the target domain as ``(name, value)`` strings."""
        kind, value = self.shift
        if kind == "speed":
            return kind, f"x{value:.3f}"
        return kind, f"{value:+.1f}dB"

    # -- the stages
    def draw_identity(self, rng: np.random.Generator) -> dict[str, Any]:
        """The machine's fixed parameters."""
        raise NotImplementedError

    def draw_clip(self, rng: np.random.Generator, *, domain: str = "source") -> dict[str, Any]:
        """Clip-to-clip variation (speed factor, load in dB, drift); the domain shift applied."""
        clip = {
            "speed": 1.0 + rng.normal(0.0, 0.004),
            "load_db": rng.normal(0.0, 0.6),
            "drift": 0.002,
            "target": domain == "target",
            "snr_offset_db": 0.0,
        }
        if domain == "target":
            kind, value = self.shift
            if kind == "speed":
                clip["speed"] *= value
            elif kind == "load":
                clip["load_db"] += value
            else:
                clip["snr_offset_db"] = value
        return clip

    def background_for(self, clip: dict) -> Background:
        """The factory background of a clip (another factory for a background shift)."""
        if clip.get("target") and self.shift[0] == "background":
            return self.target_background
        return self.background

    def kinematics(self, clip: dict, n: int, sr: int, rng: np.random.Generator) -> Kinematics:
        """Default: one shaft at ``p["f_shaft"]`` times the clip speed, with slow drift."""
        t = control_times(n, sr)
        f = self.p["f_shaft"] * clip["speed"] * (1.0 + slow_wobble(rng, t, clip["drift"], 0.05, 0.5))
        phase, cycles = phase_from_speed(f, n, sr)
        return Kinematics(n=n, sr=sr, t=t, speed=f, phase=phase, cycles=cycles)

    def render(self, kin: Kinematics, clip: dict, canvas: Canvas, rng: np.random.Generator) -> None:
        """Add the normal machine sound to ``canvas``."""
        raise NotImplementedError
