"""`earshot export`: ONNX graphs for the edge (waveform in, scores out) equal earshot's scoring."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earshot.bundle import load_model
from earshot.cli.app import main
from earshot.detection.aggregate import aggregate
from earshot.features import log_mel

from helpers.cli import one_line_error, run

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

QUICK = ["--epochs", "2", "--n-mels", "32"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Synthetic fans, 2 ids, 1 s clips (MIMII layout)."""
    from earshot.synth import synthesize

    root = tmp_path_factory.mktemp("export") / "data"
    synthesize(root, machines=("fan",), n_ids=2, n_normal=12, n_abnormal=3, duration_s=1.0, seed=3, n_jobs=1)
    return root


@pytest.fixture(scope="module")
def models(data, tmp_path_factory):
    """dense-ae (model set of 2 groups), gauss (a single bundle, clip-level), lstm-ae (aggregate max)."""
    root = tmp_path_factory.mktemp("models")
    out = {}
    for kind, extra in (("dense-ae", []), ("gauss", ["--group-by", "none"]), ("lstm-ae", ["--aggregate", "max"])):
        out[kind] = root / kind
        assert main(["train", str(data), "--out", str(out[kind]), "--model", kind, *QUICK, *extra]) == 0
    return out


def _nothing_left(folder: Path):
    assert not folder.exists()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.")]


def _fresh_audio(data: Path, sr: int, hop: int) -> np.ndarray:
    """Two recordings of the data (an abnormal and a normal clip) and one new signal, cut to a
    length that is not a multiple of the hop: (3, n_samples) float32."""
    clips = [sf.read(next(data.rglob(f"{label}/*.wav")), dtype="float32")[0] for label in ("abnormal", "normal")]
    n = min(len(c) for c in clips) - hop // 2 - 1
    assert n % hop
    t = np.arange(n) / sr
    rng = np.random.default_rng(7)
    new = 0.2 * np.sin(2 * np.pi * 317.0 * t) + 0.05 * rng.normal(size=n)
    return np.stack([clips[0][:n], clips[1][:n], new]).astype(np.float32)


