"""The channel rule (``--channels mean|N|all``): fusion, bundle round trip, torch-free scoring, bad values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earshot.bundle import Bundle, save_bundle
from earshot.detection import make_detector
from earshot.errors import BundleError, ParameterError
from earshot.features import FeatureConfig, log_mel
from earshot.features.cache import config_key
from earshot.features.extract import file_log_mel, fused_log_mel
from earshot.io.channels import ALL_CHANNELS, channel_rule, load_channels

from helpers.cli import one_line_error, run

SR = 16000
CFG = FeatureConfig(n_mels=32)


def _stereo(rng: np.random.Generator, seconds: float = 1.0, fault: bool = False) -> np.ndarray:
    """Two microphones: a hum on the first, noise plus an (optional) tone on the second, out of phase."""
    t = np.arange(int(seconds * SR)) / SR
    hum = 0.3 * np.sin(2 * np.pi * 120 * t)
    noise = 0.05 * rng.standard_normal(t.size)
    second = -hum + noise + (0.2 * np.sin(2 * np.pi * 3000 * t) if fault else 0.0)
    return np.stack([hum + 0.01 * rng.standard_normal(t.size), second], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def stereo_data(tmp_path_factory) -> Path:
    """fan/id_00: 8 normal + 3 abnormal two-channel clips of 1 s."""
    root = tmp_path_factory.mktemp("stereo")
    rng = np.random.default_rng(0)
    for label, n in (("normal", 8), ("abnormal", 3)):
        folder = root / "fan" / "id_00" / label
        folder.mkdir(parents=True)
        for i in range(n):
            sf.write(folder / f"{label}_{i:02d}.wav", _stereo(rng, fault=label == "abnormal"), SR, subtype="PCM_16")
    return root


def test_fusion_is_the_mean_of_channel_mel_power(stereo_data):
    path = next((stereo_data / "fan" / "id_00" / "normal").glob("*.wav"))
    Y, sr = load_channels(path, sr=SR)
    assert Y.shape == (2, SR) and sr == SR
    per_channel = [log_mel(Y[c], CFG) for c in range(2)]
    expected = 10 * np.log10(np.mean([10 ** (p.astype(np.float64) / 10) for p in per_channel], axis=0))
    fused = file_log_mel(path, CFG, channel=ALL_CHANNELS)
    assert fused.shape == per_channel[0].shape and fused.dtype == np.float32
    np.testing.assert_allclose(fused, expected, atol=1e-3)
    # a mono signal is its plain log-mel; the waveform mean (hum and -hum cancel) is another thing
    np.testing.assert_array_equal(fused_log_mel(Y[0], CFG), per_channel[0])
    assert np.abs(file_log_mel(path, CFG) - fused).max() > 3.0


def test_channel_rule_values():
    assert channel_rule(None) is None and channel_rule("mean") is None
    assert channel_rule("all") == "all" and channel_rule("3") == 3 and channel_rule(0) == 0
    for bad in ("foo", "-1", -1, 1.5, True, "ALL"):
        with pytest.raises(ParameterError, match="^channels: expected 'mean', 'all' or a channel number"):
            channel_rule(bad)
    assert config_key(CFG, "all") != config_key(CFG, None) != config_key(CFG, 0)


def test_out_of_range_channel_names_the_file(stereo_data):
    path = next((stereo_data / "fan" / "id_00" / "normal").glob("*.wav"))
    with pytest.raises(ParameterError, match=r"channel=9 is out of range: the file has 2 channels"):
        file_log_mel(path, CFG, channel=9)


def _bundle(tmp_path: Path, stereo_data: Path) -> tuple[Path, list[Path]]:
    files = sorted((stereo_data / "fan" / "id_00").rglob("*.wav"))
    normals = [p for p in files if p.parent.name == "normal"]
    det = make_detector("gauss").fit([file_log_mel(p, CFG, channel=ALL_CHANNELS) for p in normals])
    path = save_bundle(tmp_path / "model", det, features=CFG, channel=ALL_CHANNELS,
                       training={"group": "fan/id_00", "group_by": "id"})
    return path, files


def test_bundle_records_the_rule_and_scores_torch_free(tmp_path, stereo_data):
    path, files = _bundle(tmp_path, stereo_data)
    manifest = json.loads(next(Path(path).rglob("manifest.json")).read_text())
    assert manifest["features"]["channel"] == "all"
    bundle_dir = next(Path(path).rglob("manifest.json")).parent
    b = Bundle(bundle_dir)
    assert b.channel == "all"
    scores = b.score_files(files)
    expected = b.score_samples([file_log_mel(p, CFG, channel=ALL_CHANNELS) for p in files])
    np.testing.assert_allclose(scores, expected)
    code = (
        "import sys\n"
        "from earshot.bundle import load_model\n"
        f"m = load_model({str(path)!r})\n"
        "b = m.bundles[m.groups[0]]\n"
        f"s = b.score_files([{str(files[0])!r}])\n"
        "assert s.shape == (1,) and b.channel == 'all'\n"
        "bad = [k for k in sys.modules if k.split('.')[0] in ('torch', 'matplotlib', 'sklearn')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_bad_rule_in_a_manifest_is_a_bundle_error(tmp_path, stereo_data):
    path, _ = _bundle(tmp_path, stereo_data)
    mpath = next(Path(path).rglob("manifest.json"))
    m = json.loads(mpath.read_text())
    m["features"]["channel"] = "left"
    mpath.write_text(json.dumps(m))
    with pytest.raises(BundleError, match="features.channel: expected 'mean', 'all'"):
        Bundle(mpath.parent)


def test_streaming_and_waveform_export_refuse_a_fused_model(tmp_path, stereo_data):
    from earshot.bundle.export import export_model
    from earshot.pipeline.detect import detect_file

    path, files = _bundle(tmp_path, stereo_data)
    with pytest.raises(ParameterError, match=r"^detect: the model fuses all channels \(channels=all\)"):
        detect_file(Bundle(next(Path(path).rglob("manifest.json")).parent), files[0])
    with pytest.raises(ParameterError, match=r"^export --waveform: the model fuses all channels"):
        export_model(path, tmp_path / "edge", front_end="waveform")


def test_cli_train_channels_all_and_bad_values(tmp_path, stereo_data, capsys):
    out = tmp_path / "m"
    code, _, err = run(["train", stereo_data, "--out", out, "--model", "gauss", "--channels", "all"], capsys)
    assert code == 0, err
    manifest = json.loads(next(out.rglob("manifest.json")).read_text())
    assert manifest["features"]["channel"] == "all"
    code, stdout, err = run(["score", out, stereo_data / "fan" / "id_00" / "abnormal", "--format", "csv"], capsys)
    assert code == 0, err
    assert len(stdout.strip().splitlines()) == 4
    one_line_error(*run(["train", stereo_data, "--out", tmp_path / "x", "--channels", "foo"], capsys)[::2],
                   "--channels", "'foo'")
    one_line_error(*run(["train", stereo_data, "--out", tmp_path / "x", "--model", "gauss", "--channels", "9"],
                        capsys)[::2], "channel=9 is out of range", "2 channels")
    one_line_error(*run(["train", stereo_data, "--out", tmp_path / "x", "--channel", "0", "--channels", "1"],
                        capsys)[::2], "--channel 0 and --channels 1")


def test_service_decodes_and_scores_every_channel(tmp_path, stereo_data):
    from types import SimpleNamespace

    from earshot.service.audio import decode, score_audio, spectrogram_png

    path, files = _bundle(tmp_path, stereo_data)
    b = Bundle(next(Path(path).rglob("manifest.json")).parent)
    y = decode(files[0], label="upload", sr=SR, channel=b.channel)
    assert y.shape == (2, SR)
    out = score_audio(y, SimpleNamespace(bundle=b, name="fan"), label="upload")
    assert out["score"] == pytest.approx(b.score_files([files[0]])[0], rel=1e-6)
    with pytest.raises(ValueError, match="scores whole clips"):  # a gauss model has no timeline (issue 15, item 12)
        score_audio(y, SimpleNamespace(bundle=b, name="fan"), label="upload", timeline_window_s=0.5)
    assert spectrogram_png(y, SR).startswith(b"\x89PNG")
