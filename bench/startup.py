"""CPU to score one file from the shell, beside the import floor, in the same run.

    python bench/startup.py [--repeat 5] [--model dense-ae]

Trains a small bundle on a few synthetic clips in a temporary folder, then runs, each
``--repeat`` times as separate processes, and prints the least CPU (user + system) of each:

- ``python -c pass``: the interpreter alone;
- the import floor: ``import numpy, scipy.fft, soundfile, onnxruntime`` (what scoring cannot
  avoid);
- ``earshot score MODEL FILE`` (``main`` of ``earshot.cli``): one ten-second file, as a user
  would run it: with Python's bytecode cached, as after ``pip install`` or any earlier run;
- the same with ``PYTHONDONTWRITEBYTECODE=1`` (how this project's shared sessions run), where
  Python compiles every earshot module from source in every run (about 0.04-0.1 s of CPU).

and the ratio score / floor (issue 16's goal: at most 1.3, on the cached row). The bytecode of
the cached rows goes to a temporary ``PYTHONPYCACHEPREFIX`` (written by a first, untimed round),
so the working tree gets no ``__pycache__``. The commands take turns (one run of each,
``--repeat`` rounds), so a change of load on a shared machine falls on all of them alike. It also lists the heavy modules (scipy.stats, scipy.sparse, torch, matplotlib, sklearn,
fastapi, sqlalchemy, uvicorn) that ``earshot score`` loaded, and those it loaded that scoring one
file to stdout does not need (pydantic, rich, click) with the typer version (typer 0.29 imports
pydantic to parse). No assertions: figures only.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

HEAVY = ("scipy.stats", "scipy.sparse", "torch", "matplotlib", "sklearn", "fastapi", "sqlalchemy", "uvicorn")
#: Not heavy, but not needed to score one file to stdout either (pydantic comes with typer >= 0.29).
EXTRA = ("pydantic", "rich", "click")
FLOOR = "import numpy, scipy.fft, soundfile, onnxruntime"
# earshot's command line in this process, then the heavy modules it loaded on stderr
_SCORE = ("import sys\nfrom earshot.cli import main\nsys.argv = ['earshot', 'score'] + sys.argv[1:]\n"
          "try:\n    main()\nexcept SystemExit:\n    pass\n"
          f"print('heavy:', ','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
          f"print('extra:', ','.join(m for m in {EXTRA!r} if m in sys.modules), file=sys.stderr)\n"
          "import typer\nprint('typer:', typer.__version__, file=sys.stderr)\n")


def _cpu_of(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    """User + system CPU seconds of one child process, and its stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"bench/startup.py: {' '.join(cmd[:4])}... failed:\n{proc.stderr}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc.stderr


def _least(cmds: list[tuple[list[str], dict[str, str]]], repeat: int) -> list[tuple[float, str]]:
    """Least CPU of each (command, environment) over ``repeat`` rounds (one run of each per round,
    after one untimed round that writes the bytecode), and its last stderr."""
    for cmd, env in cmds:
        _cpu_of(cmd, env)
    runs: list[list[tuple[float, str]]] = [[] for _ in cmds]
    for _ in range(repeat):
        for (cmd, env), done in zip(cmds, runs):
            done.append(_cpu_of(cmd, env))
    return [(min(r[0] for r in done), done[-1][1]) for done in runs]


def _bundle(tmp: Path, model: str) -> tuple[Path, Path]:
    data, out = tmp / "data", tmp / "model"
    run = [sys.executable, "-m", "earshot.cli"]
    subprocess.run(run + ["synth", str(data), "--machines", "fan", "--ids", "1", "--normal", "12", "--abnormal", "2"],
                   check=True, capture_output=True)
    extra = ["--epochs", "2"] if model.endswith("-ae") or model == "cnn" else []
    subprocess.run(run + ["train", str(data), "--out", str(out), "--model", model] + extra,
                   check=True, capture_output=True)
    return out, next(iter(sorted(data.rglob("*.wav"))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each command (the least CPU is printed)")
    parser.add_argument("--model", default="dense-ae", help="model kind of the bundle")
    args = parser.parse_args()
    env_note = f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    with tempfile.TemporaryDirectory() as tmp:
        model, wav = _bundle(Path(tmp), args.model)
        cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        source = {k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"}
        source["PYTHONDONTWRITEBYTECODE"] = "1"
        score_cmd = [sys.executable, "-c", _SCORE, str(model), str(wav), "--format", "csv"]
        (bare, _), (floor, _), (score, stderr), (compiled, _) = _least(
            [([sys.executable, "-c", "pass"], cached), ([sys.executable, "-c", FLOOR], cached),
             (score_cmd, cached), (score_cmd, source)], args.repeat)
    said = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in stderr.splitlines()
            if line.split(":", 1)[0] in ("heavy", "extra", "typer")}
    print(f"one-file `earshot score` CPU ({args.model} bundle, least of {args.repeat} rounds; {env_note})")
    rows = [("python -c pass", bare, ""), (f"import floor ({FLOOR[7:]})", floor, ""),
            ("earshot score MODEL FILE (bytecode cached)", score, f"   = {score / floor:.2f}x the floor (goal <= 1.3x)"),
            ("the same, compiled from source (PYTHONDONTWRITEBYTECODE=1)", compiled, f"   = {compiled / floor:.2f}x")]
    for label, seconds, note in rows:
        print(f"  {label:<58} {seconds:6.3f} s{note}")
    print(f"  heavy modules loaded by earshot score: {said.get('heavy', '?') or 'none'}")
    print(f"  other modules it loaded that scoring does not need: {said.get('extra', '?') or 'none'} "
          f"(typer {said.get('typer', '?')})")


if __name__ == "__main__":
    main()
