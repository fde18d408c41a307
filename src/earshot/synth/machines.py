"""One physically motivated sound model per machine type, and the :data:`MACHINES` registry.

Each model draws its machine's own parameters once from ``(machine, id, seed)``
(:meth:`~earshot.synth._base.MachineModel.draw_identity`) and renders the healthy sound of one
clip from a control-rate description of its motion. Levels inside a model are relative; the
renderer scales the whole clip (see :mod:`earshot.synth.clip`). ``docs/synth.md`` describes
each model with pictures.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from earshot.synth._base import Kinematics, MachineModel
from earshot.synth._dsp import (
    TWO_PI,
    Canvas,
    control_times,
    damped_modes,
    phase_from_speed,
    place,
    play,
    slow_wobble,
    smooth_envelope,
    wavetable,
)

__all__ = ["Bearing", "Fan", "MACHINES", "FAULTS", "Pump", "Slider", "Valve"]


def _db(x: float) -> float:
    return float(10.0 ** (x / 20.0))


def _harmonic_table(orders, amps, phases, rng: np.random.Generator | None = None,
                    jitter_db: float = 0.0) -> tuple[np.ndarray, float]:
    """Wavetable of a harmonic series (amplitudes optionally jittered) and its RMS."""
    amps = np.asarray(amps, float)
    if rng is not None and jitter_db > 0.0:
        amps = amps * 10.0 ** (rng.normal(0.0, jitter_db, len(amps)) / 20.0)
    rms = float(np.sqrt(0.5 * np.sum(amps**2)))
    return wavetable(orders, amps, phases), rms


def _tone(phase: np.ndarray, order: int, amplitude: float, offset: float = 0.0) -> np.ndarray:
    """``amplitude * sin(2 pi (order * phase + offset))`` in float32 (integer order)."""
    y = phase * np.float32(TWO_PI * order)
    if offset:
        y += np.float32(TWO_PI * offset)
    np.sin(y, out=y)
    y *= np.float32(amplitude)
    return y


class Fan(MachineModel):
    """Industrial fan: blade-pass harmonics over broadband aerodynamic noise.

    A rotor of ``n_blades`` blades at shaft frequency ``f_shaft`` (13-24 Hz) produces tones
    at the blade-pass frequency ``BPF = n_blades * f_shaft`` and its harmonics (falling by
    ``slope_db`` per harmonic), a trace of shaft orders 1-3 (residual imbalance), 100 Hz
    motor hum, and turbulent broadband noise (pink, rolled off above a few kHz, with a broad
    vortex-shedding hump) modulated at the BPF as each blade passes. Two housing resonances
    colour the noise.
    """

    name = "fan"
    faults = ("imbalance", "blade_damage", "contamination")
    default_fault = "imbalance"

    def draw_identity(self, rng: np.random.Generator) -> dict[str, Any]:
        f_shaft = rng.uniform(13.0, 24.0)
        n_blades = int(rng.integers(5, 10))
        bpf = f_shaft * n_blades
        n_h = int(np.clip(3500.0 // bpf, 3, 12))
        slope = rng.uniform(3.0, 7.0)
        orders = [1, 2, 3] + [n_blades * h for h in range(1, n_h + 1)]
        amps = np.concatenate([
            10 ** ((-30.0 + rng.normal(0, 3, 3)) / 20.0),
            10 ** ((-slope * np.arange(n_h) + rng.normal(0, 2, n_h)) / 20.0),
        ])
        return {
            "f_shaft": f_shaft,
            "n_blades": n_blades,
            "orders": orders,
            "amps": amps,
            "phases": rng.uniform(0, TWO_PI, len(orders)),
            "hum": _db(rng.uniform(-30.0, -22.0)),
            "aero_db": rng.uniform(-1.0, 5.0),
            "aero_spec": ("+",
                          (0.75, ("*", ("pink", 80.0), ("lowpass", rng.uniform(3500.0, 7000.0), 2))),
                          (0.25, ("peak", rng.uniform(500.0, 2000.0), rng.uniform(0.7, 1.5)))),
            "housing_spec": ("+",
                             (0.5, ("peak", rng.uniform(250.0, 900.0), rng.uniform(6.0, 12.0))),
                             (0.5, ("peak", rng.uniform(1200.0, 3000.0), rng.uniform(6.0, 12.0)))),
            "housing_db": rng.uniform(-18.0, -10.0),
            "mod_depth": rng.uniform(0.1, 0.3),
        }

    def render(self, kin: Kinematics, clip: dict, canvas: Canvas, rng: np.random.Generator) -> None:
        p = self.p
        table, rms = _harmonic_table(p["orders"], p["amps"], p["phases"], rng, 1.0)
        aero_ratio = _db(p["aero_db"] + clip["load_db"])
        tonal_gain = 1.0 / (rms * np.sqrt(1.0 + aero_ratio**2))
        y = play(table, kin.phase)
        y *= np.float32(tonal_gain)
        y += _tone(kin.mains_phase(), 1, p["hum"] * rms * tonal_gain)
        aero = canvas.noise(rng, p["aero_spec"], aero_ratio * rms * tonal_gain)
        aero *= np.float32(1.0) + _tone(kin.phase, p["n_blades"], p["mod_depth"], 0.25)
        y += aero
        if kin.am is not None:
            y *= kin.am
        canvas.time += y
        canvas.add_noise(p["housing_spec"], _db(p["housing_db"]))


class Pump(MachineModel):
    """Centrifugal pump: impeller vane-pass harmonics over flow noise.

    An induction motor (2 or 4 poles, 1-4 % slip) turns an impeller of ``n_vanes`` vanes:
    tones at the vane-pass frequency and harmonics, weaker shaft orders 1-3, 100 Hz hum;
    turbulent flow noise (brown, with pipe resonances) that pulsates slowly, and the motor's
    cooling-fan noise.
    """

    name = "pump"
    faults = ("cavitation", "leak", "imbalance")
    default_fault = "cavitation"

    def draw_identity(self, rng: np.random.Generator) -> dict[str, Any]:
        poles = int(rng.integers(1, 3))
        f_shaft = 50.0 / poles * (1.0 - rng.uniform(0.01, 0.04))
        n_vanes = int(rng.integers(5, 8))
        vpf = n_vanes * f_shaft
        n_h = int(np.clip(3000.0 // vpf, 2, 6))
        slope = rng.uniform(4.0, 9.0)
        orders = [1, 2, 3] + [n_vanes * h for h in range(1, n_h + 1)]
        amps = np.concatenate([
            10 ** ((rng.uniform(-26.0, -18.0) - 4.0 * np.arange(3)) / 20.0),
            10 ** ((-slope * np.arange(n_h) + rng.normal(0, 2, n_h)) / 20.0),
        ])
        fp = rng.uniform(150.0, 500.0)
        return {
            "f_shaft": f_shaft,
            "n_vanes": n_vanes,
            "orders": orders,
            "amps": amps,
            "phases": rng.uniform(0, TWO_PI, len(orders)),
            "hum": _db(rng.uniform(-24.0, -16.0)),
            "flow_db": rng.uniform(0.0, 6.0),
            "flow_spec": ("+",
                          (0.6, ("*", ("brown", rng.uniform(30.0, 60.0)), ("lowpass", 6000.0, 1))),
                          (0.25, ("peak", fp, rng.uniform(4.0, 10.0))),
                          (0.15, ("peak", fp * rng.uniform(2.4, 3.1), rng.uniform(4.0, 10.0)))),
            "fan_spec": ("*", ("pink", 200.0), ("lowpass", rng.uniform(4000.0, 6000.0), 2)),
            "fan_db": rng.uniform(-16.0, -10.0),
            "pulse_rms": rng.uniform(0.03, 0.08),
        }

    def render(self, kin: Kinematics, clip: dict, canvas: Canvas, rng: np.random.Generator) -> None:
        p = self.p
        table, rms = _harmonic_table(p["orders"], p["amps"], p["phases"], rng, 1.0)
        flow_ratio = _db(p["flow_db"] + clip["load_db"])
        gain = 1.0 / (rms * np.sqrt(1.0 + flow_ratio**2))
        pulse = smooth_envelope(1.0 + slow_wobble(rng, kin.t, p["pulse_rms"], 0.3, 3.0), kin.n, kin.sr)
        y = play(table, kin.phase)
        y *= np.float32(gain)
        y += _tone(kin.mains_phase(), 1, p["hum"] * rms * gain)
        flow = canvas.noise(rng, p["flow_spec"], flow_ratio * rms * gain)
        y += flow
        y *= pulse
        if kin.am is not None:
            y *= kin.am
        canvas.time += y
        canvas.add_noise(p["fan_spec"], _db(p["fan_db"]))


class Valve(MachineModel):
    """Solenoid valve: periodic actuation clicks, flow while open, solenoid hum.

    The valve opens every ``period`` seconds and stays open for ``open_frac`` of it (with a
    few ms of timing jitter). Opening and closing each give a click: a thump and a few metallic
    modes with short decays (the closing click, spring-driven, is louder). While open, the
    coil (AC) hums at 100 Hz with harmonics and the flow hisses (band-limited noise).
    """

    name = "valve"
    faults = ("sticking", "leak", "chatter")
    default_fault = "sticking"

    def draw_identity(self, rng: np.random.Generator) -> dict[str, Any]:
        open_modes = (rng.uniform(80.0, 250.0), rng.uniform(1500.0, 6000.0, 3),
                      rng.uniform(0.003, 0.015, 3), rng.uniform(0.3, 1.0, 3))
        close_modes = (rng.uniform(80.0, 250.0), rng.uniform(1500.0, 6000.0, 3),
                       rng.uniform(0.003, 0.015, 3), rng.uniform(0.3, 1.0, 3))
        n_h = 8
        return {
            "period": rng.uniform(0.5, 1.6),
            "open_frac": rng.uniform(0.3, 0.6),
            "open_modes": open_modes,
            "close_modes": close_modes,
            "close_db": rng.uniform(1.0, 5.0),
            "flow_spec": ("band", rng.uniform(400.0, 1200.0), rng.uniform(2500.0, 6000.0), 1),
            "flow_rms": _db(rng.uniform(-26.0, -16.0)),
            "hum_amps": 10 ** ((-rng.uniform(3.0, 6.0) * np.arange(n_h) + rng.normal(0, 2, n_h)) / 20.0),
            "hum_rms": _db(rng.uniform(-32.0, -24.0)),
        }

    def template(self, which: str, sr: int) -> np.ndarray:
        """The click template ``"open"`` or ``"close"`` (peak 1) at sample rate ``sr``."""
        key = ("template", which, sr)
        if key not in self._cache:
            thump, f, d, a = self.p[which + "_modes"]
            t = damped_modes(sr, np.append(f, thump), np.append(d, 0.02), np.append(a, 0.8), 0.1)
            t /= max(float(np.max(np.abs(t))), 1e-9)
            self._cache[key] = t
        return self._cache[key]

    def kinematics(self, clip: dict, n: int, sr: int, rng: np.random.Generator) -> Kinematics:
        period = self.p["period"] / clip["speed"] * (1.0 + rng.normal(0.0, 0.02))
        duration = n / sr
        t0 = rng.uniform(0.0, period) - period
        k = int(np.ceil((duration - t0) / period)) + 1
        opens = t0 + period * np.arange(k) + rng.normal(0.0, 0.004, k)
        closes = opens + self.p["open_frac"] * period + rng.normal(0.0, 0.004, k)
        load = _db(clip["load_db"] * 0.5)
        g_open = load * 10 ** (rng.normal(0.0, 1.0, k) / 20.0)
        g_close = load * _db(self.p["close_db"]) * 10 ** (rng.normal(0.0, 1.0, k) / 20.0)
        kin = Kinematics(n=n, sr=sr, t=control_times(n, sr))
        kin.events["open"] = (opens * sr, g_open)
        kin.events["close"] = (closes * sr, g_close)
        kin.extra["period"] = period
        return kin

    def opening(self, kin: Kinematics) -> np.ndarray:
        """Per-sample 0..1 opening from the open/close events (about 10 ms ramps)."""
        tc = kin.t * kin.sr
        opens, closes = kin.events["open"][0], kin.events["close"][0]
        state = (np.searchsorted(np.sort(opens), tc, side="right")
                 - np.searchsorted(np.sort(closes), tc, side="right"))
        state = np.clip(state, 0, 1).astype(np.float32)
        return smooth_envelope(state, kin.n, kin.sr)

    def render(self, kin: Kinematics, clip: dict, canvas: Canvas, rng: np.random.Generator) -> None:
        p = self.p
        kin.motion = self.opening(kin)
        y = canvas.noise(rng, p["flow_spec"], p["flow_rms"] * _db(clip["load_db"]))
        hum_amps = np.asarray(p["hum_amps"])
        table = wavetable(np.arange(1, len(hum_amps) + 1), hum_amps)
        hum = play(table, kin.mains_phase(50.0, 2))
        hum *= np.float32(p["hum_rms"] / np.sqrt(0.5 * np.sum(hum_amps**2)))
        y += hum
        y *= kin.motion
        for which in ("open", "close"):
            pos, g = kin.events[which]
            place(y, pos, self.template(which, kin.sr), g)
        if kin.am is not None:
            y *= kin.am
        canvas.time += y


class Slider(MachineModel):
    """Slide rail: back-and-forth strokes of a motor-driven carriage.

    Each period holds two strokes (out and back) with a trapezoidal speed profile and dwells
    at the ends. While moving, the motor whines at a frequency proportional to speed (with
    harmonics) and the rail and carriage rub (band-limited friction noise whose level follows
    the speed); each stop ends with a clunk. A servo drive whistle and 100 Hz hum run all the
    time.
    """

    name = "slider"
    faults = ("rattle", "dry_friction", "belt_slip")
    default_fault = "rattle"

    def draw_identity(self, rng: np.random.Generator) -> dict[str, Any]:
        n_h = 6
        return {
            "period": rng.uniform(1.0, 2.2),
            "move_frac": rng.uniform(0.3, 0.42),
            "f_motor": rng.uniform(120.0, 400.0),
            "amps": 10 ** ((-rng.uniform(3.0, 6.0) * np.arange(n_h) + rng.normal(0, 2, n_h)) / 20.0),
            "phases": rng.uniform(0, TWO_PI, n_h),
            "friction_spec": ("band", rng.uniform(700.0, 1500.0), rng.uniform(3000.0, 6000.0), 1),
            "friction_db": rng.uniform(-4.0, 2.0),
            "whistle_hz": rng.uniform(2000.0, 4500.0),
            "whistle_db": rng.uniform(-30.0, -22.0),
            "hum_db": rng.uniform(-34.0, -26.0),
            "clunk": (rng.uniform(80.0, 250.0), rng.uniform(700.0, 2000.0)),
            "clunk_db": rng.uniform(4.0, 10.0),
        }

    def kinematics(self, clip: dict, n: int, sr: int, rng: np.random.Generator) -> Kinematics:
        p = self.p
        t = control_times(n, sr)
        period = p["period"] * (1.0 + rng.normal(0.0, 0.01))
        t0 = rng.uniform(0.0, period)
        u = ((t - t0) / period) % 1.0
        move, acc = p["move_frac"], 0.2
        w = np.where(u < 0.5, u, u - 0.5) / move  # position within the current stroke
        speed = np.clip(np.minimum(w / acc, (1.0 - w) / acc), 0.0, 1.0)
        speed[w >= 1.0] = 0.0
        f = p["f_motor"] * clip["speed"] * speed * (1.0 + slow_wobble(rng, t, clip["drift"], 0.2, 1.0))
        phase, cycles = phase_from_speed(f, n, sr)
        kin = Kinematics(n=n, sr=sr, t=t, speed=f, phase=phase, cycles=cycles)
        kin.motion = smooth_envelope(speed, n, sr)
        k0 = int(np.floor(-t0 / period)) - 1
        ks = np.arange(k0, k0 + int(n / sr / period) + 4)
        stops = np.concatenate([t0 + ks * period + move * period, t0 + (ks + 0.5) * period + move * period])
        stops = np.sort(stops) + rng.normal(0.0, 0.003, len(stops))
        kin.events["stop"] = (stops * sr, _db(p["clunk_db"]) * 10 ** (rng.normal(0.0, 1.5, len(stops)) / 20.0))
        return kin

    def render(self, kin: Kinematics, clip: dict, canvas: Canvas, rng: np.random.Generator) -> None:
        p = self.p
        table, rms = _harmonic_table(np.arange(1, len(p["amps"]) + 1), p["amps"], p["phases"], rng, 1.0)
        fr = _db(p["friction_db"] + clip["load_db"])
        gain = 1.0 / (rms * np.sqrt(1.0 + fr**2))
        y = play(table, kin.phase)
        y *= np.float32(gain)
        y += canvas.noise(rng, p["friction_spec"], fr * rms * gain)
        y *= kin.motion
        clunk = self.clunk(kin.sr)
        place(y, kin.events["stop"][0], clunk, kin.events["stop"][1] * (rms * gain))
        if kin.am is not None:
            y *= kin.am
        canvas.time += y
        # always on: drive whistle and mains hum
        whistle = np.full(len(kin.t), min(p["whistle_hz"], 0.45 * kin.sr))
        ph, _ = phase_from_speed(whistle, kin.n, kin.sr)
        canvas.time += _tone(ph, 1, _db(p["whistle_db"]) * np.sqrt(2.0))
        canvas.time += _tone(kin.mains_phase(), 1, _db(p["hum_db"]) * np.sqrt(2.0))

    def clunk(self, sr: int) -> np.ndarray:
        """The end-of-stroke clunk template (peak 1)."""
        key = ("clunk", sr)
        if key not in self._cache:
            lo, hi = self.p["clunk"]
            t = damped_modes(sr, [lo, hi, hi * 2.3], [0.03, 0.008, 0.004], [1.0, 0.5, 0.25], 0.15)
            t /= max(float(np.max(np.abs(t))), 1e-9)
            self._cache[key] = t
        return self._cache[key]


class Bearing(MachineModel):
    """Induction motor on rolling-element bearings (the "bearing" machine type).

    Shaft orders 1-6 at the running speed ``f_shaft = 50/poles * (1 - slip)``, magnetic hum
    at 100, 200 and 300 Hz, rotor-slot tones at ``n_bars * f_shaft +- 100 Hz``, cooling-fan
    noise, and structural resonances (2-6 kHz) excited by broadband noise. The bearing
    geometry (``n_balls``, ball/pitch diameter ratio, contact angle) fixes the defect
    frequencies used by the outer- and inner-race faults.
    """

    name = "bearing"
    faults = ("outer_race", "inner_race", "misalignment", "imbalance")
    default_fault = "outer_race"

    def draw_identity(self, rng: np.random.Generator) -> dict[str, Any]:
        poles = int(rng.integers(1, 3))
        f_shaft = 50.0 / poles * (1.0 - rng.uniform(0.015, 0.04))
        n_balls = int(rng.integers(7, 13))
        ratio = rng.uniform(0.15, 0.3)
        angle = np.deg2rad(rng.uniform(0.0, 15.0))
        res = np.sort(rng.uniform(1500.0, 6000.0, 3))
        n_h = 6
        return {
            "f_shaft": f_shaft,
            "orders": np.arange(1, n_h + 1),
            "amps": 10 ** ((-6.0 * np.arange(n_h) + rng.normal(0, 3, n_h)) / 20.0),
            "phases": rng.uniform(0, TWO_PI, n_h),
            "electric": 10 ** ((rng.uniform(-6.0, 0.0) - np.array([0.0, 8.0, 14.0])
                                + rng.normal(0, 2, 3)) / 20.0),
            "n_bars": int(rng.integers(28, 45)),
            "slot_db": rng.uniform(-26.0, -18.0),
            "fan_spec": ("*", ("pink", 150.0), ("lowpass", rng.uniform(3000.0, 6000.0), 2)),
            "fan_db": rng.uniform(-8.0, -3.0),
            "res_hz": res,
            "res_spec": ("+", *((1.0 / 3, ("peak", float(f), rng.uniform(8.0, 20.0))) for f in res)),
            "res_db": rng.uniform(-22.0, -14.0),
            "bpfo": n_balls / 2.0 * (1.0 - ratio * np.cos(angle)),
            "bpfi": n_balls / 2.0 * (1.0 + ratio * np.cos(angle)),
            "n_balls": n_balls,
        }

    def render(self, kin: Kinematics, clip: dict, canvas: Canvas, rng: np.random.Generator) -> None:
        p = self.p
        table, rms = _harmonic_table(p["orders"], p["amps"], p["phases"], rng, 1.0)
        y = play(table, kin.phase)
        y *= np.float32(1.0 / rms)
        load = _db(clip["load_db"])
        ph100 = kin.mains_phase()
        for k, a in enumerate(p["electric"], start=1):
            y += _tone(ph100, k, a * load * np.sqrt(2.0))
        slot = _db(p["slot_db"]) * np.sqrt(2.0)
        nb = np.float32(p["n_bars"])
        for sign in (1.0, -1.0):
            arg = (kin.phase * nb + np.float32(sign) * ph100) * np.float32(TWO_PI)
            y += np.float32(slot) * np.sin(arg)
        if kin.am is not None:
            y *= kin.am
        canvas.time += y
        canvas.add_noise(p["fan_spec"], _db(p["fan_db"]))
        canvas.add_noise(p["res_spec"], _db(p["res_db"]))


#: Machine type -> sound model class (each class lists its fault types in ``faults``).
MACHINES: dict[str, type[MachineModel]] = {
    m.name: m for m in (Fan, Pump, Valve, Slider, Bearing)
}
#: Machine type -> the names of its fault types.
FAULTS: dict[str, tuple[str, ...]] = {name: m.faults for name, m in MACHINES.items()}
