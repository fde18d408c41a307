"""The README's five-minute tour runs as written, and every relative link in the docs resolves.

The tour is the block between ``<!-- tour -->`` and ``<!-- /tour -->`` in README.md; each
```bash block in it is one command, run through the installed ``earshot`` in a fresh folder.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EARSHOT = Path(sys.executable).parent / "earshot"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def tour_commands(text: str) -> list[str]:
    """The commands of the tour: one per fenced bash block between the tour markers."""
    start, end = text.index("<!-- tour -->"), text.index("<!-- /tour -->")
    blocks = re.findall(r"```bash\n(.*?)```", text[start:end], flags=re.S)
    commands = []
    for block in blocks:
        lines = [ln for ln in block.strip().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        assert len(lines) == 1, f"one command per block in the tour, got: {block!r}"
        commands.append(lines[0])
    return commands


def test_tour_block_has_the_promised_commands():
    names = [shlex.split(c)[1] for c in tour_commands(README.read_text())]
    for name in ("synth", "explore", "train", "evaluate", "score", "info", "detect"):
        assert name in names, f"the tour has no `earshot {name}`"


@pytest.mark.slow
def test_readme_tour_runs(tmp_path):
    if not EARSHOT.exists():
        pytest.skip(f"no installed earshot beside {sys.executable}")
    for command in tour_commands(README.read_text()):
        args = shlex.split(command)
        assert args[0] == "earshot", command
        done = subprocess.run([str(EARSHOT), *args[1:]], cwd=tmp_path, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    for path in ("data/manifest.csv", "explore/index.html", "model/manifest.json", "report.json",
                 "report/report.html", "fan-long.wav", "fan-long.wav.json",
                 "stream-model/model.onnx", "detect/events.csv", "detect/timeline.png"):
        assert (tmp_path / path).is_file(), f"the tour did not write {path}"
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["groups"]["fan/id_00"]["auc"] > 0.5
    verdict = json.loads((tmp_path / "detect/verdict.json").read_text())
    truth = json.loads((tmp_path / "fan-long.wav.json").read_text())["events"][0]
    assert verdict["is_anomalous"]
    events = (tmp_path / "detect/events.csv").read_text().splitlines()[1:]
    starts_ends = [tuple(float(x) for x in row.split(",")[:2]) for row in events]
    assert any(s < truth["end_s"] and e > truth["start_s"] for s, e in starts_ends), starts_ends


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(md: Path) -> set[str]:
    anchors, fenced = set(), False
    for line in md.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            anchors.add(_slug(line.lstrip("#")))
    return anchors


def _doc_files() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("md", _doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(md):
    broken = []
    for target in LINK.findall(md.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked here (no network)
        path, _, anchor = target.partition("#")
        dest = (md.parent / path).resolve() if path else md
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor}")
    assert not broken, f"{md.relative_to(ROOT)}: " + "; ".join(broken)