def _session(path: Path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _close(got, want, bundle):
    """Within the export's tolerance: 1e-4 x max(|threshold|, max |score|)."""
    scale = max(abs(bundle.threshold_), float(np.max(np.abs(want))))
    assert np.max(np.abs(np.asarray(got, np.float64) - want)) <= 1e-4 * scale, (got, want)


@pytest.mark.parametrize("kind", ["dense-ae", "gauss", "lstm-ae"])
def test_waveform_graph_scores_like_the_bundle(kind, models, data, tmp_path, capsys):
    out = tmp_path / "edge"
    code, stdout, err = run(["export", models[kind], "--out", out], capsys)
    assert code == 0, err
    assert "max |diff|" in stdout and str(out) in stdout
    model = load_model(models[kind])
    index = json.loads((out / "index.json").read_text())
    assert sorted(index["groups"]) == model.groups and index["front_end"] == "waveform"
    for group, bundle in model.bundles.items():
        entry = index["groups"][group]
        session = _session(out / entry["onnx"])
        assert [i.name for i in session.get_inputs()] == ["waveform"]
        assert [o.name for o in session.get_outputs()] == ["window_scores", "score"]
        assert "DFT factorised as 64 x 16" in session.get_modelmeta().description  # not the dense Conv
        audio = _fresh_audio(data, bundle.features.sr, bundle.features.hop_length)
        ref_windows = bundle.window_scores([log_mel(y, bundle.features) for y in audio])
        ref_scores = bundle.score_samples([log_mel(y, bundle.features) for y in audio])
        # one clip at a time, then a batch of two equal-length clips
        for rows in ([0], [1], [2], [0, 2]):
            windows, scores = session.run(None, {"waveform": audio[rows]})
            assert scores.shape == (len(rows),) and windows.shape[0] == len(rows)
            for j, i in enumerate(rows):
                assert windows[j].shape == ref_windows[i].shape
                _close(windows[j], ref_windows[i], bundle)
                _close(scores[j], ref_scores[i], bundle)
                assert scores[j] == pytest.approx(aggregate(windows[j], bundle.aggregate), rel=1e-6)
        # the shortest waveform the contract allows is scored too
        n_min = json.loads((out / entry["contract"]).read_text())["audio"]["min_samples"]
        windows, scores = session.run(None, {"waveform": audio[:1, :n_min]})
        _close(scores, bundle.score_samples([log_mel(audio[0, :n_min], bundle.features)]), bundle)


def test_contract_is_complete(models, tmp_path, capsys):
    out = tmp_path / "edge"
    assert run(["export", models["dense-ae"], "--out", out], capsys)[0] == 0
    model = load_model(models["dense-ae"])
    assert len(model.groups) == 2
    for group, bundle in model.bundles.items():
        onnx_file = out / f"{bundle.path.name}.onnx"
        c = json.loads(onnx_file.with_suffix(".json").read_text())
        m = bundle.manifest
        assert c["group"] == group and c["source_bundle"] == str(bundle.path.resolve())
        assert c["earshot_version"] and c["model"]["kind"] == "dense-ae"
        assert c["onnx"]["file"] == onnx_file.name and c["onnx"]["opset"] == 17
        assert c["onnx"]["sha256"] == hashlib.sha256(onnx_file.read_bytes()).hexdigest()
        assert c["inputs"][0] == {**c["inputs"][0], "name": "waveform", "dtype": "float32", "shape": ["batch", "n_samples"]}
        assert [o["name"] for o in c["outputs"]] == ["window_scores", "score"]
        assert all(o["meaning"] for o in c["inputs"] + c["outputs"])
        assert c["threshold"]["value"] == m["threshold"]["value"]
        assert c["threshold"]["method"] == m["threshold"]["method"] == "gamma:0.9"
        assert c["threshold"]["source"] == m["threshold"]["source"]
        assert c["score_direction"] == "higher-is-anomalous" and "score > threshold" in c["decision"]
        f = c["features"]
        for key in ("sr", "n_fft", "hop_length", "n_mels", "fmin", "power"):
            assert f[key] == m["features"][key], key
        assert f["win_length"] == 1024 and f["fmax"] == 8000.0 and f["amin"] == 1e-10 and f["top_db"] is None
        assert f["center"] is True and f["pad_mode"] == "constant" and "log10" in f["db"]
        assert f["mel_scale"] == "slaney" and "periodic Hann" in f["window"]
        assert c["audio"]["sample_rate"] == 16000 and c["audio"]["min_samples"] == 4 * 512
        assert c["aggregate"] == {**c["aggregate"], "spec": "mean", "method": "mean", "in_graph": True}
        v = c["verification"]
        assert v["passed"] and v["logmel_max_abs_diff_db"] <= 1e-3 and v["score_rel_diff"] <= 1e-4
        assert v["n_samples"] % 512 and v["n_clips"] == 2
    # an earlier export is replaced, atomically
    assert run(["export", models["dense-ae"], "--out", out, "--group", "fan/id_00"], capsys)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["fan_id_00.json", "fan_id_00.onnx", "index.json"]


def test_logmel_export_is_the_bundle_graph(models, tmp_path, capsys):
    out = tmp_path / "edge"
    code, stdout, _ = run(["export", models["lstm-ae"], "--out", out, "--logmel", "--group", "fan/id_02"], capsys)
    assert code == 0 and "fan/id_02" in stdout
    bundle = load_model(models["lstm-ae"]).bundles["fan/id_02"]
    assert (out / "fan_id_02.onnx").read_bytes() == (bundle.path / "model.onnx").read_bytes()
    c = json.loads((out / "fan_id_02.json").read_text())
    assert c["onnx"]["front_end"] == "logmel" and c["inputs"][0]["name"] == "logmel"
    assert c["inputs"][0]["shape"] == ["batch", "n_time", 32] and [o["name"] for o in c["outputs"]] == ["window_scores"]
    assert c["aggregate"]["spec"] == "max" and c["aggregate"]["in_graph"] is False
    assert c["features"]["computed"].startswith("by the device") and c["windows"] == {"min_frames": 16, "hop_frames": 8}
    assert c["verification"]["window_scores_max_abs_diff"] == 0.0
    assert json.loads((out / "index.json").read_text())["front_end"] == "logmel"


@pytest.mark.parametrize("spec", ["mean", "max", "quantile:0.9", "quantile:0.25", "quantile:1"])
def test_every_aggregate_is_in_the_graph(spec, models, data):
    from earshot.bundle.export import waveform_model

    bundle = load_model(models["dense-ae"]).bundles["fan/id_00"]
    bundle.aggregate = spec
    session = ort.InferenceSession(waveform_model(bundle).SerializeToString(), providers=["CPUExecutionProvider"])
    audio = _fresh_audio(data, 16000, 512)
    windows, scores = session.run(None, {"waveform": audio})
    for i in range(len(audio)):
        assert scores[i] == pytest.approx(aggregate(windows[i], spec), rel=1e-6)
    _close(scores, bundle.score_samples([log_mel(y, bundle.features) for y in audio]), bundle)


def test_aggregate_nodes_in_other_opsets():
    from onnx import TensorProto, helper

    from earshot.bundle.export import _aggregate_nodes

    windows = np.random.default_rng(2).normal(size=(3, 7)).astype(np.float32)
    for opset in (13, 18, 21):
        for spec in ("mean", "max", "quantile:0.5", "quantile:0.1"):
            nodes, inits = _aggregate_nodes(spec, opset)
            graph = helper.make_graph(
                nodes, "agg", [helper.make_tensor_value_info("window_scores", TensorProto.FLOAT, ["b", "n"])],
                [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["b"])], initializer=inits)
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
            session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            (scores,) = session.run(None, {"window_scores": windows})
            assert scores == pytest.approx([aggregate(w, spec) for w in windows], rel=1e-6, abs=1e-7), (opset, spec)


