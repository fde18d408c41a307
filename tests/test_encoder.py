"""`--model encoder`: a user-supplied ONNX encoder + per-domain k-NN, trained, saved, scored
torch-free and exported like the other detectors (the encoder is built here; nothing is downloaded)."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earshot.bundle import Bundle, load_detector
from earshot.cli.app import main
from earshot.detection import make_detector
from earshot.errors import ParameterError
from earshot.features import FeatureConfig
from helpers.encoder import tiny_encoder
from helpers.spectra import sloped_clips

pytest.importorskip("onnx")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_MELS = 32


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    return tiny_encoder(tmp_path_factory.mktemp("encoder"), n_mels=N_MELS)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from earshot.synth import synthesize

    root = tmp_path_factory.mktemp("encdata") / "data"
    synthesize(root, machines=("fan",), n_ids=1, n_normal=12, n_abnormal=3, duration_s=1.0, seed=5, n_jobs=1)
    return root


@pytest.fixture(scope="module")
def model(data, encoder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("encmodel") / "model"
    code = main(["train", str(data), "--out", str(out), "--model", "encoder", "--param", f"encoder={encoder}",
                 "--n-mels", str(N_MELS), "--group-by", "none"])
    assert code == 0
    return out


_clips = functools.partial(sloped_clips, n_mels=N_MELS)


def _wavs(data: Path, folder: Path) -> tuple[Path, Path]:
    """A normal test recording and the same with a loud 1 kHz tone (an obvious anomaly)."""
    normal = min(p for p in data.rglob("*.wav") if "normal" in p.parts and "test" in str(p))
    y, sr = sf.read(normal, dtype="float32")
    t = np.arange(len(y)) / sr
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / "normal.wav", y, sr)
    sf.write(folder / "tone.wav", np.clip(y + 0.5 * np.sin(2 * np.pi * 1000.0 * t), -1, 1), sr)
    return folder / "normal.wav", folder / "tone.wav"


def _score_torch_free(model: Path, files: list[Path]) -> list[float]:
    """Scores of ``files`` by the bundle ``model`` in a fresh interpreter that must load no torch,
    onnx or matplotlib."""
    code = (
        "import sys, json\n"
        "from earshot.bundle import Bundle\n"
        f"b = Bundle({str(model)!r})\n"
        f"s = b.score_files({[str(f) for f in files]!r})\n"
        "bad = [k for k in sys.modules if k.split('.')[0] in ('torch', 'onnx', 'matplotlib')]\n"
        "assert not bad, bad\n"
        "print(json.dumps([float(v) for v in s]))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return json.loads(run.stdout)


def test_bundle_scores_torch_free_and_separates_an_obvious_anomaly(model, data, tmp_path):
    normal, tone = _wavs(data, tmp_path / "wav")
    scores = _score_torch_free(model, [normal, tone])
    bundle = Bundle(model)
    assert bundle.kind == "encoder" and bundle.manifest["fitted"]["contract"]["input_name"] == "fbank"
    assert scores[1] > bundle.threshold_ > 0 and scores[1] > 5 * scores[0]
    np.testing.assert_allclose(scores, bundle.score_files([normal, tone]), rtol=1e-6)


def test_one_scoring_path_matches_the_numpy_head(model, data):
    """The bundle's graph, the reloaded detector and the numpy k-NN on the embeddings agree."""
    from earshot.detection.encoder_graph import onnx_session, scoring_graph

    bundle = Bundle(model)
    clips = [bundle.extract(p) for p in sorted(data.rglob("*.wav"))[:6]]
    det = load_detector(model)
    onnx_scores = bundle.score_samples(clips)
    np.testing.assert_allclose(det.score_samples(clips), onnx_scores, rtol=1e-6)
    embedder = onnx_session(scoring_graph(det.encoder_, det.contract_), "embedder")
    E = np.concatenate([embedder.run(None, {"logmel": c.T[None].astype(np.float32)})[0] for c in clips]).astype(float)
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    np.testing.assert_allclose(onnx_scores, det.knn_.score(E), rtol=1e-3, atol=1e-3)
    assert det.threshold_ == bundle.threshold_ and det.threshold_source_ == "cross-fit"


