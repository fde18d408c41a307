"""Domain shift: dense AE vs gauss vs knn vs embed vs auto, AUC and pAUC per machine and domain.

    .venv/bin/python bench/domain_shift.py [--out /tmp/earshot-domain-shift] [--seed 1]
        [--models dense-ae,gauss,knn,embed,auto] [--ids 2] [--normal 100] [--abnormal 30]
        [--target 50] [--target-train 10] [--group-by id] [--threads N] [--evaluate-only]

What it does, on this machine, in one run:

1. ``earshot.synth.synthesize(..., domain_shift=True)`` (what ``earshot synth --domain-shift``
   writes, with ``--target`` target-domain normal clips per machine id instead of 10 % of
   ``--normal``, so that the target test set is not three clips);
2. a split file in the DCASE 2022+ style: per machine id, ``--target-train`` target normals
   and the source normals not needed for the test go to TRAIN; as many source normals as
   there are source anomalies, the other target normals and every anomaly go to TEST;
3. ``earshot.pipeline.train`` of each model (its default parameters) and
   ``earshot.pipeline.evaluate`` of the written bundles (ONNX scoring, no torch);
4. per machine id and domain, what ``earshot evaluate`` reports (earshot.evaluation.domains):
   AUC and pAUC (max_fpr 0.1) of the domain's normal test clips against every anomalous test
   clip of the id, as the DCASE 2022-2024 evaluators count "AUC (source)" and "AUC (target)";
   the within-domain AUC (the domain's own anomalies only) beside it; the means over ids per
   domain; false alarms at each model's threshold; fit seconds per model.

Writes ``results.json``, ``table.md`` and the comparison page ``compare/compare.html`` (what
``earshot evaluate M1 M2 ... DATA --split-file split.csv --report DIR`` writes) under ``--out``
and prints the table. No assertions,
no tuning: every model runs with its defaults; nothing looks at the test labels but the metrics.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from earshot.bundle import load_model
from earshot.pipeline import evaluate, train
from earshot.synth import synthesize


def make_data(root: Path, args) -> Path:
    marker = root / "data" / ".earshot-synth.json"
    params = {"seed": args.seed, "n_ids": args.ids, "n_normal": args.normal, "n_abnormal": args.abnormal,
              "n_target": args.target, "machines": args.machines}
    if marker.exists() and (root / "data-params.json").exists() and \
            json.loads((root / "data-params.json").read_text()) == params:
        print(f"reusing {root / 'data'}", flush=True)
    else:
        t0 = time.perf_counter()
        synthesize(root / "data", machines=args.machines, n_ids=args.ids, n_normal=args.normal,
                   n_abnormal=args.abnormal, domain_shift=True, n_target=args.target, seed=args.seed)
        (root / "data-params.json").write_text(json.dumps(params))
        print(f"synthesised {root / 'data'} in {time.perf_counter() - t0:.1f} s", flush=True)
    rows = list(csv.DictReader(open(root / "data" / "manifest.csv")))
    split = root / "split.csv"
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["machine"], r["id"], r["domain"]), []).append(r)
    out = []
    for (machine, mid, domain), rs in sorted(groups.items()):
        normals = [r for r in rs if r["label"] == "0"]
        abnormal = [r for r in rs if r["label"] == "1"]
        n_train = args.target_train if domain == "target" else len(normals) - len(abnormal)
        for i, r in enumerate(normals):  # synth's clip numbers carry no information: take them in order
            out.append((r["path"], "train" if i < n_train else "test"))
        out += [(r["path"], "test") for r in abnormal]
    with open(split, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "split"])
        w.writerows((str((root / "data" / p).resolve()), s) for p, s in out)
    return split


def per_domain(report: dict) -> dict:
    """``{"group|domain": metrics}`` from the report's per-domain metrics (earshot.evaluation.domains)."""
    return {f"{group}|{domain}": m for group, g in report["groups"].items()
            for domain, m in (g.get("domains") or {}).items()}