def test_front_end_equals_log_mel_for_other_settings():
    from earshot.bundle.export import frontend_model
    from earshot.features import FeatureConfig

    rng = np.random.default_rng(1)
    y = rng.normal(scale=0.1, size=(2, 16000 + 77)).astype(np.float32)  # no hop below divides 16077
    # (config, the form "auto" picks): factorisations 64 x 16, 25 x 16, 128 x 4, 32 x 8; n_fft 511 = 7 x 73
    # shares no factor with hop 100, so only the dense Conv applies
    for cfg, auto in ((FeatureConfig(n_mels=64, n_fft=400, hop_length=160, win_length=300, fmin=50.0, fmax=7000.0),
                       "fft"),
                      (FeatureConfig(n_mels=32, power=1.0), "fft"),
                      (FeatureConfig(n_mels=24, n_fft=512, hop_length=100, power=1.5), "fft"),
                      (FeatureConfig(n_mels=24, n_fft=511, hop_length=100, power=1.5), "conv"),
                      (FeatureConfig(sr=8000, n_mels=32, n_fft=256, hop_length=128), "fft")):
        assert ("factorised" if auto == "fft" else "one Conv") in frontend_model(cfg).doc_string
        for dft in ("fft", "conv") if auto == "fft" else ("conv",):
            for opset in (13, 18):
                session = ort.InferenceSession(frontend_model(cfg, opset=opset, dft=dft).SerializeToString(),
                                               providers=["CPUExecutionProvider"])
                # a batch of two; one clip; the shortest inputs (1 sample, one frame's worth)
                for x in (y, y[1:], y[:1, :1], y[:1, : cfg.n_fft], y[:, : 3 * cfg.hop_length + 1]):
                    (mel,) = session.run(None, {"waveform": x})
                    for i in range(len(x)):
                        ref = log_mel(x[i], cfg)
                        assert mel[i].T.shape == ref.shape, (cfg, dft, x.shape)
                        assert np.max(np.abs(mel[i].T - ref)) < 1e-3, (cfg, dft, opset)
            (mel,) = session.run(None, {"waveform": np.zeros((1, 1000), np.float32)})
            assert np.all(mel == pytest.approx(-100.0))


def test_dft_choice_is_checked():
    from earshot.bundle.export import frontend_model
    from earshot.errors import ParameterError
    from earshot.features import FeatureConfig

    with pytest.raises(ParameterError, match="dft"):
        frontend_model(FeatureConfig(), dft="stft")
    with pytest.raises(ParameterError, match="n_fft=511"):
        frontend_model(FeatureConfig(n_fft=511, hop_length=100, n_mels=24), dft="fft")