def test_per_domain_references(encoder, rng):
    """A few target-domain clips with another spectrum get their own references and scale."""
    target_base = np.linspace(-40, -50, N_MELS, dtype=np.float32)[:, None]
    X = _clips(rng, 12) + _clips(rng, 3, base=target_base)
    meta = [{"domain": "source"}] * 12 + [{"domain": "target"}] * 3
    det = make_detector("encoder", encoder=str(encoder), metric="euclidean").fit(X, metadata=meta)
    assert det.knn_.domains_ == ["source", "target"] and det.domain_counts_ == {"source": 12, "target": 3}
    new_target = det.score_samples(_clips(rng, 4, base=target_base))
    anomalies = det.score_samples(_clips(rng, 4, tone=slice(10, 14)))
    assert new_target.max() < 3.0 < anomalies.min()
    pooled = make_detector("encoder", encoder=str(encoder), metric="euclidean", selective=False).fit(X)
    assert pooled.knn_.domains_ == ["all"]


def _bad(encoder: Path, tmp_path: Path, change: dict) -> Path:
    spec = json.loads(encoder.with_suffix(".json").read_text())
    spec.update(change)
    spec = {k: v for k, v in spec.items() if v is not None}
    tmp_path.mkdir(parents=True, exist_ok=True)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(encoder.read_bytes())
    bad.with_suffix(".json").write_text(json.dumps(spec))
    return bad


@pytest.mark.parametrize(("change", "field"), [
    ({"output_name": None}, "output_name"),
    ({"input_kind": "waveform"}, "input_kind"),
    ({"input_kind": "spectrogram"}, "input_kind"),
    ({"input_name": "logmel"}, "input_name"),
    ({"output_name": "emb"}, "output_name"),
    ({"input_shape": ["batch", "n_mels", "n_time"]}, "input_shape"),
    ({"input_shape": ["batch", 1, "n_mels", "n_mels"]}, "input_shape"),
    ({"n_mels": 64}, "input_shape"),
    ({"sr": "16k"}, "sr"),
    ({"hop": 160}, "hop"),
])
def test_bad_contract_is_one_line_naming_file_and_field(encoder, tmp_path, rng, change, field):
    bad = _bad(encoder, tmp_path, change)
    with pytest.raises(ParameterError) as info:
        make_detector("encoder", encoder=str(bad)).fit(_clips(rng, 4))
    message = str(info.value)
    assert "\n" not in message and "bad.json" in message and field in message, message


def test_other_bad_encoders_are_one_line(encoder, tmp_path, rng, capsys):
    X = _clips(rng, 4)
    (tmp_path / "lonely.onnx").write_bytes(encoder.read_bytes())
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    (tmp_path / "junk.json").write_text(encoder.with_suffix(".json").read_text())
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "bad.onnx").write_bytes(encoder.read_bytes())
    cases = {"lonely.onnx": "no contract", "junk.onnx": "not a readable ONNX", "bad.onnx": "not valid JSON",
             "missing.onnx": "existing .onnx"}
    for name, what in cases.items():
        with pytest.raises(ParameterError, match=what) as info:
            make_detector("encoder", encoder=str(tmp_path / name)).fit(X)
        assert "\n" not in str(info.value)
    with pytest.raises(ParameterError, match="encoder: expected the path"):
        make_detector("encoder").fit(X)
    with pytest.raises(ParameterError, match="output_size"):
        make_detector("encoder", encoder=str(_bad(encoder, tmp_path / "size", {"output_size": 8}))).fit(X)
    with pytest.raises(ParameterError, match="min_frames"):
        make_detector("encoder", encoder=str(_bad(encoder, tmp_path / "min", {"min_frames": 9}))).fit(X)
    with pytest.raises(ParameterError, match="n_mels"):
        make_detector("encoder", encoder=str(encoder)).fit([c[:16] for c in X])


def test_features_must_match_the_contract(data, encoder, tmp_path, capsys):
    out = tmp_path / "model"
    code = main(["train", str(data), "--out", str(out), "--model", "encoder", "--param", f"encoder={encoder}",
                 "--n-mels", str(N_MELS), "--sr", "8000", "--group-by", "none"])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("earshot: error")]
    assert code == 1 and len(errors) == 1 and "enc.json: sr:" in errors[0] and "--sr 16000" in errors[0], errors
    assert not out.exists()
    features = FeatureConfig(n_mels=N_MELS, hop_length=256)
    det = make_detector("encoder", encoder=str(_bad(encoder, tmp_path, {"hop_length": 160})))
    det.fit(_clips(np.random.default_rng(1), 4))
    with pytest.raises(ParameterError, match="hop_length.*--hop-length 160"):
        det.scoring_graph(features)


