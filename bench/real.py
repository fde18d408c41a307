"""Real-data benchmark: every earshot detector beside two reference detectors, same splits.

    .venv/bin/pip install -e '.[bench]'          # pyod, pinned
    OMP_NUM_THREADS=1 .venv/bin/python bench/real.py [--repeats 5] [--channels 0,mean,all]
        [--models dense-ae,gauss,knn,embed,auto] [--lstm] [--no-synth] [--data DIR] [--json OUT]

What it measures, in one process:

- **Sets.** Every folder under ``--data`` (default: ``../shared/data/real`` from the repository
  root) that :func:`earshot.datasets.discover` reads, one group per machine and id/section; plus
  a small synthetic set (``earshot.synth``: fan and valve, one id each, 20 normal + 20
  abnormal source clips and 4 target normals, 10 s, 0 dB SNR, seed 0) so that tuning to
  either kind of data shows. Only labelled clips count.
- **Split (by recording, seeded, the same for every detector).** Per group, all normal clips
  (any given train/test split is pooled: the real sets' own test splits hold one or two clips)
  are sorted by path; per domain, ``numpy.random.default_rng(seed).permutation`` puts the first
  ``n // 2`` in the test set and the rest in training; every anomalous clip is a test clip.
  ``--repeats N`` re-draws with seeds ``0 .. N-1`` and reports mean ± standard deviation.
  MIMII fan id_00 (20 + 20 clips): 10 normals train; 10 normals + 20 anomalies test. A group
  with fewer than 2 training normals, 2 test normals or 1 anomaly is listed as skipped with
  the reason (an AUC from one normal clip says nothing).
- **Detectors.** earshot's ``dense-ae``, ``gauss``, ``knn``, ``embed``, ``auto`` (``--lstm``
  adds ``lstm-ae``; ``cnn`` needs labelled anomalies and is left out) with their default
  parameters on earshot's default features (``FeatureConfig()``: 16 kHz, 128 mels), given the
  clips' metadata (machine, id, domain, attributes); and, from the same clips:
  ``base-gauss``, a Ledoit-Wolf Mahalanobis distance on the per-mel mean and std over time of
  a 64-mel log-mel, ``pyod-audioae``, PyOD's ``AudioAE`` at its defaults, and
  ``pyod-audioae-16k``, the same with ``sr=16000`` (see ``bench/_real_baselines.py``). Both
  PyOD rows are shown because its default front end resamples 16 kHz recordings to 22,050 Hz
  and clips the dB spectrogram 80 dB below each clip's peak: the empty bands above 8 kHz then
  all read "clip peak - 80 dB", so the default row partly measures the clip's peak level; the
  16 kHz row is its autoencoder on the recordings' own band.
- **Channels.** Multi-channel sets (MIMII: 8 microphones) run once per ``--channels`` entry:
  ``0`` (the first microphone), ``mean`` (the average of all waveforms, earshot's default
  reading) and ``all`` (every microphone fused: mel power averaged over the channels before the
  dB, ``earshot train --channels all``). ``base-gauss`` runs on the same fused log-mel;
  ``pyod-audioae`` takes one waveform, so its ``all`` cell is empty (see its ``0``/``mean`` rows).
- **Metrics.** ROC AUC and pAUC (``max_fpr=0.1``, scikit-learn's standardised definition,
  :func:`earshot.evaluation.pauc`) per group; where the test clips come from several domains,
  also per domain the DCASE 2022-2024 way (the domain's normals against every anomaly). Fit
  and score seconds per split (log-mels are computed once per clip and cached; PyOD computes
  its own features inside fit/score, so its times include them).

Prints markdown tables to stdout; ``--json`` writes every per-seed figure. No assertions; nothing
is tuned on the test labels.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _real_baselines import GaussBaseline, PyodAudioAE, pyod_version  # noqa: E402

from earshot.datasets import discover  # noqa: E402
from earshot.detection import make_detector  # noqa: E402
from earshot.evaluation import pauc, roc_auc  # noqa: E402
from earshot.features import FeatureConfig, log_mel  # noqa: E402
from earshot.features.extract import fused_log_mel  # noqa: E402
from earshot.io import info, load  # noqa: E402
from earshot.io.channels import ALL_CHANNELS, load_channels  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "real"
EARSHOT_MODELS = ("dense-ae", "gauss", "knn", "embed", "auto")
BASELINES = ("base-gauss", "pyod-audioae", "pyod-audioae-16k")
SR = 16000
MAX_FPR = 0.1
SYNTH = {"machines": ["fan", "valve"], "n_ids": 1, "n_normal": 20, "n_abnormal": 20, "domain_shift": True,
         "n_target": 4, "snr_db": 0.0, "duration_s": 10.0, "seed": 0}
SPLIT_RULE = ("per group and domain, normals sorted by path, default_rng(seed).permutation: first n//2 -> test, "
              "rest -> train; all anomalies -> test; given train/test splits pooled")


@dataclass
class Clip:
    path: Path
    label: int
    domain: str
    meta: dict


@dataclass
class Group:
    name: str
    clips: list[Clip] = field(default_factory=list)
    n_channels: int = 1
    skipped: str | None = None


# ---------------------------------------------------------------------- data
def real_groups(root: Path) -> tuple[list[Group], list[Group]]:
    """Labelled groups and skipped folders/groups (with a reason) under ``root``."""
    groups, skipped = [], []
    if not root.is_dir():
        return [], [Group(str(root), skipped="no such folder")]
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            records = discover(folder)
        except Exception as exc:  # an unreadable folder is reported, not fatal
            skipped.append(Group(folder.name, skipped=f"not readable: {exc}"))
            continue
        by_group: dict[str, Group] = {}
        for r in records:
            if r.label is None:
                continue
            name = f"{folder.name}/{r.machine}/{r.id}" if r.id else f"{folder.name}/{r.machine}"
            g = by_group.setdefault(name, Group(name))
            g.clips.append(Clip(Path(r.path), int(r.label), str(r.domain or "source"),
                                {"machine": r.machine, "id": r.id, "domain": r.domain or "source",
                                 "attributes": dict(r.attributes or {})}))
        if not by_group:
            skipped.append(Group(folder.name, skipped=f"no labelled clips ({len(records)} unlabelled)"))
        for g in by_group.values():
            g.clips.sort(key=lambda c: str(c.path))
            g.n_channels = int(info(g.clips[0].path).channels)
            groups.append(g)
    return groups, skipped


def synth_groups(cache: Path) -> list[Group]:
    """The small synthetic set (written once under ``cache``, reused while its parameters match)."""
    from earshot.synth import synthesize

    data, stamp = cache / "synth", cache / "synth-params.json"
    if not (stamp.exists() and json.loads(stamp.read_text()) == SYNTH and (data / "manifest.csv").exists()):
        cache.mkdir(parents=True, exist_ok=True)
        synthesize(data, **SYNTH)
        stamp.write_text(json.dumps(SYNTH))
    groups: dict[str, Group] = {}
    for r in discover(data):
        name = f"synth/{r.machine}/{r.id}"
        g = groups.setdefault(name, Group(name))
        g.clips.append(Clip(Path(r.path), int(r.label), str(r.domain or "source"),
                            {"machine": r.machine, "id": r.id, "domain": r.domain or "source", "attributes": {}}))
    for g in groups.values():
        g.clips.sort(key=lambda c: str(c.path))
    return list(groups.values())


def split(group: Group, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test clip indices of ``group`` for ``seed`` (see the module docstring)."""
    train, test = [], []
    for d in sorted({c.domain for c in group.clips}):
        normals = [i for i, c in enumerate(group.clips) if c.label == 0 and c.domain == d]
        perm = np.random.default_rng(seed).permutation(len(normals))
        n_test = len(normals) // 2
        test += [normals[j] for j in perm[:n_test]]
        train += [normals[j] for j in perm[n_test:]]
    test += [i for i, c in enumerate(group.clips) if c.label == 1]
    return np.array(sorted(train)), np.array(sorted(test))


