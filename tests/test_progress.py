"""Progress on stderr: plain timestamped lines when stderr is not a terminal (logs, CI), none
with ``earshot --quiet``; and the rate limit of those lines, on a fake clock."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

from earshot.cli.common import ProgressLines

from helpers.cli import PROGRESS_LINE as LINE
from helpers.cli import run
from helpers.datasets import write_hum_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """fan/id_00, 12 normal + 3 abnormal clips of 2 s."""
    return write_hum_dataset(tmp_path_factory.mktemp("data"), np.random.default_rng(0), n_normal=12, n_abnormal=3)


def progress_lines(err: str) -> list[re.Match]:
    return [m for m in map(LINE.match, err.splitlines()) if m]


def test_train_and_evaluate_write_timestamped_lines_when_stderr_is_not_a_terminal(data, tmp_path, capsys):
    code, _, err = run(["train", data, "--out", tmp_path / "m", "--model", "gauss", "--n-mels", "32"], capsys)
    assert code == 0, err
    stages = [m["stage"] for m in progress_lines(err)]
    assert any(s.startswith("discovering") for s in stages), err
    assert any(s.endswith("features") for s in stages) and any(s.endswith("training") for s in stages), err
    # every step has a start and an end line, and the end line says how long it took
    for stage in set(stages):
        counts = [m for m in progress_lines(err) if m["stage"] == stage]
        assert "done in" in counts[-1]["rest"], (stage, err)
    code, _, err = run(["evaluate", tmp_path / "m", data], capsys)
    assert code == 0 and any(m["stage"] == "evaluating" for m in progress_lines(err)), err


@pytest.mark.slow
def test_training_lines_carry_the_epoch_and_its_loss(data, tmp_path, capsys, one_torch_thread):
    code, _, err = run(["train", data, "--out", tmp_path / "m", "--epochs", "2", "--n-mels", "32"], capsys)
    assert code == 0, err
    training = [m for m in progress_lines(err) if m["stage"].endswith("training")]
    assert training[-1]["count"] == "2/2" and re.search(r"epoch 2 loss [\d.e+-]+", training[-1]["rest"]), err


def test_quiet_silences_progress(data, tmp_path, capsys):
    code, _, err = run(["--quiet", "train", data, "--out", tmp_path / "m", "--model", "gauss", "--n-mels", "32"], capsys)
    assert code == 0 and progress_lines(err) == [] and "earshot:" not in err, err
    code, _, err = run(["-q", "evaluate", tmp_path / "m", data], capsys)
    assert code == 0 and progress_lines(err) == [], err


def test_lines_are_rate_limited_per_step_with_first_and_last_always_shown():
    now = [0.0]
    buf = io.StringIO()
    lines = ProgressLines(every_s=5.0, clock=lambda: now[0], stream=buf)
    for i in range(1, 101):  # 100 files, 0.2 s each: 20 s
        now[0] = i * 0.2
        lines("features", i, 100)
    lines.note("training", "epoch 1 loss 0.5")
    lines("training", 1, 3)
    got = [LINE.match(x) for x in buf.getvalue().splitlines()]
    assert all(got), buf.getvalue()
    features = [m["count"] for m in got if m["stage"] == "features"]
    # the first, one every 5 s (at 5.2, 10.2, 15.2 s), the last
    assert features == ["1/100", "26/100", "51/100", "76/100", "100/100"], features
    assert got[-1]["stage"] == "training" and got[-1]["rest"] == "; epoch 1 loss 0.5"
    now[0] = 30.0
    lines("features", 1, 100)  # the same step again (another model): starts over with a first line
    assert buf.getvalue().splitlines()[-1].endswith("features: 1/100")
