"""``--model auto``: choose a detector per group from the training normals alone.

No test clip and no label is ever looked at. The normal training clips are split (stratified
by domain) into a fitting part and a held-out part; every candidate detector is fitted on the
fitting part and scores the held-out normals and **synthetic anomalies made from them** by
corrupting their log-mel spectrograms in ways machines go wrong (see :func:`corrupt`):

- ``tone``: a component in one mel band, 15 dB below to 5 dB above the band's mean level
  (a whine, a resonance);
- ``tilt``: the spectrum tilted by 0.3 to 6 dB from the lowest to the highest band (wear, a
  changed load);
- ``clicks``: one-frame broadband bursts every 4 to 23 frames, 10 dB below to 10 dB above each
  band's level (impacts, a damaged bearing);
- ``noise``: 20 to 50 % of the clip with broadband noise 15 to 0 dB below each band's level
  (rubbing, leaks);
- ``transient``: one to three isolated bursts of 1 to 3 frames, 5 dB below to 15 dB above each
  band's level (a knock, a valve slamming, a single impact);
- ``low-rise``: the lowest 1/32 to 1/8 of the bands 1 to 12 dB louder (unbalance, looseness: a
  fan's abnormal clips have their 0-90 Hz band 9 dB up);
- ``level``: every band 0.5 to 6 dB louder or quieter (a changed load or speed);
- ``modulation``: the loudness modulated by 0.5 to 6 dB with a period of 2 to 40 frames
  (a rubbing blade, a periodic load);
- ``shift``: the spectrum moved 1 to 3 bands up or down (a changed speed, a shifted resonance).

Severities are drawn uniformly in dB (log-uniformly for the tilt, the low-band rise, the level
and the modulation depth), from invisible to obvious,
so that the AUCs spread below 1 and tell the candidates apart.

The candidates are listed simplest first (``gauss`` before ``knn`` before ``embed``), and the
first one that scored is kept unless another beats it on the mean ROC AUC over the corruption
types by more than :data:`MARGIN_SE` standard errors of that difference (the per-corruption AUC
differences are paired, one per fault family, and their standard error is their standard
deviation over sqrt(number of families)); among those that do, the highest mean wins. With a
handful of held-out normals a mean AUC is noisy (on the MIMII fan with 10 training clips a plain
arg-max split evenly between ``gauss`` and ``knn`` from one split to the next and cost 0.018 AUC
against always taking ``gauss``); a simpler detector is not given up for a gain smaller than
the comparison's own noise. The chosen detector is refitted on all the training clips and
becomes the model. The choice,
each candidate's AUCs and false-alarm rate, and a one-line reason are stored in the bundle
(``fitted.selection``) and shown by ``earshot info``.

Synthetic corruptions are a proxy: they say which detector separates *plausible* changes from
normal variation on this machine, not how it will do on the faults the machine will really
have. With fewer than :data:`MIN_CLIPS_TO_VALIDATE` clips nothing can be held out and the
first candidate that needs no deep training (``gauss`` by default) is taken, and the reason
says so.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from earshot.detection import DETECTORS, detector_class
from earshot.detection.base import Detector, as_clips, each, int_at_least
from earshot.detection.domain_heads import domain_labels
from earshot.errors import EarshotError, ParameterError

__all__ = ["AutoDetector", "CORRUPTIONS", "MARGIN_SE", "choose", "corrupt", "rank_auc"]

log = logging.getLogger(__name__)

#: Synthetic anomaly types made from held-out normal clips.
CORRUPTIONS = ("tone", "tilt", "clicks", "noise", "transient", "low-rise", "level", "modulation", "shift")
#: Fewest normal clips for a held-out validation (below: the first frugal candidate).
MIN_CLIPS_TO_VALIDATE = 6
#: Candidates that need no deep training, in order of preference when nothing can be validated.
FRUGAL = ("gauss", "knn")
#: A candidate replaces the first (simplest) one only when its mean synthetic-anomaly AUC is higher
#: by more than this many standard errors of the paired per-corruption differences.
MARGIN_SE = 2.0
#: Parameters passed on to the candidates that accept them (when set).
SHARED = ("threshold", "epochs", "batch_size", "n_frames", "aggregate")


def _open_fraction(name: str, value: Any) -> None:
    if not 0.0 < float(value) < 1.0:
        raise ParameterError(f"{name}: expected 0 < value < 1, got {value!r}")


def _optional_positive_int(name: str, value: Any) -> None:
    if value is not None:
        int_at_least(1)(name, value)


def rank_auc(normal: np.ndarray, anomalous: np.ndarray) -> float:
    """ROC AUC of anomalous vs normal scores (Mann-Whitney, ties counted half)."""
    normal = np.asarray(normal, dtype=np.float64)
    anomalous = np.asarray(anomalous, dtype=np.float64)
    greater = (anomalous[:, None] > normal[None, :]).sum()
    ties = (anomalous[:, None] == normal[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(normal) * len(anomalous)))


def _add_power(x: np.ndarray, add_db: np.ndarray) -> np.ndarray:
    """Log-mel ``x`` (dB) with power ``10 ** (add_db / 10)`` added (broadcast)."""
    return (10.0 * np.log10(10.0 ** (x / 10.0) + 10.0 ** (add_db / 10.0))).astype(np.float32)


def corrupt(clip: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A synthetic anomaly made from one normal log-mel clip ``(n_mels, n_time)`` in dB.

    Severities are drawn at random, from invisible to obvious (see the module docstring for
    the kinds and ranges). Powers are added in the linear domain, as a new sound source would add.

    Returns
    -------
    np.ndarray
        ``(n_mels, n_time)``, float32.
    """
    x = np.asarray(clip, dtype=np.float64)
    n_mels, n_time = x.shape
    level = x.mean(axis=1, keepdims=True)  # each band's mean level, (n_mels, 1)
    if kind == "tone":
        band = int(rng.integers(n_mels))
        add = np.full_like(x, -200.0)
        add[band] = level[band, 0] + rng.uniform(-15.0, 5.0)
        return _add_power(x, add)
    if kind == "tilt":
        slope = 10.0 ** rng.uniform(np.log10(0.3), np.log10(6.0)) * rng.choice([-1.0, 1.0])
        return (x + np.linspace(-slope / 2, slope / 2, n_mels)[:, None]).astype(np.float32)
    if kind == "clicks":
        period = int(rng.integers(4, 24))
        frames = np.arange(int(rng.integers(period)), n_time, period)
        add = np.full_like(x, -200.0)
        add[:, frames] = level + rng.uniform(-10.0, 10.0)
        return _add_power(x, add)
    if kind == "noise":
        length = max(1, int(round(rng.uniform(0.2, 0.5) * n_time)))
        start = int(rng.integers(0, n_time - length + 1))
        add = np.full_like(x, -200.0)
        add[:, start : start + length] = level + rng.uniform(-15.0, 0.0) + rng.normal(0.0, 2.0, size=(n_mels, length))
        return _add_power(x, add)
    if kind in _MORE:
        return _MORE[kind](x, level, rng).astype(np.float32)
    raise ParameterError(f"kind: expected one of {', '.join(CORRUPTIONS)}, got {kind!r}")