def skip_reason(group: Group) -> str | None:
    train, test = split(group, 0)
    y = np.array([group.clips[i].label for i in test], dtype=int)
    n_norm = int(np.sum(y == 0)) if len(y) else 0
    n_anom = int(np.sum(y == 1)) if len(y) else 0
    if len(train) < 2 or n_norm < 2 or n_anom < 1:
        return (f"too small: {len(train)} train normals, {n_norm} test normals, {n_anom} anomalies "
                "(need >= 2, >= 2, >= 1)")
    return None


class Cache:
    """Waveforms (16 kHz) and log-mels per (clip, channel), computed once."""

    def __init__(self):
        self.waves: dict = {}
        self.mels: dict = {}

    def wave(self, path: Path, channel: int | None) -> np.ndarray:
        key = (path, channel)
        if key not in self.waves:
            read = load_channels(path, sr=SR) if channel == ALL_CHANNELS else load(path, sr=SR, channel=channel)
            self.waves[key] = read[0]
        return self.waves[key]

    def mel(self, path: Path, channel: int | None, n_mels: int) -> np.ndarray:
        key = (path, channel, n_mels)
        if key not in self.mels:
            fuse = fused_log_mel if channel == ALL_CHANNELS else log_mel
            self.mels[key] = fuse(self.wave(path, channel), FeatureConfig(n_mels=n_mels), workers=1)
        return self.mels[key]


