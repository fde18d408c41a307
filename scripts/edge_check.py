"""The edge install check (``make edge-test``): score a bundle where torch is not installed.

Three steps, two environments::

    python scripts/edge_check.py --core-deps           # print pyproject's core dependencies
    .venv/bin/python scripts/edge_check.py --make DIR  # main venv: tiny data, a trained model, expected.csv
    .venv-edge/bin/python scripts/edge_check.py --check DIR   # edge venv: no torch; same verdicts

``--check`` fails (exit 1, one line) unless: torch cannot be imported; ``earshot score`` scores
the folder into a CSV with the serial and the processes executors, and a file to JSON on
stdout, each giving exactly the verdicts the main environment wrote; ``earshot info`` works;
and scoring in-process leaves torch out of ``sys.modules``.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def core_deps() -> list[str]:
    import tomllib

    with open(ROOT / "pyproject.toml", "rb") as fh:
        return list(tomllib.load(fh)["project"]["dependencies"])


def make(work: Path) -> None:
    """Main environment: synthesize a little data, train a dense autoencoder, write expected.csv."""
    from earshot.pipeline.batch import score_to_file
    from earshot.features.config import FeatureConfig
    from earshot.pipeline import train
    from earshot.synth import synthesize

    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    synthesize(data, machines=["pump"], n_ids=2, n_normal=10, n_abnormal=3, duration_s=1.0, seed=3)
    train(data, work / "model", model="dense-ae", model_params={"epochs": 2, "hidden": 32, "n_layers": 2},
          features=FeatureConfig(n_mels=32))
    expected = work / "expected.csv"
    expected.unlink(missing_ok=True)
    res = score_to_file(work / "model", [data], expected, executor="serial")
    if res.errors or res.scored != 26:
        raise SystemExit(f"edge check: the main environment scored {res.scored} files with {res.errors} errors")
    print(f"edge check: model and expected verdicts in {work}")


def _rows(path: Path) -> dict[str, tuple]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {r["path"]: (r["group"], r["score"], r["threshold"], r["is_anomalous"], r["error"]) for r in csv.DictReader(fh)}


def _earshot(*args: str) -> str:
    exe = Path(sys.executable).with_name("earshot")
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"edge check: `earshot {' '.join(args)}` failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def check(work: Path) -> None:
    """Edge environment: no torch, and the same verdicts from the CLI and the library."""
    started = time.perf_counter()
    if importlib.util.find_spec("torch") is not None:
        raise SystemExit(f"edge check: torch is importable in {sys.prefix}; the edge venv must not have it")
    model, data = work / "model", work / "data"
    expected = _rows(work / "expected.csv")
    for executor in ("serial", "processes"):
        out = work / f"edge-{executor}.csv"
        out.unlink(missing_ok=True)
        _earshot("score", str(model), str(data), "--out", str(out), "--executor", executor, "--workers", "2",
                 "--batch-size", "8")
        if _rows(out) != expected:
            raise SystemExit(f"edge check: {out} differs from the verdicts of the main environment")
    one = sorted(expected)[0]
    (row,) = json.loads(_earshot("score", str(model), one))
    if repr(row["score"]) != expected[one][1]:
        raise SystemExit(f"edge check: JSON score {row['score']!r} of {one} differs from {expected[one][1]}")
    if "pump/id_00" not in _earshot("info", str(model)):
        raise SystemExit("edge check: `earshot info` does not list the model's groups")
    from earshot.pipeline.batch import iter_scores

    rows = [r for b in iter_scores(model, [data], executor="serial") for r in b]
    if "torch" in sys.modules or len(rows) != len(expected):
        raise SystemExit("edge check: scoring in-process imported torch or missed files")
    print(f"edge check: ok, {len(expected)} files scored without torch in {sys.prefix} "
          f"(serial, processes, JSON, library; {time.perf_counter() - started:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--core-deps", action="store_true", help="print the core dependencies, one per line")
    group.add_argument("--make", type=Path, metavar="DIR", help="(main venv) write data, a model and expected.csv")
    group.add_argument("--check", type=Path, metavar="DIR", help="(edge venv) score without torch and compare")
    args = parser.parse_args()
    if args.core_deps:
        print("\n".join(core_deps()))
    elif args.make:
        make(args.make)
    else:
        check(args.check)


if __name__ == "__main__":
    main()
