"""Fault types: what goes wrong in a machine and how it sounds, with a severity in [0, 1].

Each fault is a :class:`~earshot.synth._base.Fault` bound to one machine. Severity maps to
strength through :func:`~earshot.synth._base.severity_gain` (``severity ** 1.5`` in amplitude
unless stated), so severity 1 is plainly audible and 0.1 is about 30 dB weaker: a spread of
severities gives subtle as well as obvious anomalies. Levels are relative to the RMS of the
machine's normal sound (``kin.level``).

============== ============================================================================
fault          physics and sound
============== ============================================================================
imbalance      mass off the axis: a 1x shaft tone and 1x amplitude modulation (throb)
misalignment   coupled shafts off line: strong 2x (plus 1x, 3x, 4x) and 2x modulation
blade_damage   one fan blade differs: shaft-order comb around the blade-pass tones and
               a once-per-revolution whoosh
contamination  dirt on fan blades / clogged inlet: rough (randomly modulated) blade-pass
               tones and extra turbulent noise at 0.8-4 kHz
outer_race     outer-race spall: impulses at BPFO exciting a structural resonance
inner_race     inner-race spall: impulses at BPFI, stronger once per revolution (load zone)
cavitation     vapour bubbles collapsing at the impeller: bursts of broadband 1.5-7 kHz
               crackle, denser at each vane passage
leak           gas or liquid escaping through a gap: steady hiss in a 1-octave band (for a
               valve, mostly while it is closed)
sticking       the valve armature sticks: late or missing actuation, the coil buzzing
               while it pulls, then a harder click when it breaks free
chatter        the valve armature oscillates on its seat: a burst of rapid clicks (25-45 Hz)
rattle         a loose part on the slide rail: random metallic impacts while it moves
dry_friction   lubrication gone: a stick-slip squeal and more friction noise while moving
belt_slip      a slipping drive belt: the motor speed wobbles and the belt squeaks
============== ============================================================================
"""

from __future__ import annotations

import numpy as np

from earshot.synth._base import Fault, MachineModel, name_code, severity_gain
from earshot.synth._dsp import (
    TWO_PI,
    Canvas,
    amp,
    crossings,
    impulses,
    phase_from_speed,
    place,
    play,
    resonance,
    slow_wobble,
    smooth_envelope,
    wavetable,
)

__all__ = ["FAULT_TYPES", "machine_fault"]


def _tones(phase: np.ndarray, orders, amps, phases) -> np.ndarray:
    return play(wavetable(orders, amps, phases), phase)


class Imbalance(Fault):
    name = "imbalance"
    summary = "1x shaft tone and 1x amplitude modulation (throb)"

    def draw(self, rng, severity):
        return {
            "depth": 0.5 * severity**1.2,
            "a1": severity_gain(severity, 6.0),
            "phi": rng.uniform(0.0, 1.0),
            "phases": rng.uniform(0.0, TWO_PI, 8),
        }

    def modify(self, kin, p, gate):
        m = 1.0 + np.float32(p["depth"]) * np.cos(np.float32(TWO_PI) * (kin.phase + np.float32(p["phi"])))
        if gate is not None:
            m = 1.0 + (m - 1.0) * gate
        kin.multiply_am(m)

    def render(self, kin, p, canvas, rng):
        # 1x dominates; a strong imbalance also shakes the machine loose: a falling series
        # of shaft harmonics (looseness), here up to 8x
        orders = np.arange(1, 9)
        amps = orders**-1.0
        amps *= p["a1"] * kin.level / np.sqrt(0.5 * np.sum(amps**2))
        canvas.time += _tones(kin.phase, orders, amps, p["phases"])


class Misalignment(Fault):
    name = "misalignment"
    summary = "strong 2x shaft harmonic (with 1x and 3x-8x) and 2x modulation"

    def draw(self, rng, severity):
        return {
            "depth": 0.25 * severity**1.2,
            "a2": severity_gain(severity, 6.0),
            "phi": rng.uniform(0.0, 1.0),
            "phases": rng.uniform(0.0, TWO_PI, 8),
        }

    def modify(self, kin, p, gate):
        m = 1.0 + np.float32(p["depth"]) * np.cos(np.float32(2 * TWO_PI) * (kin.phase + np.float32(p["phi"])))
        if gate is not None:
            m = 1.0 + (m - 1.0) * gate
        kin.multiply_am(m)

    def render(self, kin, p, canvas, rng):
        orders = np.arange(1, 9)
        amps = np.array([0.5, 1.0, 0.5, 0.35, 0.2, 0.15, 0.1, 0.08])
        amps *= p["a2"] * kin.level / np.sqrt(0.5 * np.sum(amps**2))
        canvas.time += _tones(kin.phase, orders, amps, p["phases"])


