"""`earshot explore`: summary counts, silence and clipping checks, pictures, bad input."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earshot.cli.app import main
from earshot.errors import DatasetError, ParameterError
from earshot.reports.explore import check_clip, explore

from helpers.signals import SR, tone

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """fan/id_00 (mono): 4 normal + 1 all-zero normal, 2 abnormal + 1 clipped abnormal;
    fan/id_02 (2 channels): 3 normal + 2 abnormal."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    d = root / "fan" / "id_00"
    (d / "normal").mkdir(parents=True)
    (d / "abnormal").mkdir(parents=True)
    for i in range(4):
        sf.write(d / "normal" / f"{i:08d}.wav", tone(rng), SR, subtype="PCM_16")
    sf.write(d / "normal" / "00000009.wav", np.zeros(SR // 2, np.float32), SR, subtype="PCM_16")
    for i in range(2):
        sf.write(d / "abnormal" / f"{i:08d}.wav", tone(rng, freq=3000), SR, subtype="PCM_16")
    sf.write(d / "abnormal" / "00000009.wav", np.clip(tone(rng, amp=3.0), -1, 1), SR, subtype="PCM_16")
    d = root / "fan" / "id_02"
    for label, n, freq in (("normal", 3, 200), ("abnormal", 2, 3000)):
        (d / label).mkdir(parents=True)
        for i in range(n):
            sf.write(d / label / f"{i:08d}.wav", tone(rng, freq=freq, channels=2), SR, subtype="PCM_16")
    return root


@pytest.fixture(scope="module")
def explored(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("x") / "pictures"
    return out, explore(data, out, max_clips=50, n_mels=32)


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_MAGIC and head[12:16] == b"IHDR", path
    return struct.unpack(">II", head[16:24])


def test_summary_counts(explored):
    out, summary = explored
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["n_clips"] == 13 and summary["labels"] == {"normal": 8, "anomaly": 5, "unknown": 0}
    g0, g2 = summary["groups"]["fan/id_00"], summary["groups"]["fan/id_02"]
    assert g0["labels"] == {"normal": 5, "anomaly": 3, "unknown": 0} and g0["channels"] == {"1": 8}
    assert g2["labels"] == {"normal": 3, "anomaly": 2, "unknown": 0} and g2["channels"] == {"2": 5}
    assert g0["sr"] == {"16000": 8} and g0["duration_s"]["min"] == g0["duration_s"]["max"] == 0.5
    assert g0["checked"] == 8 and g2["checked"] == 5


def test_silent_and_clipping_clips_are_flagged(explored, data):
    _, summary = explored
    silent = str(data / "fan/id_00/normal/00000009.wav")
    clipped = str(data / "fan/id_00/abnormal/00000009.wav")
    assert summary["problems"]["silent"] == [silent]
    assert summary["problems"]["clipping"] == [clipped]
    assert summary["groups"]["fan/id_02"]["silent"] == [] == summary["groups"]["fan/id_02"]["clipping"]


def test_check_clip_levels():
    assert check_clip(np.zeros((100, 2), np.float32))["silent"]
    loud = check_clip(np.full((1000, 1), 0.5, np.float32))
    assert not loud["silent"] and not loud["clipping"] and abs(loud["peak_dbfs"] + 6.02) < 0.01
    one_peak = np.zeros((100000, 1), np.float32)
    one_peak[10] = 1.0  # a single full-scale sample is a peak-normalised clip, not clipping
    assert not check_clip(one_peak)["clipping"]


def test_index_and_pictures(explored):
    out, summary = explored
    html = (out / "index.html").read_text(encoding="utf-8")
    referenced = re.findall(r"src='([^']+\.png)'", html)
    assert referenced and all((out / name).exists() for name in referenced)
    images0 = summary["groups"]["fan/id_00"]["images"]
    images2 = summary["groups"]["fan/id_02"]["images"]
    assert set(images0) == {"waveforms", "spectrograms", "mean_spectrum"}  # mono: no channel picture
    assert set(images2) == {"waveforms", "spectrograms", "mean_spectrum", "channel_energy"}
    for name in [*images0.values(), *images2.values(), "clip-counts.png"]:
        width, height = _png_size(out / name)
        assert 300 <= width <= 2000 and 150 <= height <= 2000
    assert "silent (1)" in html and "clipping (1)" in html
    assert not list(out.glob(".*tmp*"))  # atomic writes leave no temporary file


def test_max_clips_bounds_the_decoding(data, tmp_path):
    summary = explore(data, tmp_path / "x", max_clips=1, n_examples=1, n_mels=32)
    assert summary["groups"]["fan/id_00"]["checked"] == 2  # one per label
    assert summary["groups"]["fan/id_00"]["n_clips"] == 8


def test_bad_parameters():
    with pytest.raises(ParameterError, match="max_clips"):
        explore(".", "x", max_clips=0)
    with pytest.raises(DatasetError):
        explore("/no/such/folder", "x")


def test_cli(data, tmp_path, capsys):
    code = main(["explore", str(data), "--out", str(tmp_path / "p"), "--max-clips", "2", "--n-mels", "32"])
    captured = capsys.readouterr()
    assert code == 0 and "fan/id_00" in captured.out and (tmp_path / "p" / "index.html").exists()
    assert "silent" in captured.err and "00000009.wav" in captured.err


@pytest.mark.parametrize("args", [["/no/such/folder"], ["{data}", "--max-clips", "0"]])
def test_cli_bad_input_is_one_line(data, tmp_path, capsys, args):
    args = [a.replace("{data}", str(data)) for a in args]
    code = main(["explore", *args, "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1 and err.startswith("earshot: error:")
    assert not (tmp_path / "p").exists()


def test_unreadable_clip_is_listed_not_fatal(tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "data" / "pump" / "normal"
    folder.mkdir(parents=True)
    sf.write(folder / "good.wav", tone(rng), SR)
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00garbage")
    summary = explore(tmp_path / "data", tmp_path / "out", n_mels=32)
    (bad,) = summary["problems"]["unreadable"]
    assert bad["path"].endswith("broken.wav") and "broken.wav" in bad["error"]
    assert summary["groups"]["pump"]["checked"] == 1 and (tmp_path / "out" / "index.html").exists()
