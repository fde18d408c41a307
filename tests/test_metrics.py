"""Metrics of the anomaly class: parity with scikit-learn, one-class cases, summaries."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats

from earshot.errors import ParameterError
from earshot.evaluation import (
    SUMMARY_KEYS,
    binary_metrics,
    evaluate_scores,
    pauc,
    roc_auc,
    summarize,
    to_jsonable,
)

skm = pytest.importorskip("sklearn.metrics")


def _random_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels with both classes and scores with many ties (or none), sizes 2..400."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    y = rng.integers(0, 2, n)
    y[0], y[1] = 0, 1  # both classes present
    rng.shuffle(y)
    kind = seed % 3
    if kind == 0:  # heavy ties: few distinct values
        s = rng.integers(0, int(rng.integers(2, 20)), n).astype(float) + 0.5 * y
    elif kind == 1:  # continuous, informative
        s = rng.normal(size=n) + rng.uniform(0, 2) * y
    else:  # rounded: some ties
        s = np.round(rng.gamma(2.0, 1.0, n) + 0.7 * y, 1)
    return y, s


def test_roc_auc_matches_sklearn() -> None:
    for seed in range(150):
        y, s = _random_case(seed)
        assert roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12), seed


@pytest.mark.parametrize("max_fpr", [0.1, 0.05, 0.3, 1.0])
def test_pauc_matches_sklearn(max_fpr: float) -> None:
    for seed in range(150 if max_fpr == 0.1 else 40):
        y, s = _random_case(seed)
        expected = skm.roc_auc_score(y, s, max_fpr=max_fpr)
        assert pauc(y, s, max_fpr=max_fpr) == pytest.approx(expected, abs=1e-12), seed


def test_auc_accepts_lists_bools_and_int_scores() -> None:
    y = [True, False, True, False, False]
    s = [3, 1, 2, 2, 0]
    assert roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert pauc(y, s) == pytest.approx(skm.roc_auc_score(y, s, max_fpr=0.1), abs=1e-12)


def test_auc_known_values() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5  # a tie counts one half
    assert pauc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(1.0)
    # a constant score is a random detector: standardised pAUC 0.5
    assert pauc([0, 1, 0, 1], [1.0, 1.0, 1.0, 1.0]) == pytest.approx(0.5)


@pytest.mark.parametrize("labels", [[0, 0, 0], [1, 1, 1, 1], [1]])
def test_one_class_gives_nan(labels: list[int]) -> None:
    scores = np.arange(len(labels), dtype=float)
    assert math.isnan(roc_auc(labels, scores))
    assert math.isnan(pauc(labels, scores))
    result = evaluate_scores(labels, scores, threshold=0.5)
    assert math.isnan(result["auc"]) and math.isnan(result["pauc"])
    assert result["n_normal"] + result["n_anomaly"] == len(labels)


def _sk_binary(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    tn, fp, fn, tp = skm.confusion_matrix(y, p, labels=[0, 1]).ravel()
    return {
        "precision": skm.precision_score(y, p, pos_label=1, zero_division=0),
        "recall": skm.recall_score(y, p, pos_label=1, zero_division=0),
        "f1": skm.f1_score(y, p, pos_label=1, zero_division=0),
        "accuracy": skm.accuracy_score(y, p),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


def test_binary_metrics_match_sklearn() -> None:
    for seed in range(80):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(1, 60))
        y = rng.integers(0, 2, n)
        p = rng.integers(0, 2, n)
        if seed % 10 == 0:
            p[:] = 0  # nothing predicted anomalous: precision 0
        if seed % 10 == 1:
            y[:] = 0  # no anomaly clips: recall 0
        got = binary_metrics(y, p)
        for key, value in _sk_binary(y, p).items():
            assert got[key] == pytest.approx(value, abs=1e-12), (seed, key)
        assert got["n_normal"] == int((y == 0).sum())
        assert got["n_anomaly"] == int((y == 1).sum())
        assert all(type(got[k]) is int for k in ("tp", "fp", "tn", "fn", "n_normal", "n_anomaly"))
        assert all(type(got[k]) is float for k in ("precision", "recall", "f1", "accuracy"))


def test_binary_metrics_zero_division_is_zero() -> None:
    got = binary_metrics([1, 0, 1], [0, 0, 0])
    assert got["precision"] == 0.0 and got["f1"] == 0.0 and got["recall"] == 0.0
    got = binary_metrics([0, 0], [0, 1])
    assert got["recall"] == 0.0 and got["accuracy"] == 0.5


def test_evaluate_scores_threshold_is_strict() -> None:
    y = [0, 0, 1, 1, 1]
    s = [0.1, 0.5, 0.5, 0.9, 2.0]
    result = evaluate_scores(y, s, 0.5)
    # score == threshold is normal: predictions are [0, 0, 0, 1, 1]
    assert (result["tp"], result["fp"], result["tn"], result["fn"]) == (2, 0, 2, 1)
    assert result["threshold"] == 0.5 and result["max_fpr"] == 0.1
    assert result["auc"] == pytest.approx(skm.roc_auc_score(y, s))
    assert result["pauc"] == pytest.approx(skm.roc_auc_score(y, s, max_fpr=0.1))
    assert set(result) >= {"auc", "pauc", "precision", "recall", "f1", "accuracy", "threshold"}


def test_evaluate_scores_matches_sklearn_at_threshold() -> None:
    for seed in range(20):
        y, s = _random_case(seed)
        thr = float(np.median(s))
        result = evaluate_scores(y, s, thr, max_fpr=0.2)
        for key, value in _sk_binary(y, (s > thr).astype(int)).items():
            assert result[key] == pytest.approx(value, abs=1e-12)
        assert result["pauc"] == pytest.approx(skm.roc_auc_score(y, s, max_fpr=0.2), abs=1e-12)


def test_summarize_means_match_numpy_and_scipy() -> None:
    rng = np.random.default_rng(7)
    groups = {
        f"id_{i:02d}": {key: float(rng.uniform(0.3, 1.0)) for key in SUMMARY_KEYS}
        for i in range(6)
    }
    out = summarize(groups)
    assert out["groups"] == groups
    for key in SUMMARY_KEYS:
        values = [g[key] for g in groups.values()]
        assert out["mean"][key] == pytest.approx(np.mean(values), rel=1e-12)
        assert out["hmean"][key] == pytest.approx(scipy.stats.hmean(values), rel=1e-12)


def test_summarize_skips_nan_and_none_and_handles_zero() -> None:
    groups = {
        "a": {"auc": 0.8, "pauc": float("nan"), "precision": 0.0, "f1": None},
        "b": {"auc": 0.6, "pauc": float("nan"), "precision": 0.5, "f1": float("nan")},
        "c": {"auc": float("nan"), "pauc": float("nan"), "precision": 1.0},
    }
    out = summarize(groups)
    assert out["mean"]["auc"] == pytest.approx(0.7)
    assert out["hmean"]["auc"] == pytest.approx(scipy.stats.hmean([0.8, 0.6]))
    assert math.isnan(out["mean"]["pauc"]) and math.isnan(out["hmean"]["pauc"])
    assert math.isnan(out["mean"]["f1"]) and math.isnan(out["hmean"]["f1"])
    assert out["mean"]["precision"] == pytest.approx(0.5)
    assert out["hmean"]["precision"] == 0.0 == scipy.stats.hmean([0.0, 0.5, 1.0])
    assert math.isnan(out["mean"]["recall"])  # missing everywhere


def test_summarize_of_evaluate_scores_is_json_safe() -> None:
    groups = {
        "fan/id_00": evaluate_scores([0, 1, 0, 1], np.array([0.1, 0.9, 0.2, 0.4]), 0.3),
        "fan/id_02": evaluate_scores([0, 0, 0], np.float32([0.1, 0.9, 0.2]), 0.3),
    }
    out = to_jsonable(summarize(groups))
    text = json.dumps(out, allow_nan=False)
    back = json.loads(text)
    assert back["groups"]["fan/id_02"]["auc"] is None
    assert back["mean"]["auc"] == pytest.approx(groups["fan/id_00"]["auc"])


def test_to_jsonable_converts_numpy_and_nan() -> None:
    obj = {
        1: np.float32(0.5),
        "b": [np.int64(3), np.nan, np.inf, (np.bool_(True), None)],
        "c": np.array([[1.0, np.nan]]),
        "d": np.array(2.5),
        "e": "text",
    }
    out = to_jsonable(obj)
    assert out == {
        "1": 0.5,
        "b": [3, None, None, [True, None]],
        "c": [[1.0, None]],
        "d": 2.5,
        "e": "text",
    }
    assert type(out["b"][0]) is int and type(out["b"][3][0]) is bool
    json.dumps(out, allow_nan=False)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: roc_auc([0, 1, 1], [0.1, 0.2]), "y_true and y_score"),
        (lambda: roc_auc([0, 2, 1], [0.1, 0.2, 0.3]), "y_true"),
        (lambda: roc_auc([0, 0.5], [0.1, 0.2]), "y_true"),
        (lambda: roc_auc(["a", "b"], [0.1, 0.2]), "y_true"),
        (lambda: roc_auc([0, 1], [0.1, np.nan]), "y_score"),
        (lambda: pauc([0, 1], [0.1, np.inf]), "y_score"),
        (lambda: roc_auc([], []), "y_true"),
        (lambda: roc_auc([[0, 1]], [[0.1, 0.2]]), "y_true"),
        (lambda: pauc([0, 1], [0.1, 0.2], max_fpr=0.0), "max_fpr"),
        (lambda: pauc([0, 1], [0.1, 0.2], max_fpr=1.5), "max_fpr"),
        (lambda: binary_metrics([0, 1], [0, 1, 1]), "y_true and y_pred"),
        (lambda: binary_metrics([0, 1], [0, -1]), "y_pred"),
        (lambda: evaluate_scores([0, 1], [0.1, 0.2], float("nan")), "threshold"),
        (lambda: evaluate_scores([0, 1], [0.1, 0.2], "high"), "threshold"),
        (lambda: summarize([0.5]), "groups"),
        (lambda: summarize({"a": {"auc": "x"}}), "groups['a']['auc']"),
        (lambda: summarize({"a": {"auc": -0.1}}), "groups['a']['auc']"),
    ],
)
def test_bad_input_raises_parameter_error_naming_it(call, name: str) -> None:
    with pytest.raises(ParameterError) as info:
        call()
    assert name in str(info.value)
    assert isinstance(info.value, ValueError)
