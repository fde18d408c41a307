"""Shared by the executor, batch-scoring and cache tests: a tiny data set and model (once per session)."""

from __future__ import annotations

import csv
from pathlib import Path

from earshot.features.config import FeatureConfig
from earshot.pipeline import train
from earshot.synth import synthesize

_MADE: dict[str, Path] = {}


def tiny_data(tmp_path_factory) -> Path:
    """Synthetic fans in the MIMII layout: 2 ids x (12 normal + 4 abnormal) clips of 1 s."""
    if "data" not in _MADE:
        root = tmp_path_factory.mktemp("scale-data") / "data"
        synthesize(root, machines=["fan"], n_ids=2, n_normal=12, n_abnormal=4, duration_s=1.0, seed=0)
        _MADE["data"] = root
    return _MADE["data"]


def tiny_model(tmp_path_factory) -> Path:
    """A model set (one gauss bundle per fan id, 32 mels) trained on :func:`tiny_data`."""
    if "model" not in _MADE:
        out = tmp_path_factory.mktemp("scale-model") / "model"
        train(tiny_data(tmp_path_factory), out, model="gauss", features=FeatureConfig(n_mels=32))
        _MADE["model"] = out
    return _MADE["model"]


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header, as dicts of strings."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
