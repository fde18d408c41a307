"""Cross-validation: the splits themselves (no held-out clip in training), the cv loop, the CLI."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from earshot.pipeline.crossval import cross_validate, cv_plan, leave_one_group_out, stratified_kfold
from earshot.datasets import Record, group_name
from earshot.detection import DETECTORS
from earshot.detection.base import Detector, check_clips
from earshot.errors import ParameterError
from earshot.features.config import FeatureConfig

FEATURES = FeatureConfig(n_mels=16)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _records(machines=("fan", "pump"), ids=("id_00", "id_02", "id_04"), n_normal=7, n_abnormal=3):
    out = []
    for m in machines:
        for i in ids:
            for label, n in ((0, n_normal), (1, n_abnormal)):
                for k in range(n):
                    out.append(Record(Path(f"/data/{m}/{i}/{'ab' if label else ''}normal/{k:08d}.wav"), m, i,
                                      label=label))
    return out


# ---------------------------------------------------------------------- the splits
def test_leave_one_id_out_never_trains_on_the_held_out_id():
    records = _records()
    folds, notes = leave_one_group_out(records, by="id")
    assert not notes and len(folds) == 6
    tested = Counter()
    for f in folds:
        held = f.held_out
        assert {group_name(r, "id") for r in f.test} == {held}
        assert held not in {group_name(r, "id") for r in f.train}, "a held-out clip reached training"
        assert not {r.path for r in f.train} & {r.path for r in f.test}
        assert {r.machine for r in f.train} == {f.scope}  # other ids of the same machine type
        assert len(f.train) + len(f.test) == 30
        tested.update(r.path for r in f.test)
    assert set(tested.values()) == {1} and len(tested) == len(records), "every clip tested exactly once"


def test_leave_one_machine_out():
    records = _records(machines=("fan", "pump", "valve"), ids=("id_00",))
    folds, _ = leave_one_group_out(records, by="machine")
    assert [f.held_out for f in folds] == ["fan", "pump", "valve"]
    for f in folds:
        assert {r.machine for r in f.test} == {f.held_out}
        assert f.held_out not in {r.machine for r in f.train}


def test_single_id_machine_is_noted_not_folded():
    records = _records(machines=("fan",), ids=("id_00",))
    folds, notes = leave_one_group_out(records, by="id")
    assert folds == [] and "only one id" in notes[0]


def test_stratified_kfold_partitions_each_scope_and_is_stratified():
    records = _records(n_normal=8, n_abnormal=4)
    folds = stratified_kfold(records, k=4, seed=0)
    assert len(folds) == 8  # 4 per machine type
    tested = Counter(r.path for f in folds for r in f.test)
    assert set(tested.values()) == {1} and len(tested) == len(records)
    for f in folds:
        assert not {r.path for r in f.train} & {r.path for r in f.test}
        assert {r.machine for r in f.train + f.test} == {f.scope}
        strata = Counter((group_name(r, "id"), r.label) for r in f.test)
        assert all(strata[(f"{f.scope}/{i}", 0)] == 2 and strata[(f"{f.scope}/{i}", 1)] == 1
                   for i in ("id_00", "id_02", "id_04"))
    again = stratified_kfold(records, k=4, seed=0)
    other = stratified_kfold(records, k=4, seed=1)
    assert [sorted(r.path for r in f.test) for f in again] == [sorted(r.path for r in f.test) for f in folds]
    assert [sorted(r.path for r in f.test) for f in other] != [sorted(r.path for r in f.test) for f in folds]


def test_kfold_default_k_is_the_number_of_groups_and_plan_by_fold():
    records = _records(machines=("fan",))
    assert len(stratified_kfold(records)) == 3
    plan, _ = cv_plan(records, by="fold", folds=2)
    assert list(plan) == ["random"] and len(plan["random"]) == 2
    plan, _ = cv_plan(records, by="id")
    assert set(plan) == {"leave-one-out", "random"}
    with pytest.raises(ParameterError, match="by"):
        cv_plan(records, by="clip")
    with pytest.raises(ParameterError, match="folds"):
        stratified_kfold(records, k=1)


# ---------------------------------------------------------------------- the cv loop
class SpyDetector(Detector):
    """Records what reaches fit; scores a clip by its mean level (the synthetic faults are louder)."""

    kind = "spy"
    fits: list[list[dict]] = []

    def __init__(self, *, threshold: str = "max", random_state: int = 0):
        self.threshold = threshold
        self.random_state = random_state

    def get_params(self):
        return {"threshold": self.threshold, "random_state": self.random_state}

    def fit(self, X, y=None, *, metadata=None, progress=None):
        clips = check_clips(X)
        type(self).fits.append([dict(m) for m in metadata])
        self.train_scores_ = np.array([c.mean() for c in clips])
        self.threshold_ = float(self.train_scores_.max())
        self.history_ = {}
        return self

    def score_samples(self, X):
        self._check_fitted()
        return np.array([np.asarray(c).mean() for c in X])


class SupervisedSpy(SpyDetector):
    uses_labels = True


@pytest.fixture(scope="module")
def synth4(tmp_path_factory):
    from earshot.synth import synthesize

    root = tmp_path_factory.mktemp("cv")
    synthesize(root, machines=("fan",), n_ids=4, n_normal=8, n_abnormal=4, duration_s=1.0, seed=3)
    return root


@pytest.mark.parametrize("spy", ["SpyDetector", "SupervisedSpy"])
def test_no_held_out_clip_reaches_fit(synth4, monkeypatch, spy):
    monkeypatch.setitem(DETECTORS, "spy", f"{__name__}:{spy}")
    SpyDetector.fits = []
    result = cross_validate(synth4, by="id", model="spy", features=FEATURES)
    loo = result["schemes"]["leave-one-out"]["folds"]
    assert len(SpyDetector.fits) == 4 + 4  # leave-one-id-out, then the 4-fold random split
    for fold, seen in zip(loo, SpyDetector.fits[:4]):
        ids = {f"{m['machine']}/{m['id']}" for m in seen}
        assert fold["held_out"] not in ids and len(ids) == 3
        labels = {m["label"] for m in seen}
        assert labels == ({0, 1} if spy == "SupervisedSpy" else {0}), "unsupervised models see normal clips only"
        assert not set(fold["train_paths"]) & {c["path"] for c in fold["clips"]}
    for fold in result["schemes"]["random"]["folds"]:
        assert not set(fold["train_paths"]) & {c["path"] for c in fold["clips"]}
    # every clip tested once per scheme; per-group rows for both schemes
    for scheme in result["schemes"].values():
        paths = [c["path"] for f in scheme["folds"] for c in f["clips"]]
        assert len(paths) == len(set(paths)) == 48
    assert set(result["by_group"]) == {f"fan/id_0{i}" for i in (0, 2, 4, 6)}
    assert all(set(v) == {"leave-one-out", "random"} for v in result["by_group"].values())


def test_cnn_validation_split_never_holds_test_clips(synth4):
    params = {"epochs": 2, "n_frames": 16, "width": 4, "n_blocks": 1, "batch_size": 16}
    result = cross_validate(synth4, by="id", model="cnn", features=FEATURES, model_params=params, folds=2)
    for scheme in result["schemes"].values():
        for fold in scheme["folds"]:
            test = {c["path"] for c in fold["clips"]}
            val, train = set(fold["validation_paths"]), set(fold["train_paths"])
            assert val and val <= train and not val & test and not train & test
            assert fold["n_validation"] == len(val)
    assert len(result["schemes"]["random"]["folds"]) == 2


def test_unknown_parameter_and_unlabelled_data(synth4, tmp_path):
    with pytest.raises(ParameterError, match="width"):
        cross_validate(synth4, model="dense-ae", model_params={"width": 3}, features=FEATURES)
    with pytest.raises(ParameterError, match="model"):
        cross_validate(synth4, model="transformer", features=FEATURES)


# ---------------------------------------------------------------------- the command line
def test_cv_cli_report_side_by_side(synth4, tmp_path, capsys):
    from earshot.cli.app import main

    code = main(["cv", str(synth4), "--model", "dense-ae", "--epochs", "2", "--n-mels", "16",
                 "--report", str(tmp_path / "r"), "--json", str(tmp_path / "cv.json")])
    out = capsys.readouterr().out
    assert code == 0
    assert "leave-one-id-out" in out and "random split" in out and "gap" in out
    page = (tmp_path / "r" / "cv.html").read_text()
    assert "id='side-by-side'" in page and "data-scheme='random'" in page and "data-scheme='leave-one-out'" in page
    assert "data:image/png;base64," in page and "http://" not in page and "https://" not in page
    result = json.loads((tmp_path / "cv.json").read_text())
    assert result == json.loads((tmp_path / "r" / "cv.json").read_text())
    assert set(result["schemes"]) == {"leave-one-out", "random"} and result["gap"] is not None


def test_cv_cli_by_fold_and_bad_input(synth4, tmp_path, capsys):
    from earshot.cli.app import main

    code = main(["cv", str(synth4), "--by", "fold", "--folds", "3", "--epochs", "1", "--n-mels", "16"])
    out = capsys.readouterr().out
    assert code == 0 and "stratified 3-fold" in out and "leave-one" not in out
    for args, needle in ((["--by", "clip"], "by"), (["--model", "nope"], "model"), (["--folds", "1"], "folds")):
        code = main(["cv", str(synth4), "--n-mels", "16", *args])
        err = capsys.readouterr().err
        assert code == 1 and needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
