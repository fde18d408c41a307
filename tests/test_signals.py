"""``earshot <verb>`` stopped by a signal: one line, exit 130 (SIGINT) or 143 (SIGTERM), nothing
half-written left behind; two writers of one model folder: the second refuses."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from earshot._util.fs import atomic_dir, target_lock
from earshot.cli.app import main

from helpers.datasets import write_hum_dataset

#: Long enough that the signal always arrives while training (the test never waits for the end).
SLOW = ["--epochs", "1000", "--n-mels", "32"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_hum_dataset(tmp_path_factory.mktemp("data"), np.random.default_rng(0), n_normal=8, n_abnormal=2)


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import sys; from earshot.cli.app import main; sys.exit(main())",
                             *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_tmp(out: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Until ``train`` is writing into its hidden temporary folder."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if list(out.parent.glob(f".{out.name}.tmp-*")):
            return
        if proc.poll() is not None:
            raise AssertionError(f"train ended early ({proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("train never started writing")


def _final_lines(err: str) -> list[str]:
    """stderr less the progress lines (timestamped when stderr is not a terminal); no traceback."""
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.strip() and not re.match(r"\d\d:\d\d:\d\d ", line)]


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_train_stopped_by_a_signal_exits_with_its_code_and_leaves_nothing(data, tmp_path, sig, code, word):
    out = tmp_path / "model"
    proc = _start(["train", data, "--out", out, *SLOW])
    _wait_for_tmp(out, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert _final_lines(err) == [f"earshot: {word}" + (" (SIGTERM)" if sig == signal.SIGTERM else "")], err
    assert _leftovers(out) == [] and not out.exists()


@pytest.mark.slow
def test_a_second_train_into_the_same_folder_refuses(data, tmp_path):
    out = tmp_path / "model"
    first = _start(["train", data, "--out", out, *SLOW])
    try:
        _wait_for_tmp(out, first)
        second = _start(["train", data, "--out", out, "--epochs", "1", "--n-mels", "32"])
        _, err = second.communicate(timeout=120)
        assert second.returncode == 1
        (line,) = _final_lines(err)
        assert "another earshot is writing" in line and str(out) in line, err
        assert first.poll() is None  # the first one goes on
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert first.returncode == 143 and _leftovers(out) == []


def test_the_lock_is_exclusive_released_and_removed(tmp_path):
    target = tmp_path / "m"
    with target_lock(target) as lock:
        assert lock.exists()
        code = subprocess.run([sys.executable, "-c", "import sys; from earshot._util.fs import target_lock\n"
                               f"with target_lock({str(target)!r}): pass"], capture_output=True, text=True)
        assert code.returncode != 0 and "another earshot is writing" in code.stderr
    assert not lock.exists()
    with atomic_dir(target) as tmp:  # free again
        (tmp / "x").write_text("1")
    assert (target / "x").read_text() == "1" and sorted(os.listdir(tmp_path)) == ["m"]


def test_a_command_that_raises_exit_keeps_its_code(monkeypatch):
    """main() no longer drops what Typer returns (it dropped the 130 of Ctrl-C)."""
    cli = sys.modules["earshot.cli.app"]
    monkeypatch.setattr(cli, "app_for", lambda verb=None: lambda **kw: 130)
    assert main(["info"]) == 130
    monkeypatch.setattr(cli, "app_for", lambda verb=None: lambda **kw: 3)
    assert main(["info"]) == 3
