"""`earshot evaluate --report`: one self-contained HTML page whose numbers are the JSON's."""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from earshot.cli.app import main

from helpers.datasets import write_hum_clips, write_hum_dataset

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """fan/id_00 and fan/id_02 (MIMII layout), 12 normal + 5 abnormal clips each, 1 s."""
    # a ringing 3 kHz resonance, weaker in some clips so the scores overlap a little
    return write_hum_dataset(tmp_path_factory.mktemp("data"), np.random.default_rng(0), ids=("id_00", "id_02"),
                             n_normal=12, n_abnormal=5, fault="resonance", seconds=1.0)


@pytest.fixture(scope="module")
def model(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "model"
    assert main(["train", str(data), "--out", str(out), "--epochs", "3", "--n-mels", "32", "--n-fft", "512",
                 "--hop-length", "256"]) == 0
    return out


@pytest.fixture(scope="module")
def evaluated(model, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("r")
    code = main(["evaluate", str(model), str(data), "--report", str(out / "rep"), "--json", str(out / "r.json")])
    assert code == 0
    return out


class _Page(HTMLParser):
    """Section ids, image sources, and the metrics table as {group: {key: text}}."""

    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.images: list[str] = []
        self.links: list[str] = []
        self.tags: set[str] = set()
        self.table: dict[str, dict[str, str]] = {}
        self._in_table = False
        self._row: str | None = None
        self._key: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag in ("a", "link", "script") and (a.get("href") or a.get("src")):
            self.links.append(a.get("href") or a.get("src"))
        if tag == "table" and a.get("id") == "metrics-table":
            self._in_table = True
        if self._in_table and tag == "tr" and "data-group" in a:
            self._row = a["data-group"]
            self.table[self._row] = {}
        if self._row is not None and tag == "td" and "data-key" in a:
            self._key = a["data-key"]
            self.table[self._row][self._key] = ""

    def handle_endtag(self, tag):
        if tag == "td":
            self._key = None
        if tag == "tr":
            self._row = None
        if tag == "table":
            self._in_table = False

    def handle_data(self, text):
        if self._row is not None and self._key is not None:
            self.table[self._row][self._key] += text


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _printed_equals(text: str, value) -> bool:
    """The printed text is ``value`` at the precision it was printed with."""
    text = text.strip()
    if value is None:
        return text == "n/a"
    if isinstance(value, int):
        return int(text) == value
    decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 0
    tol = 0.5 * 10 ** -decimals + 1e-12 if "e" not in text else abs(value) * 5e-4
    return abs(float(text) - value) <= tol


def test_report_has_every_section(evaluated):
    page = _parse(evaluated / "rep" / "report.html")
    assert {"metrics", "definitions", "metrics-table", "contents"} <= page.ids
    for slug in ("fan-id_00", "fan-id_02"):
        for section in ("group", "hist", "sweep", "roc", "confusion", "top", "training"):
            assert f"{section}-{slug}" in page.ids, f"{section}-{slug}"
    html = (evaluated / "rep" / "report.html").read_text(encoding="utf-8")
    for heading in ("Score histograms", "Threshold sweep", "ROC curve", "Confusion matrix", "Most anomalous clips",
                    "Training", "fitted on training clips"):
        assert heading in html


def test_report_is_self_contained_and_images_are_png(evaluated):
    page = _parse(evaluated / "rep" / "report.html")
    assert "script" not in page.tags and "link" not in page.tags
    assert all(link.startswith("#") for link in page.links), page.links
    assert len(page.images) == 2 * 6  # histogram, sweep, ROC, confusion, top clips, loss curves per group
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        width, height = _png_size(base64.b64decode(src.split(",", 1)[1], validate=True))
        assert 200 <= width <= 2000 and 200 <= height <= 2000


def test_report_numbers_equal_evaluate_json(evaluated):
    expected = json.loads((evaluated / "r.json").read_text())
    assert (evaluated / "rep" / "report.json").read_bytes() == (evaluated / "r.json").read_bytes()
    table = _parse(evaluated / "rep" / "report.html").table
    assert set(table) == {*expected["groups"], "mean", "hmean"}
    for name, g in expected["groups"].items():
        row = table[name]
        for key in ("auc", "pauc", "precision", "recall", "f1", "accuracy", "tp", "fp", "tn", "fn", "n_normal",
                    "n_anomaly", "threshold"):
            assert _printed_equals(row[key], g[key]), (name, key, row[key], g[key])
        assert g["threshold_method"] in row["threshold_how"] and "fitted on" in row["threshold_how"]
    for name in ("mean", "hmean"):
        for key in ("auc", "pauc", "precision", "recall", "f1", "accuracy"):
            assert _printed_equals(table[name][key], expected[name][key]), (name, key)


@pytest.mark.parametrize("keep", ["normal", "abnormal"])
def test_one_class_data_says_what_is_missing(model, tmp_path, keep):
    rng = np.random.default_rng(5)
    fault = "resonance" if keep == "abnormal" else False
    write_hum_clips(tmp_path / "data" / "fan" / "id_00" / keep, 3, rng, fault=fault, start=100, seconds=1.0)
    code = main(["evaluate", str(model), str(tmp_path / "data"), "--report", str(tmp_path / "rep")])
    assert code == 0
    html = (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    missing = "no anomaly clips: AUC undefined" if keep == "normal" else "no normal clips: AUC undefined"
    assert missing in html
    table = _parse(tmp_path / "rep" / "report.html").table
    assert table["fan/id_00"]["auc"].strip() == "n/a" and table["mean"]["auc"].strip() == "n/a"
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["groups"]["fan/id_00"]["auc"] is None


def test_report_into_a_file_is_one_line(model, data, tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("x")
    code = main(["evaluate", str(model), str(data), "--report", str(target)])
    err = capsys.readouterr().err
    assert code == 1 and str(target) in err and len(err.strip().splitlines()) == 1
    assert target.read_text() == "x"


def test_importing_the_edges_loads_no_matplotlib():
    code = ("import sys, earshot.plots, earshot.reports.evaluation, earshot.reports.explore, earshot.cli.app; "
            "sys.exit('matplotlib' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_threshold_sweep_counts_match_the_metrics():
    from earshot.evaluation.metrics import evaluate_scores
    from earshot.plots import sweep

    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(30, int), np.ones(10, int)]
    s = np.r_[rng.normal(1, 0.3, 30), rng.normal(2, 0.5, 10)]
    for t in (0.5, 1.2, 1.7, 3.0):
        m = evaluate_scores(y, s, t)
        r = sweep(y, s, np.array([t]))
        assert (r["fp"][0], r["fn"][0]) == (m["fp"], m["fn"])
        assert np.isclose(r["precision"][0], m["precision"]) and np.isclose(r["f1"][0], m["f1"])