@pytest.mark.parametrize("dft", ["fft", "conv"])
def test_both_dft_forms_score_like_the_bundle(dft, models, data):
    """Each DFT form of the front end on fresh audio (two recordings and a new signal, a length
    that is not a multiple of the hop), one clip per call and a batch of two."""
    from earshot.bundle.export import frontend_model, waveform_model

    bundle = load_model(models["dense-ae"]).bundles["fan/id_00"]
    model = waveform_model(bundle, dft=dft)
    assert ("factorised" if dft == "fft" else "one Conv") in model.doc_string
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    front = ort.InferenceSession(frontend_model(bundle.features, dft=dft).SerializeToString(),
                                 providers=["CPUExecutionProvider"])
    audio = _fresh_audio(data, bundle.features.sr, bundle.features.hop_length)
    ref_mel = [log_mel(y, bundle.features) for y in audio]
    ref_windows = bundle.window_scores(ref_mel)
    ref_scores = bundle.score_samples(ref_mel)
    for rows in ([0], [1], [2], [0, 2]):
        (mel,) = front.run(None, {"waveform": audio[rows]})
        windows, scores = session.run(None, {"waveform": audio[rows]})
        for j, i in enumerate(rows):
            assert np.max(np.abs(mel[j].T - ref_mel[i])) < 1e-3
            assert windows[j].shape == ref_windows[i].shape
            _close(windows[j], ref_windows[i], bundle)
            _close(scores[j], ref_scores[i], bundle)


@pytest.mark.parametrize("dft", ["fft", "conv"])
def test_check_catches_a_symmetric_window(dft, models, monkeypatch):
    """A front end with a symmetric instead of periodic Hann window fails the export check, in
    either DFT form (the window is folded into the stage-1 kernels of one, the Conv kernels of
    the other): on the log-mel and on the scores."""
    import earshot.bundle.export_frontend as export_frontend
    from earshot.bundle.export import LOGMEL_TOL_DB, RTOL, verify_export
    from earshot.bundle.export_graph import _graph_bytes

    bundle = load_model(models["dense-ae"]).bundles["fan/id_00"]
    data, _, _, front = _graph_bytes(bundle, "waveform", dft)
    good = verify_export(data, bundle, frontend_bytes=front)
    assert good["passed"] and good["logmel_max_abs_diff_db"] < LOGMEL_TOL_DB / 10 and good["score_rel_diff"] < RTOL / 10
    monkeypatch.setattr(export_frontend, "_frontend_window", lambda features: np.hanning(features.n_fft))
    data, _, _, front = _graph_bytes(bundle, "waveform", dft)
    bad = verify_export(data, bundle, frontend_bytes=front)
    assert not bad["passed"]
    assert bad["logmel_max_abs_diff_db"] > 10 * LOGMEL_TOL_DB and bad["score_rel_diff"] > RTOL


def test_export_refuses_a_symmetric_window(models, tmp_path, capsys, monkeypatch):
    import earshot.bundle.export_frontend as export_frontend

    monkeypatch.setattr(export_frontend, "_frontend_window", lambda features: np.hanning(features.n_fft))
    code, _, err = run(["export", models["gauss"], "--out", tmp_path / "edge"], capsys)
    one_line_error(code, err, "differs from earshot's scoring", "nothing was written")
    _nothing_left(tmp_path / "edge")