def _transient(x: np.ndarray, level: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    add = np.full_like(x, -200.0)
    for _ in range(int(rng.integers(1, 4))):
        width = int(rng.integers(1, 4))
        start = int(rng.integers(0, max(1, x.shape[1] - width)))
        add[:, start : start + width] = level + rng.uniform(-5.0, 15.0)
    return _add_power(x, add)


def _low_rise(x: np.ndarray, level: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = x.copy()
    k = max(1, int(round(x.shape[0] * rng.uniform(1 / 32, 1 / 8))))
    out[:k] += 10.0 ** rng.uniform(0.0, np.log10(12.0))
    return out


def _level(x: np.ndarray, level: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return x + 10.0 ** rng.uniform(np.log10(0.5), np.log10(6.0)) * rng.choice([-1.0, 1.0])


def _modulation(x: np.ndarray, level: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    depth = 10.0 ** rng.uniform(np.log10(0.5), np.log10(6.0))
    period = rng.uniform(2.0, 40.0)
    return x + depth * np.sin(2.0 * np.pi * np.arange(x.shape[1]) / period + rng.uniform(0.0, 2.0 * np.pi))


def _shift(x: np.ndarray, level: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    step = int(rng.integers(1, 4)) * int(rng.choice([-1, 1]))
    out = np.roll(x, step, axis=0)
    if step > 0:
        out[:step] = x[:1]  # the edge band repeated, not wrapped round
    else:
        out[step:] = x[-1:]
    return out


#: The corruptions beyond the first four: ``(clip, band levels, rng) -> clip`` in dB.
_MORE = {"transient": _transient, "low-rise": _low_rise, "level": _level, "modulation": _modulation,
         "shift": _shift}


def choose(scored: dict[str, dict[str, Any]], margin_se: float = MARGIN_SE) -> tuple[str, str]:
    """The candidate to take and why, from the candidates' synthetic-anomaly AUCs.

    Parameters
    ----------
    scored : dict
        Candidate kind -> ``{"auc": mean, "auc_by_corruption": {kind: auc}}``, simplest first.
    margin_se : float
        How many standard errors of the paired per-corruption AUC difference a candidate must
        gain over the first one to replace it.

    Returns
    -------
    tuple of str
        The chosen kind and a one-line reason.
    """
    kinds = list(scored)
    first = kinds[0]
    ref = scored[first]
    gains: dict[str, tuple[float, float]] = {}
    for k in kinds[1:]:
        families = [f for f in ref["auc_by_corruption"] if f in scored[k]["auc_by_corruption"]]
        d = np.array([scored[k]["auc_by_corruption"][f] - ref["auc_by_corruption"][f] for f in families])
        se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
        gains[k] = (float(d.mean()) if len(d) else 0.0, se)
    beaters = [k for k, (gain, se) in gains.items() if gain > margin_se * se and gain > 0.0]
    others = "; ".join(f"{k} {scored[k]['auc']:.3f} ({gains[k][0]:+.3f} ± {gains[k][1]:.3f} SE)" for k in gains)
    if not beaters:
        why = (f"{first} (the simplest candidate) kept: mean AUC {ref['auc']:.3f}"
               + (f"; no other beat it by more than {margin_se:g} standard errors of the paired "
                  f"per-corruption difference: {others}" if others else ""))
        return first, why
    chosen = max(beaters, key=lambda k: (scored[k]["auc"], -kinds.index(k)))
    why = (f"{chosen}: mean AUC {scored[chosen]['auc']:.3f}, above {first} ({ref['auc']:.3f}) by "
           f"{gains[chosen][0]:.3f}, more than {margin_se:g} standard errors ({gains[chosen][1]:.3f}) of the "
           f"paired per-corruption difference; {others}")
    return chosen, why


class AutoDetector(Detector):
    """Pick among detectors with synthetic anomalies made from held-out training normals.

    Parameters
    ----------
    candidates : str
        Comma-separated detector kinds to choose from (``gauss,knn,embed``; ``dense-ae`` and
        any registered unsupervised kind may be added).
    holdout_fraction : float
        Share of each domain's clips held out for the comparison (at least one per domain
        with two or more clips).
    threshold : str
        Threshold method, passed on to the candidates.
    epochs, batch_size : int or None
        Passed on to the candidates that train for epochs (None: their defaults).
    n_frames : int
        Passed on (the fewest frames or the context of a clip).
    aggregate : str
        Passed on to frame-level candidates (``mean``, ``max``, ``quantile:q``).
    random_state : int
        Seeds the split, the corruptions and the candidates.

    Attributes
    ----------
    detector_ : Detector
        The chosen detector, refitted on every training clip.
    selection_ : dict
        ``chosen``, ``reason``, per-candidate ``auc``, ``auc_by_corruption``,
        ``false_alarm_rate``, ``fit_seconds`` (or ``error``), and the sizes of the comparison.
    threshold_, threshold_source_, train_scores_, calibration_scores_, history_
        The chosen detector's.
    """

    kind = "auto"

    def __init__(self, *, candidates: str = "gauss,knn,embed", holdout_fraction: float = 0.25,
                 threshold: str = "gamma:0.9", epochs: int | None = None, batch_size: int | None = None,
                 n_frames: int = 5, aggregate: str = "mean", random_state: int = 0):
        self.candidates = candidates
        self.holdout_fraction = holdout_fraction
        self.threshold = threshold
        self.epochs = epochs
        self.batch_size = batch_size
        self.n_frames = n_frames
        self.aggregate = aggregate
        self.random_state = random_state

    param_checks = (
        ("holdout_fraction", _open_fraction),
        *each(("epochs", "batch_size"), _optional_positive_int),
        ("n_frames", int_at_least(1)),
    )

    def _candidate_kinds(self) -> list[str]:
        kinds = [k.strip() for k in str(self.candidates).split(",") if k.strip()]
        if not kinds:
            raise ParameterError(f"candidates: expected comma-separated detector kinds, got {self.candidates!r}")
        for k in kinds:
            if k == self.kind or k not in DETECTORS:
                raise ParameterError(f"candidates: {k!r} is not a detector to choose from "
                                     f"(registered: {', '.join(sorted(set(DETECTORS) - {self.kind}))})")
            if detector_class(k).uses_labels:
                raise ParameterError(f"candidates: {k!r} needs labelled anomalies; auto chooses among "
                                     "detectors trained on normal clips only")
        return list(dict.fromkeys(kinds))

    def _validate_params(self) -> list[str]:  # type: ignore[override]
        """The candidate kinds, after the parameter checks of :class:`Detector`."""
        kinds = self._candidate_kinds()
        super()._validate_params()
        return kinds

    def _make(self, kind: str) -> Detector:
        cls = detector_class(kind)
        accepted = inspect.signature(cls).parameters
        params = {name: getattr(self, name) for name in SHARED
                  if name in accepted and getattr(self, name) is not None}
        if "random_state" in accepted:
            params["random_state"] = self.random_state
        return cls(**params)

    def _holdout(self, domains: list[str], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        dom = np.asarray(domains)
        held = []
        for d in sorted(set(domains)):
            idx = rng.permutation(np.flatnonzero(dom == d))
            if len(idx) >= 2:
                k = min(len(idx) - 1, max(1, int(round(float(self.holdout_fraction) * len(idx)))))
                held.extend(idx[:k].tolist())
        held_mask = np.zeros(len(domains), bool)
        held_mask[held] = True
        return np.flatnonzero(~held_mask), np.flatnonzero(held_mask)

    def fit(self, X: Sequence[np.ndarray], y: Any = None, *, metadata: Sequence[dict] | None = None,
            progress: Any = None) -> "AutoDetector":
        """Compare the candidates on held-out normals and synthetic anomalies, refit the best.

        Parameters
        ----------
        X : sequence of np.ndarray or FrameStore
            Normal training clips ``(n_mels, n_time)``.
        y : ignored
            Labels are never used: only normal clips and corruptions of them.
        metadata : sequence of dict, optional
            Passed on to the candidates (domains, ids, attributes); labels in it are ignored.
        progress : callable, optional
            Passed on to the final fit.

        Returns
        -------
        self
        """
        kinds = self._validate_params()
        clips = as_clips(X, self.n_frames)
        n = len(clips)
        meta = None if metadata is None else list(metadata)
        domains = domain_labels(meta, n)
        rng = np.random.default_rng(self.random_state)
        report: dict[str, Any] = {"candidates": {}, "corruptions": list(CORRUPTIONS), "n_clips": n}
        chosen = None
        if n >= MIN_CLIPS_TO_VALIDATE:
            fit_idx, held_idx = self._holdout(domains, rng)
            held = [np.asarray(clips[i]) for i in held_idx]
            anomalies = {k: [corrupt(c, k, rng) for c in held] for k in CORRUPTIONS}
            report.update(n_fit=int(len(fit_idx)), n_holdout=int(len(held_idx)),
                          n_synthetic=int(sum(len(v) for v in anomalies.values())))
            fit_clips = [clips[i] for i in fit_idx]
            fit_meta = None if meta is None else [meta[i] for i in fit_idx]
            for kind in kinds:
                started = time.perf_counter()
                try:
                    det = self._make(kind).fit(fit_clips, metadata=fit_meta)
                    s_normal = det.score_samples(held)
                    by_kind = {k: rank_auc(s_normal, det.score_samples(v)) for k, v in anomalies.items()}
                except EarshotError as exc:
                    report["candidates"][kind] = {"error": str(exc)}
                    log.info("auto: candidate %s failed: %s", kind, exc)
                    continue
                report["candidates"][kind] = {
                    "auc": float(np.mean(list(by_kind.values()))),
                    "auc_by_corruption": by_kind,
                    "false_alarm_rate": float(np.mean(s_normal > det.threshold_)),
                    "fit_seconds": round(time.perf_counter() - started, 3),
                }
                log.info("auto: %s synthetic-anomaly AUC %.3f", kind, report["candidates"][kind]["auc"])
            scored = {k: v for k, v in report["candidates"].items() if "auc" in v}
            if scored:
                chosen, why = choose(scored)
                report["reason"] = (f"{why}, separating {len(held_idx)} held-out normal training clips from "
                                    f"{report['n_synthetic']} synthetic anomalies made from them "
                                    f"({', '.join(CORRUPTIONS)})")
        if chosen is None:
            frugal = [k for k in kinds if k in FRUGAL]
            chosen = (frugal or kinds)[0]
            report["reason"] = (f"only {n} normal clips: too few to hold some out, so {chosen} (no deep training) "
                                "was taken without a comparison" if n < MIN_CLIPS_TO_VALIDATE else
                                f"every candidate failed on the held-out comparison; took {chosen}")
        report["chosen"] = chosen
        log.info("auto chose %s: %s", chosen, report["reason"])

        det = self._make(chosen).fit(clips, metadata=meta, progress=progress)
        self._adopt(det)
        self.selection_ = report
        return self

    def _adopt(self, det: Detector) -> None:
        self.detector_ = det
        for name in ("threshold_source_", "train_scores_", "calibration_scores_", "history_", "n_mels_"):
            setattr(self, name, getattr(det, name, {} if name == "history_" else None))
        for name in ("mean_", "std_"):
            if hasattr(det, name):
                setattr(self, name, getattr(det, name))
        self.threshold_ = det.threshold_

    # ------------------------------------------------------------------ scoring and export
    def score_samples(self, X: Sequence[np.ndarray]) -> np.ndarray:
        """The chosen detector's clip scores ``(n_clips,)``."""
        self._check_fitted()
        return self.detector_.score_samples(X)

    def window_scores(self, X: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The chosen detector's window scores."""
        self._check_fitted()
        return self.detector_.window_scores(X)

    def scoring_module(self):
        """The chosen detector's scoring graph."""
        self._check_fitted()
        return self.detector_.scoring_module()

    def state_dict(self) -> dict:
        """The chosen detector's weights."""
        self._check_fitted()
        return self.detector_.state_dict()

    def fitted_state(self) -> dict[str, Any]:
        """The chosen detector's fitted state, plus ``chosen`` (kind, params) and ``selection``."""
        self._check_fitted()
        return {**self.detector_.fitted_state(),
                "chosen": {"kind": self.detector_.kind, "params": self.detector_.get_params()},
                "selection": self.selection_}

    @classmethod
    def from_fitted(cls, params: dict[str, Any], state: dict[str, Any], weights: dict) -> "AutoDetector":
        """Rebuild from a bundle: the chosen detector from its own params and state."""
        det = cls(**params)
        chosen = state["chosen"]
        det._adopt(detector_class(chosen["kind"]).from_fitted(chosen["params"], state, weights))
        det.selection_ = state.get("selection", {})
        return det