def test_export_joins_the_front_end(model, data, tmp_path, capsys):
    import onnxruntime as ort

    out = tmp_path / "edge"
    assert main(["export", str(model), "--out", str(out)]) == 0, capsys.readouterr().err
    index = json.loads((out / "index.json").read_text())
    (entry,) = index["groups"].values()
    session = ort.InferenceSession(str(out / entry["onnx"]), providers=["CPUExecutionProvider"])
    bundle = Bundle(model)
    normal, tone = _wavs(data, tmp_path / "wav")
    for path in (normal, tone):
        y = sf.read(path, dtype="float32")[0]
        _, score = session.run(None, {"waveform": y[None]})
        assert score[0] == pytest.approx(bundle.score_files([path])[0], rel=1e-3, abs=1e-3)


def test_waveform_encoder_trains_saves_and_scores_torch_free(data, tmp_path, capsys):
    """A waveform-input encoder (Conv1d stack + mean pool): the bundle records that its graph
    takes the waveform, scores files torch-free through the same k-NN head, and refuses the
    log-mel-only paths (detect, export) in one line."""
    from helpers.encoder import tiny_waveform_encoder

    wenc = tiny_waveform_encoder(tmp_path / "wenc")
    model = tmp_path / "wmodel"
    assert main(["train", str(data), "--out", str(model), "--model", "encoder", "--param", f"encoder={wenc}",
                 "--group-by", "none"]) == 0, capsys.readouterr().err
    bundle = Bundle(model)
    scoring = bundle.manifest["scoring"]
    assert (scoring["input"], scoring["input_shape"], scoring["sr"], scoring["min_samples"]) == (
        "waveform", ["batch", "n_samples"], 16000, 64)
    assert bundle.manifest["fitted"]["contract"]["input_kind"] == "waveform" and not bundle.streams
    normal, tone = _wavs(data, tmp_path / "wav")
    scores = _score_torch_free(model, [normal, tone])
    assert scores[1] > bundle.threshold_ > 0 and scores[1] > 5 * scores[0], scores
    # the same path in-process, the reloaded detector on the same waveforms, and the numpy head
    det = load_detector(model)
    waves = [bundle.extract(normal), bundle.extract(tone)]
    assert waves[0].ndim == 1
    np.testing.assert_allclose(scores, bundle.score_samples(waves), rtol=1e-6)
    np.testing.assert_allclose(det.score_samples(waves), scores, rtol=1e-6)
    logmel = [np.zeros((N_MELS, 60), np.float32)]
    with pytest.raises(ParameterError, match="takes 1-D signals"):
        det.score_samples(logmel)
    with pytest.raises(ParameterError, match="takes waveforms"):
        bundle.score_samples(logmel)
    for argv, what in ((["detect", str(model), str(normal), "--out", str(tmp_path / "t")], "whole clips only"),
                       (["listen", str(model), "--input", str(normal), "--fast"], "takes waveforms"),
                       (["export", str(model), "--out", str(tmp_path / "edge")], "takes waveforms")):
        assert main(argv) != 0
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("earshot: error")]
        assert len(errors) == 1 and what in errors[0], errors
    assert not (tmp_path / "edge").exists()


def test_waveform_contract_fields(tmp_path, rng):
    """A waveform contract names n_samples and has no n_mels or log-mel settings."""
    from helpers.encoder import tiny_waveform_encoder

    wenc = tiny_waveform_encoder(tmp_path / "w")
    for change, field in (({"n_mels": 32}, "n_mels"), ({"hop_length": 160}, "hop_length"),
                          ({"input_shape": ["batch", "n_time", "n_mels"]}, "input_shape"),
                          ({"min_samples": 10 ** 6}, "min_samples")):
        bad = _bad(wenc, tmp_path / field, change)
        with pytest.raises(ParameterError) as info:
            make_detector("encoder", encoder=str(bad)).fit([rng.normal(0, 0.1, 8000) for _ in range(3)])
        assert "\n" not in str(info.value) and field in str(info.value), str(info.value)