def test_errors_are_one_line_and_write_nothing(models, tmp_path, capsys, monkeypatch):
    out = tmp_path / "edge"
    code, _, err = run(["export", tmp_path / "nope", "--out", out], capsys)
    one_line_error(code, err, "nope", "no such model")
    _nothing_left(out)
    code, _, err = run(["export", models["dense-ae"], "--out", out, "--group", "pump/id_09"], capsys)
    one_line_error(code, err, "pump/id_09", "fan/id_00")
    _nothing_left(out)
    a_file = tmp_path / "file.onnx"
    a_file.write_text("x")
    code, _, err = run(["export", models["gauss"], "--out", a_file], capsys)
    one_line_error(code, err, "file.onnx", "got a file")
    assert a_file.read_text() == "x"
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    code, _, err = run(["export", models["gauss"], "--out", keep], capsys)
    one_line_error(code, err, "mine", "not an earshot export")
    assert [p.name for p in keep.iterdir()] == ["notes.txt"]
    # a graph that fails its check: nothing written, an earlier export left as it was
    import earshot.bundle.export_check as export_check  # owns the tolerances verify_export reads

    monkeypatch.setattr(export_check, "LOGMEL_TOL_DB", -1.0)
    code, _, err = run(["export", models["dense-ae"], "--out", out], capsys)
    one_line_error(code, err, "differs from earshot's scoring", "nothing was written")
    _nothing_left(out)
    monkeypatch.undo()
    assert run(["export", models["gauss"], "--out", out], capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(export_check, "RTOL", 0.0)
    monkeypatch.setattr(export_check, "LOGMEL_TOL_DB", -1.0)
    code, _, err = run(["export", models["dense-ae"], "--out", out], capsys)
    one_line_error(code, err, "differs")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".edge.")]
    # a damaged bundle graph
    monkeypatch.undo()
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(models["gauss"], broken)
    (broken / "model.onnx").write_bytes(b"not onnx")
    code, _, err = run(["export", broken, "--out", tmp_path / "edge2"], capsys)
    one_line_error(code, err, "model.onnx")
    _nothing_left(tmp_path / "edge2")


def test_missing_onnx_package_is_one_line(models, tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ModuleNotFoundError("No module named 'onnx'", name="onnx")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    code, _, err = run(["export", models["gauss"], "--out", tmp_path / "edge"], capsys)
    one_line_error(code, err, "earshot[train]")
    _nothing_left(tmp_path / "edge")
    # the log-mel form is a copy: it needs no onnx
    assert run(["export", models["gauss"], "--out", tmp_path / "edge", "--logmel"], capsys)[0] == 0
    assert json.loads((tmp_path / "edge" / "all.json").read_text())["onnx"]["opset"] == 17


EDGE_SCRIPT = textwrap.dedent('''
    import importlib.abc, json, sys

    class NoEarshot(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("earshot", "torch", "onnx", "scipy", "soundfile", "librosa"):
                raise ImportError(f"{name} is not on the device")
            return None

    sys.meta_path.insert(0, NoEarshot())
    import numpy as np
    import onnxruntime as ort

    folder, audio = sys.argv[1], np.load(sys.argv[2])
    index = json.load(open(f"{folder}/index.json"))
    out = {}
    for group, entry in index["groups"].items():
        contract = json.load(open(f"{folder}/{entry['contract']}"))
        session = ort.InferenceSession(f"{folder}/{entry['onnx']}", providers=["CPUExecutionProvider"])
        name = contract["inputs"][0]["name"]
        windows, scores = session.run(["window_scores", "score"], {name: audio})
        threshold = contract["threshold"]["value"]
        out[group] = {"scores": scores.tolist(), "anomalous": [bool(s > threshold) for s in scores]}
    assert not [m for m in sys.modules if m.split(".")[0] in ("earshot", "torch", "onnx", "scipy")]
    print(json.dumps(out))
''')


def test_exported_graph_runs_with_onnxruntime_and_numpy_only(models, data, tmp_path, capsys):
    out = tmp_path / "edge"
    assert run(["export", models["dense-ae"], "--out", out], capsys)[0] == 0
    audio = _fresh_audio(data, 16000, 512)[:2]
    np.save(tmp_path / "audio.npy", audio)
    script = tmp_path / "device.py"
    script.write_text(EDGE_SCRIPT)
    proc = subprocess.run([sys.executable, "-I", str(script), str(out), str(tmp_path / "audio.npy")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    model = load_model(models["dense-ae"])
    for group, bundle in model.bundles.items():
        ref = bundle.score_samples([log_mel(y, bundle.features) for y in audio])
        _close(result[group]["scores"], ref, bundle)
        margin = np.abs(ref - bundle.threshold_) > 1e-4 * max(abs(bundle.threshold_), np.max(np.abs(ref)))
        assert [a for a, m in zip(result[group]["anomalous"], margin) if m] == [bool(r > bundle.threshold_)
                                                                                for r, m in zip(ref, margin) if m]
