"""Batch scoring to a file: the folder walk, streaming CSV/Parquet, resume after a kill, errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from earshot.pipeline.batch import FILE_FIELDS, iter_scores, read_done, score_to_file, walk_audio
from earshot.cli.app import main
from earshot.errors import ParameterError
from helpers.scale import read_rows, tiny_data, tiny_model


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_data(tmp_path_factory)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_model(tmp_path_factory)


@pytest.fixture(scope="module")
def reference(model, data, tmp_path_factory):
    """An uninterrupted serial run: path -> row."""
    out = tmp_path_factory.mktemp("ref") / "ref.csv"
    score_to_file(model, [data], out, executor="serial", batch_size=4)
    return {r["path"]: r for r in read_rows(out)}


# ---------------------------------------------------------------------- the walk
def test_walk_is_sorted_skips_hidden_and_overlapping_arguments(tmp_path):
    for rel in ("b/2.wav", "b/1.WAV", "a/x.flac", "a/notes.txt", ".hidden/h.wav", "a/.h.wav", "c.wav"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).touch()
    got = [p.relative_to(tmp_path).as_posix() for p in walk_audio([tmp_path, tmp_path / "b", tmp_path / "c.wav"])]
    assert got == ["c.wav", "a/x.flac", "b/1.WAV", "b/2.wav"]
    with pytest.raises(ParameterError, match="no such file or folder"):
        list(walk_audio([tmp_path / "missing"]))


# ---------------------------------------------------------------------- writing and resuming
def test_streams_every_file_once_with_absolute_paths(reference, data):
    files = sorted(str(p) for p in Path(data).rglob("*.wav"))
    assert sorted(reference) == files
    row = reference[files[0]]
    assert set(row) == set(FILE_FIELDS) and row["error"] == "" and row["is_anomalous"] in ("True", "False")
    assert all(float(r["score"]) > 0 for r in reference.values())


def test_rerun_skips_what_is_done(model, data, tmp_path, reference):
    out = tmp_path / "r.csv"
    first = score_to_file(model, [data / "fan/id_00"], out, executor="serial", batch_size=4)
    assert first.scored == 16 and first.skipped == 0
    second = score_to_file(model, [data], out, executor="serial", batch_size=4)
    assert second.scored == 16 and second.skipped == 16
    again = score_to_file(model, [data], out, executor="serial", batch_size=4)
    assert again.scored == 0 and again.skipped == 32
    rows = read_rows(out)
    assert len(rows) == 32 and len({r["path"] for r in rows}) == 32
    assert {r["path"]: r["score"] for r in rows} == {p: r["score"] for p, r in reference.items()}


def test_partial_last_line_is_cut_and_rescored(model, data, tmp_path, reference):
    out = tmp_path / "r.csv"
    score_to_file(model, [data / "fan/id_02"], out, executor="serial", batch_size=4)
    text = out.read_bytes()
    out.write_bytes(text[: len(text) - 25])  # a run killed in the middle of writing a row
    res = score_to_file(model, [data], out, executor="serial", batch_size=4)
    rows = read_rows(out)
    assert res.skipped == 15 and res.scored == 17
    assert len(rows) == 32 and {r["path"]: r["score"] for r in rows} == {p: r["score"] for p, r in reference.items()}


def test_foreign_or_other_model_output_is_refused(model, data, tmp_path, tmp_path_factory):
    out = tmp_path / "r.csv"
    out.write_text("a,b\n1,2\n")
    with pytest.raises(ParameterError, match="header"):
        score_to_file(model, [data], out, executor="serial")
    assert out.read_text() == "a,b\n1,2\n"  # untouched
    score_to_file(model, [data / "fan/id_00/normal"], out.with_name("ok.csv"), executor="serial")
    text = out.with_name("ok.csv").read_text().splitlines()
    header, first = text[0], text[1].split(",")
    first[3] = "0.5"  # another model's threshold
    out.write_text(header + "\n" + ",".join(first) + "\n")
    with pytest.raises(ParameterError, match="another model"):
        score_to_file(model, [data], out, executor="serial")


def test_bad_files_get_an_error_row_and_the_run_goes_on(model, data, tmp_path):
    folder = tmp_path / "in"
    shutil.copytree(data / "fan/id_00/normal", folder / "fan/id_00/normal")
    (folder / "fan/id_00/normal/broken.wav").write_bytes(b"RIFF....not audio")
    out = tmp_path / "r.csv"
    res = score_to_file(model, [folder], out, executor="serial", batch_size=3)
    rows = {Path(r["path"]).name: r for r in read_rows(out)}
    assert res.errors == 1 and res.scored == 13 and len(rows) == 13
    assert rows["broken.wav"]["score"] == "" and "broken.wav" in rows["broken.wav"]["error"]
    assert all(r["error"] == "" for n, r in rows.items() if n != "broken.wav")
    with pytest.raises(Exception, match="broken.wav"):  # without a file, the first bad file is an error
        [r for b in iter_scores(model, [folder], executor="serial") for r in b]


def test_parquet_output_and_resume(model, data, tmp_path, reference):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "r.parquet"
    score_to_file(model, [data / "fan/id_00"], out, executor="serial", batch_size=4)
    assert out.exists() and not (tmp_path / ".r.parquet.partial.csv").exists()
    res = score_to_file(model, [data], out, executor="serial", batch_size=4)
    assert res.skipped == 16 and res.scored == 16
    table = pq.read_table(out)
    assert table.column_names == list(FILE_FIELDS) and table.num_rows == 32
    got = dict(zip(table.column("path").to_pylist(), table.column("score").to_pylist()))
    assert got == {p: float(r["score"]) for p, r in reference.items()}
    assert len(read_done(out)) == 32


# ---------------------------------------------------------------------- killed mid-run
def _many_files(data: Path, root: Path, copies: int) -> Path:
    """``copies`` hard-linked copies of the data set (distinct paths, no extra disk)."""
    for c in range(copies):
        for src in data.rglob("*.wav"):
            dst = root / f"copy{c:02d}" / src.relative_to(data)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.link(src, dst)
    return root


@pytest.mark.parametrize("executor", ["serial", "processes"])
def test_killed_run_resumes_without_duplicates_or_losses(model, data, tmp_path, reference, executor):
    root = _many_files(data, tmp_path / "many", copies=12)  # 384 files
    out = tmp_path / "r.csv"
    cmd = [sys.executable, "-m", "earshot.cli", "score", str(model), str(root), "--out", str(out),
           "--executor", executor, "--workers", "2", "--batch-size", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") > 40:
            break
        time.sleep(0.01)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()}"
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its workers
    proc.wait()
    partial = out.read_bytes().count(b"\n") - 1
    assert 0 < partial < 384
    code = main(["score", str(model), str(root), "--out", str(out), "--executor", "serial", "--batch-size", "8"])
    assert code == 0
    rows = read_rows(out)
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)) == 384  # nothing duplicated, nothing lost
    by_name = {p: r["score"] for p, r in reference.items()}
    for r in rows:  # each copy scores like its original
        copy_rel = Path(r["path"]).relative_to(root)
        original = str(data / Path(*copy_rel.parts[1:]))
        assert r["score"] == by_name[original] and r["error"] == ""


# ---------------------------------------------------------------------- command line
def test_cli_folder_in_both_modes(model, data, tmp_path, capsys, reference):
    code = main(["score", str(model), str(data / "fan/id_02"), "--executor", "serial"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0 and len(rows) == 16 and set(rows[0]) == {"path", "group", "score", "threshold", "is_anomalous"}
    assert rows[0]["path"] == str(data / "fan/id_02/abnormal/00000000.wav")
    assert [r["score"] for r in rows] == [float(reference[r["path"]]["score"]) for r in rows]
    out = tmp_path / "sub" / "r.csv"
    code = main(["score", str(model), str(data), "--out", str(out), "--executor", "serial"])
    text = capsys.readouterr().out
    assert code == 0 and "scored 32 files" in text and len(read_rows(out)) == 32
    code = main(["score", str(model), str(data), "--out", str(out), "--executor", "serial"])
    assert code == 0 and "skipped 32 already in the output" in capsys.readouterr().out


def test_cli_bad_out_is_one_line(model, data, tmp_path, capsys):
    for target, needle in ((tmp_path / "r.txt", ".csv or .parquet"), (tmp_path, "expected a file")):
        code = main(["score", str(model), str(data), "--out", str(target)])
        err = capsys.readouterr().err
        assert code == 1 and len(err.splitlines()) == 1 and needle in err
