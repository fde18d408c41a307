"""Thresholds learned from normal training scores: spec strings and fitting."""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import pytest
import scipy.stats

from earshot.detection import thresholds
from earshot.detection.thresholds import DEFAULT_THRESHOLD, ThresholdSpec, fit_threshold
from earshot.errors import ParameterError


@pytest.mark.parametrize(
    ("text", "method", "param", "canonical"),
    [
        ("gamma", "gamma", 0.9, "gamma:0.9"),
        ("gamma:0.95", "gamma", 0.95, "gamma:0.95"),
        (" Gamma : 0.5 ", "gamma", 0.5, "gamma:0.5"),
        ("percentile:95", "percentile", 95.0, "percentile:95"),
        ("percentile:99.5", "percentile", 99.5, "percentile:99.5"),
        ("percentile:100", "percentile", 100.0, "percentile:100"),
        ("mean-std:3", "mean-std", 3.0, "mean-std:3"),
        ("mean-std:0.25", "mean-std", 0.25, "mean-std:0.25"),
        ("max", "max", None, "max"),
        ("value:-1.5", "value", -1.5, "value:-1.5"),
        ("value:1e-05", "value", 1e-05, "value:1e-05"),
        ("value:12", "value", 12.0, "value:12"),
    ],
)
def test_parse_and_round_trip(text: str, method: str, param, canonical: str) -> None:
    spec = ThresholdSpec.parse(text)
    assert (spec.method, spec.param) == (method, param)
    assert str(spec) == canonical
    assert ThresholdSpec.parse(str(spec)) == spec
    assert ThresholdSpec.parse(spec) is spec


def test_spec_defaults_and_is_frozen() -> None:
    assert ThresholdSpec("gamma") == ThresholdSpec.parse(DEFAULT_THRESHOLD)
    assert str(ThresholdSpec("gamma")) == DEFAULT_THRESHOLD == "gamma:0.9"
    spec = ThresholdSpec("percentile", 90)
    assert spec.param == 90.0 and isinstance(spec.param, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.param = 50.0  # type: ignore[misc]
    assert len({spec, ThresholdSpec.parse("percentile:90")}) == 1


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "gamma:1",
        "gamma:0",
        "gamma:1.5",
        "gamma:",
        "gamma:abc",
        "percentile",
        "percentile:0",
        "percentile:101",
        "mean-std",
        "mean-std:inf",
        "max:3",
        "value",
        "value:nan",
        "median",
        "zscore:3",
        3,
        None,
    ],
)
def test_parse_rejects_bad_specs(bad) -> None:
    with pytest.raises(ParameterError) as info:
        ThresholdSpec.parse(bad)
    message = str(info.value)
    assert message.startswith("threshold")
    assert repr(bad) in message  # the received value
    for form in ("gamma", "percentile:p", "mean-std:k", "max", "value:x"):
        assert form in message  # the accepted forms


def test_constructor_validates() -> None:
    with pytest.raises(ParameterError, match="threshold"):
        ThresholdSpec("gamma", 2.0)
    with pytest.raises(ParameterError, match="threshold"):
        ThresholdSpec("max", 1.0)
    with pytest.raises(ParameterError, match="threshold"):
        ThresholdSpec("nope", 1.0)


@pytest.mark.parametrize(
    ("shape", "scale", "q"), [(1.5, 2.0, 0.9), (3.0, 0.01, 0.9), (8.0, 5.0, 0.95)]
)
def test_gamma_recovers_true_quantile(shape: float, scale: float, q: float) -> None:
    rng = np.random.default_rng(1234)
    scores = rng.gamma(shape, scale, 5000)
    threshold = fit_threshold(scores, f"gamma:{q}")
    true_quantile = scipy.stats.gamma.ppf(q, shape, scale=scale)
    assert threshold == pytest.approx(true_quantile, rel=0.03)
    # exactly the DCASE baseline's recipe on positive scores
    assert threshold == scipy.stats.gamma.ppf(q, *scipy.stats.gamma.fit(scores))
    assert fit_threshold(scores, f"gamma:{q}") == threshold  # deterministic


def test_gamma_default_is_q_09() -> None:
    scores = np.random.default_rng(0).gamma(2.0, 1.0, 500)
    assert fit_threshold(scores) == fit_threshold(scores, "gamma") == fit_threshold(
        scores, "gamma:0.9"
    )