class BladeDamage(Fault):
    name = "blade_damage"
    summary = "shaft-order comb around the blade-pass tones, once-per-revolution whoosh"

    def setup(self, rng):
        self.width = rng.uniform(0.3, 0.7)  # pulse width, in blade spacings

    def draw(self, rng, severity):
        return {"a": severity_gain(severity, -3.0), "whoosh": severity_gain(severity, -6.0),
                "phi": rng.uniform(0.0, 1.0)}

    def render(self, kin, p, canvas, rng):
        nb = self.model.p["n_blades"]
        orders = np.arange(1, 3 * nb + 1)
        # one narrow pulse per revolution: Gaussian spectrum over the shaft orders
        sigma = self.width / nb
        amps = np.exp(-0.5 * (TWO_PI * orders * sigma) ** 2)
        amps[orders % nb == 0] = 0.0  # the blade-pass orders are already there
        amps *= p["a"] * kin.level / np.sqrt(0.5 * np.sum(amps**2))
        phases = -TWO_PI * orders * p["phi"] + np.pi / 2
        canvas.time += _tones(kin.phase, orders, amps, phases)
        # once-per-revolution burst of turbulent noise
        env_orders = np.arange(1, 6)
        env = _tones(kin.phase, env_orders, np.exp(-0.5 * (TWO_PI * env_orders * 0.08) ** 2),
                     -TWO_PI * env_orders * p["phi"] + np.pi / 2)
        env -= env.min()
        env /= max(float(np.sqrt(np.mean(env**2))), 1e-9)
        noise = canvas.noise(rng, ("band", 600.0, 4000.0, 2), p["whoosh"] * kin.level)
        canvas.time += noise * env


class Contamination(Fault):
    name = "contamination"
    summary = "rough blade-pass tones and extra turbulent noise (0.8-4 kHz)"

    def setup(self, rng):
        self.band = (rng.uniform(700.0, 1200.0), rng.uniform(2500.0, 4500.0))

    def draw(self, rng, severity):
        return {"rough": 0.45 * severity**1.2, "noise": severity_gain(severity, -1.0),
                "seed": int(rng.integers(2**31))}

    def modify(self, kin, p, gate):
        rng = np.random.default_rng(p["seed"])
        r = slow_wobble(rng, kin.t, 1.0, 4.0, 25.0, n_terms=6)
        dev = smooth_envelope(np.maximum(p["rough"] * r, -1.0), kin.n, kin.sr)
        if gate is not None:
            dev *= gate
        kin.multiply_am(1.0 + dev)

    def render(self, kin, p, canvas, rng):
        canvas.add_noise(("band", self.band[0], self.band[1], 2), p["noise"] * kin.level)


class _Impacts(Fault):
    """Shared rendering: an impulse train exciting a resonance (complex response)."""

    def excite(self, canvas: Canvas, pos, gains, f0: float, decay: float, rms: float, rate: float) -> None:
        if len(pos) == 0 or rms <= 0.0:
            return
        x = impulses(canvas.n, pos, gains)
        # a unit-impulse train at `rate` through the resonance has RMS ~ sqrt(rate*decay/4)
        norm = rms / np.sqrt(max(rate, 1e-9) * decay / 4.0 * np.mean(np.square(gains)))
        x *= np.float32(norm)
        canvas.add_filtered(x, resonance(canvas.n, canvas.sr, float(f0), float(decay)))


class OuterRace(_Impacts):
    name = "outer_race"
    summary = "impulses at BPFO exciting a structural resonance"

    def setup(self, rng):
        res = self.model.p["res_hz"]
        self.f0 = float(res[int(rng.integers(len(res)))])
        self.decay = rng.uniform(0.0008, 0.002)

    def draw(self, rng, severity):
        return {"rms": severity_gain(severity, -4.0, 2.0), "offset": rng.uniform(0.0, 1.0)}

    def render(self, kin, p, canvas, rng):
        order = self.model.p["bpfo"]
        pos = crossings(kin.cycles, order, kin.n, kin.sr, p["offset"])
        period = kin.sr / (order * self.model.p["f_shaft"])
        pos = pos + rng.normal(0.0, 0.01 * period, len(pos))  # rolling elements slip
        gains = 1.0 + 0.1 * rng.standard_normal(len(pos))
        rate = len(pos) / (kin.n / kin.sr)
        self.excite(canvas, pos, gains, self.f0, self.decay, p["rms"] * kin.level, rate)