# ---------------------------------------------------------------------- methods
def fit_score(method: str, group: Group, train: np.ndarray, test: np.ndarray, channel: int | None,
              cache: Cache) -> tuple[np.ndarray, float, float, dict]:
    """Fit ``method`` on the training clips, score the test clips: scores, fit s, score s, extra."""
    clips = group.clips
    extra: dict = {}
    if method.startswith("pyod-audioae"):
        Xtr = [(cache.wave(clips[i].path, channel), SR) for i in train]
        Xte = [(cache.wave(clips[i].path, channel), SR) for i in test]
        det = PyodAudioAE(**({"sr": SR} if method.endswith("-16k") else {}))
    elif method == "base-gauss":
        Xtr = [cache.mel(clips[i].path, channel, 64) for i in train]
        Xte = [cache.mel(clips[i].path, channel, 64) for i in test]
        det = GaussBaseline()
    else:
        n_mels = FeatureConfig().n_mels
        Xtr = [cache.mel(clips[i].path, channel, n_mels) for i in train]
        Xte = [cache.mel(clips[i].path, channel, n_mels) for i in test]
        det = make_detector(method)
    t0 = time.perf_counter()
    if method in BASELINES:
        det.fit(Xtr)
    else:
        det.fit(Xtr, metadata=[clips[i].meta for i in train])
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = np.asarray(det.score_samples(Xte), dtype=np.float64)
    score_s = time.perf_counter() - t0
    chosen = getattr(det, "selection_", {}) or {}
    if chosen.get("chosen"):
        extra["chosen"] = chosen["chosen"]
    return scores, fit_s, score_s, extra


def metrics(y: np.ndarray, scores: np.ndarray, domains: np.ndarray) -> dict:
    out = {"auc": roc_auc(y, scores), "pauc": pauc(y, scores, max_fpr=MAX_FPR)}
    doms = sorted(set(domains[y == 0]))
    if len(doms) > 1:
        for d in doms:
            keep = (y == 1) | (domains == d)
            if np.sum(y[keep] == 0) >= 1:
                out[f"auc_{d}"] = roc_auc(y[keep], scores[keep])
                out[f"pauc_{d}"] = pauc(y[keep], scores[keep], max_fpr=MAX_FPR)
    return out