def test_gamma_with_non_positive_scores_is_shifted_back(caplog) -> None:
    rng = np.random.default_rng(5)
    scores = rng.gamma(3.0, 2.0, 2000)
    reference = fit_threshold(scores, "gamma")
    for offset in (-3.0, -50.0):
        shifted = scores + offset
        assert shifted.min() <= 0
        with caplog.at_level(logging.WARNING, logger="earshot.detection.thresholds"):
            value = fit_threshold(shifted, "gamma")
        assert value == pytest.approx(reference + offset, abs=1e-2 * scores.std())
    assert not caplog.records  # a real fit, not the fallback
    # zeros and negatives together still give a finite threshold inside the score range
    mixed = np.r_[np.zeros(10), rng.normal(0.0, 1.0, 200)]
    value = fit_threshold(mixed, "gamma")
    assert math.isfinite(value) and mixed.min() < value < mixed.max()


def test_gamma_falls_back_to_percentile_when_degenerate(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="earshot.detection.thresholds"):
        assert fit_threshold([2.0, 2.0, 2.0], "gamma:0.8") == 2.0
    assert "percentile:80" in caplog.text


@pytest.mark.parametrize("failure", ["raise", "nan"])
def test_gamma_falls_back_when_fit_fails(monkeypatch, caplog, failure: str) -> None:
    def broken_fit(data):
        if failure == "raise":
            raise RuntimeError("optimizer did not converge")
        return (float("nan"), 0.0, 1.0)

    monkeypatch.setattr(thresholds.scipy.stats.gamma, "fit", broken_fit)
    scores = np.arange(1.0, 11.0)
    with caplog.at_level(logging.WARNING, logger="earshot.detection.thresholds"):
        value = fit_threshold(scores, "gamma:0.9")
    assert value == pytest.approx(np.percentile(scores, 90))
    assert "gamma" in caplog.text and "percentile:90" in caplog.text


def test_other_methods_match_numpy() -> None:
    scores = np.random.default_rng(3).normal(1.0, 0.2, 101)
    assert fit_threshold(scores, "percentile:95") == np.percentile(scores, 95)
    assert fit_threshold(scores, "percentile:100") == scores.max()
    assert fit_threshold(scores, "mean-std:2") == pytest.approx(scores.mean() + 2 * scores.std())
    assert fit_threshold(scores, "max") == scores.max()
    assert fit_threshold(scores, "value:0.7") == 0.7
    assert fit_threshold(None, "value:0.7") == 0.7  # no scores needed
    assert fit_threshold(list(scores), ThresholdSpec("max")) == scores.max()
    assert type(fit_threshold(scores, "percentile:50")) is float
    assert fit_threshold([4.0], "max") == fit_threshold([4.0], "percentile:90") == 4.0


@pytest.mark.parametrize(
    ("spec", "scores", "needed"),
    [("gamma", [1.0], 2), ("mean-std:1", [1.0], 2), ("max", [], 1), ("percentile:50", [], 1)],
)
def test_too_few_scores(spec: str, scores: list, needed: int) -> None:
    with pytest.raises(ParameterError) as info:
        fit_threshold(scores, spec)
    message = str(info.value)
    assert f"at least {needed}" in message and f"got {len(scores)}" in message
    assert "scores" in message


@pytest.mark.parametrize(
    "scores", [[1.0, float("nan"), 2.0], [1.0, float("inf")], [[1.0, 2.0]], ["a", "b"]]
)
def test_bad_scores(scores) -> None:
    with pytest.raises(ParameterError, match="scores"):
        fit_threshold(scores, "percentile:90")


def test_gamma_on_a_few_clips_is_not_degenerate():
    """With 8 scores the 3-parameter gamma MLE pins loc at the minimum (shape < 1) and puts
    the 0.9 quantile below the median; the fit must fall back to loc = 0."""
    scores = np.array([0.3574, 0.3643, 0.3669, 0.3721, 0.3989, 0.4041, 0.4190, 0.4404])
    t = fit_threshold(scores, "gamma:0.9")
    assert t > np.median(scores)
    assert np.mean(scores > t) <= 0.25
    rng = np.random.default_rng(0)
    exceed = [np.mean(rng.gamma(40, 0.01, 2000) > fit_threshold(rng.gamma(40, 0.01, 8), "gamma:0.9"))
              for _ in range(50)]
    assert 0.02 < np.mean(exceed) < 0.3