class InnerRace(OuterRace):
    name = "inner_race"
    summary = "impulses at BPFI, modulated once per revolution by the load zone"

    def render(self, kin, p, canvas, rng):
        order = self.model.p["bpfi"]
        pos = crossings(kin.cycles, order, kin.n, kin.sr, p["offset"])
        period = kin.sr / (order * self.model.p["f_shaft"])
        pos = pos + rng.normal(0.0, 0.01 * period, len(pos))
        idx = np.clip(np.rint(pos).astype(np.int64), 0, kin.n - 1)
        zone = (0.5 + 0.5 * np.cos(TWO_PI * kin.phase[idx].astype(np.float64))) ** 1.5
        gains = (0.1 + zone) * (1.0 + 0.1 * rng.standard_normal(len(pos)))
        rate = len(pos) / (kin.n / kin.sr)
        self.excite(canvas, pos, gains, self.f0, self.decay, p["rms"] * kin.level, rate)


class Cavitation(Fault):
    name = "cavitation"
    summary = "bursts of broadband 1.5-7 kHz crackle, denser at each vane passage"

    def setup(self, rng):
        self.spec = ("band", rng.uniform(1200.0, 2000.0), rng.uniform(6000.0, 7500.0), 2)

    def draw(self, rng, severity):
        return {
            "rms": severity_gain(severity, -2.0),
            "burst_rate": 1.5 + 3.0 * severity,
            "burst_len": 0.08 + 0.2 * severity,
            "density": rng.uniform(400.0, 1200.0),
            "steady": 0.25 * severity,
        }

    def render(self, kin, p, canvas, rng):
        n, sr = kin.n, kin.sr
        duration = n / sr
        nb = int(rng.poisson(p["burst_rate"] * duration))
        starts = rng.uniform(-0.2, duration, nb)
        lens = rng.exponential(p["burst_len"], nb)
        counts = rng.poisson(p["density"] * lens)
        t = np.repeat(starts, counts) + rng.random(int(counts.sum())) * np.repeat(lens, counts)
        steady = rng.uniform(0.0, duration, int(rng.poisson(p["steady"] * p["density"] * duration)))
        pos = np.concatenate([t, steady]) * sr
        pos = pos[(pos >= 0) & (pos < n)]
        idx = np.rint(pos).astype(np.int64).clip(0, n - 1)
        nv = self.model.p["n_vanes"]
        vane = 1.0 + 0.6 * np.cos(TWO_PI * nv * kin.phase[idx].astype(np.float64))
        gains = rng.lognormal(0.0, 0.7, len(pos)) * vane
        if len(pos) == 0:
            return
        x = impulses(n, pos, gains)
        rate = len(pos) / duration
        # band-limited white-ish impulses: output RMS = input RMS (unit-power shape)
        x *= np.float32(p["rms"] * kin.level / np.sqrt(rate / sr * np.mean(gains**2)))
        canvas.add_filtered(x, amp(n, sr, self.spec))


class Leak(Fault):
    name = "leak"
    summary = "steady hiss in a one-octave band (a valve: mostly while closed)"

    def setup(self, rng):
        fc = rng.uniform(2500.0, 6000.0)
        bw = 2.0 ** rng.uniform(0.5, 1.0)
        self.spec = ("band", fc / np.sqrt(bw), min(fc * np.sqrt(bw), 7800.0), 2)
        self.flutter = rng.uniform(0.05, 0.15)

    def draw(self, rng, severity):
        return {"rms": severity_gain(severity, -3.0)}

    def render(self, kin, p, canvas, rng):
        hiss = canvas.noise(rng, self.spec, p["rms"] * kin.level)
        env = 1.0 + slow_wobble(rng, kin.t, self.flutter, 3.0, 20.0, n_terms=4)
        if kin.motion is not None and self.model.name == "valve":
            idx = np.minimum(np.rint(kin.t * kin.sr).astype(np.int64), kin.n - 1)
            env = env * (1.0 - 0.8 * kin.motion[idx])
        hiss *= smooth_envelope(env, kin.n, kin.sr)
        canvas.time += hiss