def run(groups: list[Group], methods: list[str], channels: list[str], repeats: int, cache: Cache,
        log=print) -> list[dict]:
    rows = []
    for g in groups:
        modes = channels if g.n_channels > 1 else ["mono"]
        for mode in modes:
            channel = None if mode in ("mean", "mono") else ALL_CHANNELS if mode == ALL_CHANNELS else int(mode)
            tr0, te0 = split(g, 0)
            y0 = np.array([g.clips[i].label for i in te0])
            row = {"set": g.name, "channel": mode, "n_train": int(len(tr0)), "n_test_normal": int(np.sum(y0 == 0)),
                   "n_test_anomaly": int(np.sum(y0 == 1)), "seeds": list(range(repeats)), "methods": {}}
            for method in methods:
                if channel == ALL_CHANNELS and method.startswith("pyod-audioae"):
                    continue  # one waveform in: nothing to fuse
                res = {"per_seed": [], "fit_s": [], "score_s": [], "chosen": [], "error": None}
                for seed in range(repeats):
                    train, test = split(g, seed)
                    y = np.array([g.clips[i].label for i in test])
                    dom = np.array([g.clips[i].domain for i in test])
                    try:
                        scores, fit_s, score_s, extra = fit_score(method, g, train, test, channel, cache)
                        if not np.all(np.isfinite(scores)):
                            raise ValueError("non-finite scores")
                    except Exception as exc:  # one failing detector must not stop the bench
                        res["error"] = f"{type(exc).__name__}: {exc}"
                        break
                    res["per_seed"].append(metrics(y, scores, dom))
                    res["fit_s"].append(fit_s)
                    res["score_s"].append(score_s)
                    if "chosen" in extra:
                        res["chosen"].append(extra["chosen"])
                summary = summarise(res["per_seed"])
                res.update(summary)
                row["methods"][method] = res
                shown = (f"AUC {fmt(summary.get('auc'))}  pAUC {fmt(summary.get('pauc'))}"
                         if res["error"] is None else res["error"])
                log(f"  {g.name} [{mode}] {method}: {shown}  fit {np.mean(res['fit_s'] or [np.nan]):.2f} s"
                    + (f"  chose {','.join(res['chosen'])}" if res["chosen"] else ""))
            rows.append(row)
    return rows


def summarise(per_seed: list[dict]) -> dict:
    out = {}
    keys = sorted({k for m in per_seed for k in m})
    for k in keys:
        v = np.array([m[k] for m in per_seed if k in m], dtype=float)
        out[k] = {"mean": float(v.mean()), "std": float(v.std()), "n": int(len(v))}
    return out


def fmt(s: dict | None) -> str:
    return "—" if not s else f"{s['mean']:.3f} ± {s['std']:.3f}"


