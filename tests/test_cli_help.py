"""Small things of the command line: `train --help` lists the model kinds, usage lines name
every argument alike, `info` shows a best epoch only for models that have epochs, and
`evaluate` says why an AUC is undefined."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import typer.main

from earshot.cli.app import app, main
from earshot.cli.commands import MODULES
from earshot.cli.train import MODEL_KINDS
from earshot.detection import DETECTORS

from helpers.cli import run
from helpers.datasets import write_hum_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """fan/id_00, 12 normal + 3 abnormal clips of 2 s."""
    return write_hum_dataset(tmp_path_factory.mktemp("data"), np.random.default_rng(0), n_normal=12, n_abnormal=3)


@pytest.fixture(scope="module")
def gauss_model(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "gauss"
    assert main(["--quiet", "train", str(data), "--out", str(out), "--model", "gauss", "--n-mels", "32"]) == 0
    return out


def test_train_help_lists_the_registry_kinds(capsys):
    assert MODEL_KINDS == tuple(DETECTORS)  # written out in the CLI for a fast --help; kept equal here
    code, out, _ = run(["train", "--help"], capsys)
    flat = " ".join(out.split())
    assert code == 0 and " | ".join(DETECTORS) in flat, flat


def test_usage_lines_name_every_argument_in_capitals(capsys):
    names = typer.main.get_command(app).commands
    for name in names:
        code, out, _ = run([name, "--help"], capsys)
        usage = next(line for line in out.splitlines() if line.startswith("Usage:"))
        args = re.findall(r"[{\[]([^}\]]+)[}\]]", usage.split(name, 1)[1])
        for arg in args:
            if arg != "OPTIONS":
                assert re.sub(r"[^A-Za-z]", "", arg).isupper(), (name, usage)


def test_a_verb_runs_alone_yet_help_and_errors_see_every_verb(capsys):
    """`earshot VERB` registers VERB's module only (start-up speed): the root help, --help given
    before a verb, and an unknown verb still see every verb; root options may come before it."""
    commands = re.compile(r"^  ([a-z]+)  ", re.M)
    code, out, _ = run(["--help"], capsys)
    assert code == 0 and commands.findall(out) == MODULES, out
    code, out, _ = run(["--help", "score"], capsys)
    assert code == 0 and commands.findall(out) == MODULES, out
    code, out, _ = run(["-q", "-v", "score", "--help"], capsys)
    assert code == 0 and out.startswith("Usage: earshot score [OPTIONS] {MODEL} {FILE}"), out
    code, _, err = run(["-q", "scroe"], capsys)
    assert code == 2 and "No such command 'scroe'" in err, err


def test_info_without_epochs_shows_no_best_epoch(gauss_model, capsys):
    code, out, _ = run(["info", gauss_model], capsys)
    assert code == 0 and "fan/id_00" in out and "cross-fit" in out
    assert "None" not in out and "best epoch" not in out, out


@pytest.mark.usefixtures("one_torch_thread")
def test_info_with_epochs_shows_the_best_epoch(data, tmp_path, capsys):
    code, _, err = run(["-q", "train", data, "--out", tmp_path / "ae", "--epochs", "2", "--n-mels", "16"], capsys)
    assert code == 0, err
    code, out, _ = run(["info", tmp_path / "ae"], capsys)
    assert code == 0 and "best epoch" in out and "None" not in out, out


def test_evaluate_says_why_an_auc_is_undefined(gauss_model, data, tmp_path, capsys):
    only_faults = tmp_path / "faults"
    shutil.copytree(data / "fan" / "id_00" / "abnormal", only_faults / "fan" / "id_00" / "abnormal")
    code, out, err = run(["-q", "evaluate", gauss_model, only_faults], capsys)
    assert code == 0, err
    assert "fan/id_00: AUC n/a, pAUC n/a: 0 normal test clips (3 anomaly)" in out, out
    code, out, _ = run(["-q", "evaluate", gauss_model, data], capsys)
    assert code == 0 and "AUC n/a" not in out, out