class Sticking(Fault):
    name = "sticking"
    summary = "late or missing actuation, coil buzz while stuck, harder release click"

    def draw(self, rng, severity):
        return {
            "p_stick": min(1.0, 0.3 + 0.8 * severity),
            "p_miss": 0.3 * severity,
            "delay_s": (0.02 + 0.18 * severity, 0.05 + 0.35 * severity),
            "click_db": 6.0 * severity,
            "buzz": severity_gain(severity, 0.0),
            "seed": int(rng.integers(2**31)),
        }

    def modify(self, kin, p, gate):
        rng = np.random.default_rng(p["seed"])
        opens, g_open = (a.copy() for a in kin.events["open"])
        closes, g_close = (a.copy() for a in kin.events["close"])
        k = len(opens)
        delay = rng.uniform(*p["delay_s"], k) * kin.sr
        stick = rng.random(k) < p["p_stick"]
        miss = stick & (rng.random(k) < p["p_miss"] / max(p["p_stick"], 1e-9))
        delay = np.minimum(delay, np.maximum(closes - opens - 0.02 * kin.sr, 0.0))
        if gate is not None:  # only events entirely inside the fault's time range
            tail = 0.15 * kin.sr

            def inside(x):
                i = np.clip(np.rint(x).astype(np.int64), 0, kin.n - 1)
                ok = (x >= 0) & (x < kin.n)
                return np.where(ok, gate[i] >= 0.999, False)

            late_ok = inside(opens) & inside(opens + delay + tail)
            stick &= late_ok
            miss &= late_ok & inside(closes + tail)
        spans = (opens[stick & ~miss], opens[stick & ~miss] + delay[stick & ~miss])
        miss_spans = (opens[miss], closes[miss])
        g_open = np.where(stick, g_open * 10 ** (p["click_db"] / 20.0), g_open)
        opens = np.where(stick, opens + delay, opens)
        keep = ~miss
        kin.events["open"] = (opens[keep], g_open[keep])
        kin.events["close"] = (closes[keep], g_close[keep])
        kin.extra["stuck"] = (np.concatenate([spans[0], miss_spans[0]]),
                              np.concatenate([spans[1], miss_spans[1]]))

    def render(self, kin, p, canvas, rng):
        starts, ends = kin.extra.get("stuck", (np.zeros(0), np.zeros(0)))
        if len(starts) == 0:
            return
        tc = kin.t * kin.sr
        on = (np.searchsorted(np.sort(starts), tc, side="right")
              - np.searchsorted(np.sort(ends), tc, side="right"))
        env = smooth_envelope(np.clip(on, 0, 1).astype(np.float32), kin.n, kin.sr)
        # an AC coil that cannot pull in buzzes: 100 Hz with a rich, rattling series
        orders = np.arange(1, 25)
        amps = orders ** -0.7
        amps = amps * p["buzz"] * kin.level / np.sqrt(0.5 * np.sum(amps**2))
        buzz = play(wavetable(orders, amps, rng.uniform(0, TWO_PI, len(orders))), kin.mains_phase(50.0, 2))
        buzz *= env
        canvas.time += buzz


class Chatter(Fault):
    name = "chatter"
    summary = "the armature oscillates on its seat: a burst of rapid clicks, flow fluttering"

    def draw(self, rng, severity):
        return {
            "p": min(1.0, 0.3 + 0.9 * severity),
            "burst_s": 0.05 + 0.35 * severity,
            "rate_hz": rng.uniform(25.0, 45.0),
            "gain": 0.9 * severity**1.2,
        }

    def render(self, kin, p, canvas, rng):
        valve = self.model
        for which in ("close", "open"):
            pos, g = kin.events[which]
            chosen = rng.random(len(pos)) < p["p"]
            tmpl = valve.template(which, kin.sr)
            n_b = max(1, int(p["burst_s"] * p["rate_hz"]))
            k = np.arange(1, n_b + 1)
            jitter = rng.normal(0.0, 0.08, (int(chosen.sum()), n_b))
            offs = (k[None, :] + jitter) * (kin.sr / p["rate_hz"])
            gains = p["gain"] * g[chosen, None] * np.exp(-1.0 * k / n_b)[None, :]
            gains = gains * rng.uniform(0.6, 1.0, gains.shape)
            place(canvas.time, (pos[chosen, None] + offs).ravel(), tmpl, gains.ravel())


class Rattle(_Impacts):
    name = "rattle"
    summary = "a loose part: random metallic impacts while the carriage moves"

    def setup(self, rng):
        self.f0 = rng.uniform(1800.0, 5000.0)
        self.decay = rng.uniform(0.003, 0.008)

    def draw(self, rng, severity):
        return {"rms": severity_gain(severity, -3.0), "rate": 15.0 + 45.0 * severity}

    def render(self, kin, p, canvas, rng):
        n, sr = kin.n, kin.sr
        cand = rng.uniform(0.0, n, int(rng.poisson(p["rate"] * n / sr)))
        idx = np.clip(cand.astype(np.int64), 0, n - 1)
        pos = cand[rng.random(len(cand)) < kin.motion[idx]]
        gains = rng.lognormal(0.0, 0.5, len(pos))
        rate = max(len(pos), 1) / (n / sr)
        self.excite(canvas, pos, gains, self.f0, self.decay, p["rms"] * kin.level * 0.8, rate)
        self.excite(canvas, pos, gains * 0.6, self.f0 * 2.37, self.decay * 0.6,
                    p["rms"] * kin.level * 0.45, rate)