# ---------------------------------------------------------------------- output
def tables(rows: list[dict], methods: list[str], skipped: list[Group], repeats: int) -> str:
    out = []
    head = "| set | ch | train / test (normal+anomaly) | " + " | ".join(methods) + " |"
    sep = "|---|---|---|" + "---|" * len(methods)

    def lines(metric: str, title: str):
        out.extend([f"### {title}", "", head, sep])
        for r in rows:
            doms = sorted({k.split("_", 1)[1] for m in r["methods"].values() for k in m if k.startswith(metric + "_")
                           and isinstance(m[k], dict)})
            for suffix in [""] + [f"_{d}" for d in doms]:
                key = metric + suffix
                label = r["set"] + (f" ({suffix[1:]})" if suffix else "")
                cells = []
                for m in methods:
                    res = r["methods"].get(m, {})
                    cells.append("error" if res.get("error") else fmt(res.get(key)))
                out.append(f"| {label} | {r['channel']} | {r['n_train']} / {r['n_test_normal']}+{r['n_test_anomaly']} | "
                           + " | ".join(cells) + " |")
        out.append("")

    seeds = f"seeds 0..{repeats - 1}"
    lines("auc", f"ROC AUC, mean ± std over {repeats} splits ({seeds})")
    lines("pauc", f"pAUC (max_fpr={MAX_FPR}), mean ± std over {repeats} splits ({seeds})")
    out.extend(["### Seconds per split: fit / score (mean)", "", head, sep])
    for r in rows:
        cells = []
        for m in methods:
            res = r["methods"].get(m, {})
            cells.append(f"{np.mean(res['fit_s']):.2f} / {np.mean(res['score_s']):.2f}" if res.get("fit_s") else "—")
        out.append(f"| {r['set']} | {r['channel']} | {r['n_train']} / {r['n_test_normal']}+{r['n_test_anomaly']} | "
                   + " | ".join(cells) + " |")
    out.append("")
    chosen = [(r["set"], r["channel"], r["methods"]["auto"]["chosen"]) for r in rows
              if "auto" in r["methods"] and r["methods"]["auto"].get("chosen")]
    if chosen:
        out.append("auto chose: " + "; ".join(f"{s} [{c}]: {','.join(ch)}" for s, c, ch in chosen))
    errors = [(r["set"], r["channel"], m, res["error"]) for r in rows for m, res in r["methods"].items() if res.get("error")]
    for s, c, m, e in errors:
        out.append(f"error: {s} [{c}] {m}: {e}")
    if skipped:
        out.append("")
        out.append("Skipped: " + "; ".join(f"{g.name} ({g.skipped})" for g in skipped))
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of real data sets")
    ap.add_argument("--repeats", type=int, default=5, help="splits, seeds 0..N-1")
    ap.add_argument("--models", default=",".join(EARSHOT_MODELS), help="earshot detectors")
    ap.add_argument("--lstm", action="store_true", help="add lstm-ae")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--channels", default="0,mean,all",
                    help="for multi-channel sets: comma-separated 'mean', 'all' or N")
    ap.add_argument("--no-synth", action="store_true", help="leave out the synthetic set")
    ap.add_argument("--only", default="", help="run only sets whose name contains this")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "earshot-bench-real",
                    help="where the synthetic set is written")
    ap.add_argument("--json", type=Path, help="write every figure here")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)
    logging.getLogger("earshot").setLevel(logging.WARNING)

    methods = [m for m in args.models.split(",") if m] + (["lstm-ae"] if args.lstm else [])
    if not args.no_baselines:
        if pyod_version() is None:
            print("pyod not installed (pip install -e '.[bench]'): pyod-audioae(-16k) left out", file=sys.stderr)
            methods += ["base-gauss"]
        else:
            methods += list(BASELINES)
    channels = [c.strip() for c in args.channels.split(",") if c.strip()]

    groups, skipped = real_groups(args.data)
    if not args.no_synth:
        groups += synth_groups(args.cache)
    keep = []
    for g in groups:
        if args.only and args.only not in g.name:
            continue
        reason = skip_reason(g)
        if reason:
            g.skipped = reason
            skipped.append(g)
        else:
            keep.append(g)
    print(f"sets: {', '.join(g.name for g in keep)}; split rule: {SPLIT_RULE}; pyod {pyod_version()}", file=sys.stderr)
    t0 = time.perf_counter()
    rows = run(keep, methods, channels, args.repeats, Cache(), log=lambda s: print(s, file=sys.stderr, flush=True))
    print(tables(rows, methods, skipped, args.repeats))
    print(f"\n(total {time.perf_counter() - t0:.0f} s; split rule: {SPLIT_RULE}; pyod {pyod_version()}; "
          f"torch threads {torch.get_num_threads()})")
    if args.json:
        args.json.write_text(json.dumps({"split_rule": SPLIT_RULE, "repeats": args.repeats, "max_fpr": MAX_FPR,
                                         "pyod": pyod_version(), "synth": SYNTH, "rows": rows,
                                         "skipped": {g.name: g.skipped for g in skipped}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
