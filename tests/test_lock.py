"""requirements-dev.lock satisfies pyproject.toml: every requirement of the core and of the dev
extra (followed through ``earshot[...]`` self-references) is pinned in the lock at a version its
specifier allows. The README's commands install from the lock, so a pin changed in
pyproject.toml alone would not reach a fresh machine (it happened: typer below 0.29)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def _locked() -> dict[str, str]:
    text = (ROOT / "requirements-dev.lock").read_text()
    return {canonicalize_name(m.group(1)): m.group(2)
            for m in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\]+)", text, re.MULTILINE)}


def _requirements(project: dict, extras: tuple[str, ...]) -> list[Requirement]:
    """The core requirements and those of ``extras``, self-references expanded."""
    name = canonicalize_name(project["name"])
    out, todo, seen = [Requirement(r) for r in project["dependencies"]], list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for spec in project["optional-dependencies"][extra]:
            req = Requirement(spec)
            if canonicalize_name(req.name) == name:
                todo.extend(req.extras)
            else:
                out.append(req)
    return out


def test_the_lock_pins_every_requirement_within_its_specifier():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = _locked()
    wrong = []
    for req in _requirements(project, ("dev",)):
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        version = locked.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            wrong.append(f"{req} (lock: {version})")
    assert not wrong, "requirements-dev.lock is out of date (run `make lock`): " + "; ".join(wrong)