class DryFriction(Fault):
    name = "dry_friction"
    summary = "stick-slip squeal and more friction noise while moving"

    def setup(self, rng):
        self.f_squeal = rng.uniform(1200.0, 3500.0)

    def draw(self, rng, severity):
        return {"squeal": severity_gain(severity, -3.0), "noise": severity_gain(severity, -4.0)}

    def render(self, kin, p, canvas, rng):
        f = self.f_squeal * (1.0 + slow_wobble(rng, kin.t, 0.01, 3.0, 8.0))
        ph, _ = phase_from_speed(f, kin.n, kin.sr)
        squeal = _tones(ph, [1, 2], [1.0, 0.3], rng.uniform(0, TWO_PI, 2))
        rough = smooth_envelope(np.clip(1.0 + slow_wobble(rng, kin.t, 0.4, 5.0, 20.0, 5), 0.0, None),
                                kin.n, kin.sr)
        squeal *= rough * kin.motion * np.float32(p["squeal"] * kin.level * np.sqrt(2.0) / 1.04)
        noise = canvas.noise(rng, self.model.p["friction_spec"], p["noise"] * kin.level * 2.0)
        noise *= kin.motion
        canvas.time += squeal + noise


class BeltSlip(Fault):
    name = "belt_slip"
    summary = "motor speed wobble and belt squeaks"

    def setup(self, rng):
        self.f_squeak = rng.uniform(1500.0, 3000.0)

    def draw(self, rng, severity):
        return {"depth": 0.15 * severity**1.2, "rate": rng.uniform(3.0, 7.0),
                "phi": rng.uniform(0.0, TWO_PI), "squeak": severity_gain(severity, -6.0)}

    def _wobble(self, kin, p) -> np.ndarray:
        return np.sin(TWO_PI * p["rate"] * kin.t + p["phi"])

    def modify(self, kin, p, gate):
        # phase deviation whose derivative is a +-depth speed wobble of the moving motor
        f_max = self.model.p["f_motor"]
        motion_c = kin.speed / max(float(np.max(kin.speed)), 1e-9)
        dev = smooth_envelope(p["depth"] * f_max / (TWO_PI * p["rate"]) * self._wobble(kin, p) * motion_c,
                              kin.n, kin.sr)
        am = smooth_envelope(p["depth"] * np.cos(TWO_PI * p["rate"] * kin.t + p["phi"]), kin.n, kin.sr)
        if gate is not None:
            dev *= gate
            am *= gate
        kin.phase = kin.phase + dev
        kin.multiply_am(1.0 + am)

    def render(self, kin, p, canvas, rng):
        # a squeak at each slip (once per wobble period) while moving
        w = np.maximum(self._wobble(kin, p), 0.0) ** 4
        env = smooth_envelope(w, kin.n, kin.sr) * kin.motion
        f = self.f_squeak * (1.0 + 0.05 * self._wobble(kin, p))
        ph, _ = phase_from_speed(f, kin.n, kin.sr)
        sq = _tones(ph, [1, 2, 3], [1.0, 0.5, 0.25], rng.uniform(0, TWO_PI, 3))
        sq *= env * np.float32(p["squeak"] * kin.level * 2.0)
        canvas.time += sq


#: Fault name -> fault class.
FAULT_TYPES: dict[str, type[Fault]] = {
    f.name: f
    for f in (Imbalance, Misalignment, BladeDamage, Contamination, OuterRace, InnerRace,
              Cavitation, Leak, Sticking, Chatter, Rattle, DryFriction, BeltSlip)
}


def machine_fault(model: MachineModel, name: str) -> Fault:
    """The fault ``name`` of one machine (its id-level traits drawn once, then kept in
    ``model.fault_cache``)."""
    if name not in model.fault_cache:
        rng = np.random.default_rng(
            [model.seed, name_code(model.name), model.machine_id, name_code(name), 0xFA]
        )
        model.fault_cache[name] = FAULT_TYPES[name](model, rng)
    return model.fault_cache[name]