def table(results: dict, models: list[str]) -> str:
    keys = sorted({k for m in models for k in results[m]["metrics"]},
                  key=lambda k: (k.split("|")[1], k.split("|")[0]))
    head = "| machine/id | domain | " + " | ".join(f"{m} AUC | {m} pAUC" for m in models) + " |"
    lines = [head, "|" + "---|" * (2 + 2 * len(models))]
    for key in keys:
        group, domain = key.split("|")
        cells = []
        for m in models:
            r = results[m]["metrics"].get(key)
            cells += [f"{r['auc']:.3f}", f"{r['pauc']:.3f}"] if r else ["-", "-"]
        lines.append(f"| {group} | {domain} | " + " | ".join(cells) + " |")

    def mean(m: str, domain: str, key: str) -> float:
        return float(np.nanmean([v[key] for k, v in results[m]["metrics"].items() if k.endswith("|" + domain)]))

    for domain in ("source", "target"):
        cells = []
        for m in models:
            cells += [f"**{mean(m, domain, 'auc'):.3f}**", f"**{mean(m, domain, 'pauc'):.3f}**"]
        lines.append(f"| **mean** | {domain} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("AUC within the domain (the domain's normals against its own anomalies only), mean over ids:")
    lines.append("")
    lines.append("| domain | " + " | ".join(models) + " |")
    lines.append("|---|" + "---|" * len(models))
    for domain in ("source", "target"):
        lines.append(f"| {domain} | " + " | ".join(f"{mean(m, domain, 'auc_within'):.3f}" for m in models) + " |")
    lines.append("")
    lines.append("| model | fit seconds (all groups) | false alarms on test normals (source / target) | choice (auto) |")
    lines.append("|---|---|---|---|")
    for m in models:
        fa = {d: np.mean([v["false_alarm_rate"] for k, v in results[m]["metrics"].items() if k.endswith("|" + d)])
              for d in ("source", "target")}
        choice = ", ".join(f"{g}: {c}" for g, c in results[m].get("choices", {}).items())
        lines.append(f"| {m} | {results[m]['fit_seconds']:.1f} | {fa['source']:.2f} / {fa['target']:.2f} | {choice} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/earshot-domain-shift"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--models", default="dense-ae,gauss,knn,embed,auto")
    ap.add_argument("--machines", default="fan,pump,valve,slider,bearing")
    ap.add_argument("--ids", type=int, default=2)
    ap.add_argument("--normal", type=int, default=100)
    ap.add_argument("--abnormal", type=int, default=30)
    ap.add_argument("--target", type=int, default=50)
    ap.add_argument("--target-train", type=int, default=10)
    ap.add_argument("--group-by", default="id")
    ap.add_argument("--evaluate-only", action="store_true",
                    help="re-evaluate the models already trained into --out (same data and split) instead of training")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's; 1 on a busy machine)")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    args.machines = [m for m in args.machines.split(",") if m]
    models = [m for m in args.models.split(",") if m]
    args.out.mkdir(parents=True, exist_ok=True)
    split = make_data(args.out, args)
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for kind in models:
        t0 = time.perf_counter()
        if args.evaluate_only and (args.out / f"model-{kind}").is_dir() and kind in results:
            fit_s, train_clips = results[kind]["fit_seconds"], results[kind]["train_clips"]
        else:
            trained = train(args.out / "data", args.out / f"model-{kind}", model=kind, split_file=split,
                            group_by=args.group_by, seed=args.seed)
            fit_s = time.perf_counter() - t0
            train_clips = {g: v["n_clips"] for g, v in trained.groups.items()}
        model = load_model(args.out / f"model-{kind}")
        report = evaluate(model, args.out / "data", split_file=split)
        choices = {g: b.manifest["fitted"]["selection"]["chosen"] for g, b in model.bundles.items()
                   if "selection" in b.manifest["fitted"]}
        results[kind] = {"fit_seconds": fit_s, "metrics": per_domain(report), "choices": choices,
                         "train_clips": train_clips}
        results_path.write_text(json.dumps(results, indent=2))
        print(f"{kind}: trained and evaluated in {time.perf_counter() - t0:.1f} s", flush=True)
    done = list(results)  # every model run into this --out so far (a later run may add or redo some)
    if len(done) > 1:  # the same numbers as an `earshot evaluate M1 M2 ... DATA --report` page
        from earshot.pipeline.compare import compare_models
        from earshot.reports.crossval import write_compare_report

        compared = compare_models([(m, load_model(args.out / f"model-{m}")) for m in done], args.out / "data",
                                  split_file=split)
        print(f"report: {write_compare_report(compared, args.out / 'compare')}", flush=True)
    text = table(results, done)
    (args.out / "table.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
