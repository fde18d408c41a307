"""The embedding detector: metadata classes, training, domains, export, real DCASE 2023 clips."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pytest

from earshot.detection.embed import AUGMENTATIONS, EmbedDetector, metadata_classes
from earshot.errors import ParameterError

from helpers.spectra import machine_clip

torch = pytest.importorskip("torch")

N_MELS = 32
QUICK = {"epochs": 4, "width": 32, "embedding_dim": 16, "crop_frames": 16, "batch_size": 16}


_clip = partial(machine_clip, n_mels=N_MELS)  # a hum 12 dB up (band 6 unless said), a tone 10 dB up


# ---------------------------------------------------------------------- metadata classes
def test_metadata_classes_use_ids_domains_and_attributes():
    meta = []
    for i in range(12):
        meta.append({"machine": "fan", "id": f"id_0{i % 2}", "domain": "source", "label": 0,
                     "attributes": {"spd": ["6", "9"][i // 6], "fault": "x", "num": str(i)}})
    labels, info = metadata_classes(meta, 12)
    assert info["keys"] == ["id", "attributes.spd"], "one value (machine) or unique values (num) teach nothing"
    assert labels.tolist() == [0, 2, 0, 2, 0, 2, 1, 3, 1, 3, 1, 3] and info["counts"] == [3, 3, 3, 3]
    assert all("fault" not in c and "label" not in c for c in info["classes"])


def test_metadata_classes_drop_attributes_before_ids():
    meta = [{"machine": "fan", "id": f"id_0{i % 3}", "domain": "source",
             "attributes": {"vel": str(i % 4)}} for i in range(12)]
    _, info = metadata_classes(meta, 12)
    assert info["keys"] == ["id"], "12 id x vel classes are too many for 12 clips: vel goes first"


def test_metadata_classes_none_when_nothing_tells_clips_apart():
    assert metadata_classes(None, 4)[0] is None
    same = [{"machine": "fan", "id": "id_00", "domain": "source", "attributes": {}}] * 6
    assert metadata_classes(same, 6)[0] is None
    with pytest.raises(ParameterError, match="metadata"):
        metadata_classes(same, 5)


# ---------------------------------------------------------------------- training and scoring
@pytest.mark.slow
def test_learns_ids_and_augmentations_and_flags_a_tone(rng):
    X = [_clip(rng, hum=6) for _ in range(12)] + [_clip(rng, hum=9) for _ in range(12)]
    meta = [{"machine": "fan", "id": "id_00", "domain": "source"}] * 12 + \
           [{"machine": "fan", "id": "id_02", "domain": "source"}] * 12
    det = EmbedDetector(**QUICK).fit(X, metadata=meta)
    assert det.targets_["metadata_keys"] == ["id"]
    assert det.targets_["n_classes"] == 2 * len(AUGMENTATIONS)
    assert len(det.history_["loss"]) == QUICK["epochs"] and det.history_["loss"][-1] < det.history_["loss"][0]
    assert det.threshold_source_ == "train", "fewer than 5 held-out clips: in-sample, and it says so"
    normal = det.score_samples([_clip(rng, hum=6) for _ in range(6)] + [_clip(rng, hum=9) for _ in range(6)])
    anomalous = det.score_samples([_clip(rng, hum=6, tone=slice(20, 23)) for _ in range(6)])
    assert anomalous.mean() > normal.mean()
    emb = det.embed(X[:3])
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ParameterError, match="targets"):
        EmbedDetector(targets="metadata", **QUICK).fit(X[:12], metadata=meta[:12])


def test_per_domain_references_and_validation_threshold(rng):
    X = [_clip(rng) for _ in range(30)] + [_clip(rng, gain_db=15.0) for _ in range(4)]
    meta = [{"domain": "source"}] * 30 + [{"domain": "target"}] * 4
    det = EmbedDetector(validation_fraction=0.2, **QUICK).fit(X, metadata=meta)
    assert det.domain_counts_ == {"source": 30, "target": 4}
    assert det.knn_.domains_ == ["source", "target"] and [len(r) for r in det.knn_.refs_] == [30, 4]
    assert det.threshold_source_ == "validation" and det.n_calibration_clips_ == 7
    assert det.targets_["metadata_keys"] == ["domain"]


def test_bundle_scores_like_the_detector(rng, tmp_path):
    from earshot.bundle import Bundle, load_detector, save_bundle
    from earshot.features.config import FeatureConfig

    X = [_clip(rng) for _ in range(10)]
    det = EmbedDetector(**QUICK).fit(X)
    path = save_bundle(tmp_path / "m", det, features=FeatureConfig(n_mels=N_MELS))
    bundle = Bundle(path)
    test = [_clip(rng, n_time=n) for n in (5, 40, 64, 64, 101)]
    assert all(w.shape == (1,) for w in bundle.window_scores(test))
    np.testing.assert_allclose(bundle.score_samples(test), det.score_samples(test), rtol=1e-3, atol=1e-4)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["model"]["kind"] == "embed" and manifest["fitted"]["targets"]["augmentations"]
    again = load_detector(path)
    np.testing.assert_allclose(again.score_samples(test), det.score_samples(test), rtol=1e-5, atol=1e-6)


def test_real_dcase2023_clips_train_and_score_end_to_end(shared_data, tmp_path, monkeypatch):
    """The real DCASE 2023 clips: attributes parsed from file names reach the detector."""
    from earshot.bundle import load_model
    from earshot.datasets import discover
    from earshot.pipeline import evaluate, score_files, train

    data = shared_data / "dcase2023"
    records = discover(data)
    toycar = [r for r in records if r.machine == "ToyCar" and r.split == "train"]
    assert toycar and all(set(r.attributes) == {"car", "spd", "mic"} for r in toycar)
    assert {r.domain for r in records} == {"source", "target"}

    seen = []
    fit = EmbedDetector.fit

    def spy(self, X, y=None, *, metadata=None, progress=None):
        seen.extend(metadata)
        return fit(self, X, y, metadata=metadata, progress=progress)

    monkeypatch.setattr(EmbedDetector, "fit", spy)
    out = tmp_path / "model"
    result = train(data, out, model="embed", model_params={"epochs": 2, "width": 32}, group_by="none")
    assert result.groups["all"]["n_clips"] == len(seen) == sum(r.split == "train" for r in records)
    assert {"car": "C2", "spd": "31V", "mic": "1"} in [m["attributes"] for m in seen]
    model = load_model(out)
    manifest = model.bundles["all"].manifest
    assert manifest["fitted"]["targets"]["metadata_keys"] == ["machine"]
    tests = [r.path for r in records if r.split == "test"]
    rows = score_files(model, tests)
    assert len(rows) == len(tests) and all(np.isfinite(r["score"]) for r in rows)
    report = evaluate(model, data)
    assert report["groups"]["all"]["n_normal"] + report["groups"]["all"]["n_anomaly"] == len(tests)

    per_machine = train(data, tmp_path / "per-machine", model="embed", model_params={"epochs": 1, "width": 32},
                        group_by="machine")
    assert len(per_machine.groups) == 7, "two training clips per machine are enough to train and score"


def test_synth_manifest_attributes_reach_the_metadata(tmp_path):
    """synth's manifest columns (shift, shift_value of target clips) become record attributes."""
    from earshot.datasets import assign_default_split, discover
    from earshot.pipeline import record_metadata
    from earshot.synth import synthesize

    synthesize(tmp_path, machines=["valve"], n_ids=1, n_normal=8, n_abnormal=1, n_target=4, domain_shift=True,
               duration_s=0.5)
    records = assign_default_split(discover(tmp_path))
    meta = [record_metadata(r) for r in records if r.split == "train"]
    target = [m for m in meta if m["domain"] == "target"]
    assert target and all({"shift", "shift_value"} <= set(m["attributes"]) for m in target)
    assert all("fault" not in m["attributes"] for m in meta), "normal clips have no fault column value"
    _, info = metadata_classes(meta, len(meta))
    assert info["keys"] == ["domain"], "shift and shift_value only repeat the domain"
