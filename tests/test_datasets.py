"""Tests of earshot.datasets: path layouts, discovery, manifests, splits.

Trees of empty ``.wav`` files are enough: discovery works on paths and never opens audio.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections import Counter
from pathlib import Path

import pytest

from earshot.datasets import (
    Record,
    apply_split_file,
    assign_default_split,
    describe,
    discover,
    group_name,
    parse_path,
    train_test,
)
from earshot.errors import DatasetError, ParameterError

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason="shared real data not present")


def touch(root: Path, *names: str) -> list[Path]:
    """Create empty files below root; return their paths."""
    paths = []
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        paths.append(path)
    return paths


def write_csv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.strip() + "\n")
    return path


def rec(name: str, label: int | None, *, machine: str = "pump", id: str | None = "id_00",
        split: str | None = None) -> Record:
    return Record(Path("/data") / machine / str(id) / name, machine, id, split=split, label=label)


# ----------------------------------------------------------------------------- Record


def test_record_is_frozen_hashable_and_groups():
    r = Record(Path("/x/a.wav"), "fan", "id_00", attributes={"spd": "31V", "mic": 1})
    assert r.attributes["spd"] == "31V" and r.attributes == {"spd": "31V", "mic": "1"}
    assert hash(r) == hash(dataclasses.replace(r))
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.machine = "pump"
    with pytest.raises(TypeError):
        r.attributes["spd"] = "1"
    assert group_name(r, "id") == r.group("id") == "fan/id_00"
    assert group_name(r, "machine") == "fan"
    assert group_name(r, "none") == "all"
    assert group_name(dataclasses.replace(r, id=None), "id") == "fan"
    with pytest.raises(ParameterError, match="group_by"):
        group_name(r, "section")


@pytest.mark.parametrize("field, value", [("label", 2), ("label", "1"), ("split", "eval")])
def test_record_rejects_bad_values(field, value):
    with pytest.raises(ParameterError, match=field):
        Record(Path("a.wav"), "fan", **{field: value})


# ----------------------------------------------------------------------------- parse_path


@pytest.mark.parametrize(
    "path, expected",
    [
        (
            "ToyCar/train/section_00_source_train_normal_0362_car_C2_spd_31V_mic_1.wav",
            ("dcase2021", "ToyCar", "section_00", "source", "train", 0,
             {"car": "C2", "spd": "31V", "mic": "1"}),
        ),
        (
            "fan/test/section_01_target_test_anomaly_0022_m-n_W.wav",
            ("dcase2021", "fan", "section_01", "target", "test", 1, {"m-n": "W"}),
        ),
        (
            "gearbox/test/section_00_source_test_normal_0026_volt_1.5_wt_150.wav",
            ("dcase2021", "gearbox", "section_00", "source", "test", 0, {"volt": "1.5", "wt": "150"}),
        ),
        (
            "valve/test/section_00_source_test_normal_0001_pat_01_noise.wav",
            ("dcase2021", "valve", "section_00", "source", "test", 0, {"pat": "01", "extra": "noise"}),
        ),
        ("pump/section_02_source_train_normal_0001.wav",
         ("dcase2021", "pump", "section_02", "source", "train", 0, {})),
        ("pump/test/section_03_0004.wav", ("dcase2021", "pump", "section_03", "source", "test", None, {})),
        ("pump/source_test/section_03_source_test_anomaly_0004.wav",
         ("dcase2021", "pump", "section_03", "source", "test", 1, {})),
        ("slider/train/normal_id_02_00000001.wav", ("dcase2020", "slider", "id_02", "source", "train", 0, {})),
        ("slider/test/anomaly_id_04_00000001.WAV", ("dcase2020", "slider", "id_04", "source", "test", 1, {})),
        ("6dB_fan/fan/id_00/abnormal/00000001.wav", ("mimii", "fan", "id_00", "source", None, 1, {})),
        ("fan/id_06/normal/00000001.flac", ("mimii", "fan", "id_06", "source", None, 0, {})),
        ("motor/anomaly/x.wav", ("generic", "motor", None, "source", None, 1, {})),
        ("motor/Normal/x.wav", ("generic", "motor", None, "source", None, 0, {})),
        ("motor/test/abnormal/x.wav", ("generic", "motor", None, "source", "test", 1, {})),
        ("motor/recording.wav", ("unlabelled", "motor", None, "source", None, None, {})),
        ("motor/train/recording.wav", ("unlabelled", "motor", None, "source", "train", None, {})),
    ],
)
def test_parse_path_layouts(tmp_path, path, expected):
    p = parse_path(tmp_path / path)
    assert (p.layout, p.machine, p.id, p.domain, p.split, p.label, dict(p.attributes)) == expected


def test_parse_path_relative_to_root_and_skips(tmp_path):
    root = tmp_path / "plant"
    assert parse_path("x.wav", root).machine == "plant"
    assert parse_path("normal/x.wav", root).machine == "plant"
    assert parse_path(root / "notes.txt") is None
    assert parse_path(root / ".x.wav") is None
    assert parse_path(root / ".cache" / "x.wav", root) is None


# ----------------------------------------------------------------------------- discover


def test_discover_each_layout_and_mixed_folder(tmp_path):
    touch(
        tmp_path,
        "dcase2023/ToyCar/train/section_00_source_train_normal_0001_car_C2.wav",
        "dcase2023/ToyCar/test/section_00_target_test_anomaly_0002_car_C3.wav",
        "dcase2020/pump/train/normal_id_00_00000000.wav",
        "dcase2020/pump/test/anomaly_id_00_00000000.wav",
        "mimii/-6dB_valve/valve/id_04/normal/00000000.wav",
        "mimii/-6dB_valve/valve/id_04/abnormal/00000000.wav",
        "generic/motor/normal/a.flac",
        "generic/motor/anomaly/b.wav",
        "loose/c.wav",
        "top.wav",
        "notes.txt",
        ".hidden.wav",
        ".git/x.wav",
    )
    records = discover(tmp_path)
    assert [r.path for r in records] == sorted(r.path for r in records)
    assert all(r.path.is_absolute() for r in records)
    got = {r.path.relative_to(tmp_path).as_posix(): (r.machine, r.id, r.split, r.label) for r in records}
    assert got == {
        "dcase2023/ToyCar/train/section_00_source_train_normal_0001_car_C2.wav": ("ToyCar", "section_00", "train", 0),
        "dcase2023/ToyCar/test/section_00_target_test_anomaly_0002_car_C3.wav": ("ToyCar", "section_00", "test", 1),
        "dcase2020/pump/train/normal_id_00_00000000.wav": ("pump", "id_00", "train", 0),
        "dcase2020/pump/test/anomaly_id_00_00000000.wav": ("pump", "id_00", "test", 1),
        "mimii/-6dB_valve/valve/id_04/normal/00000000.wav": ("valve", "id_04", None, 0),
        "mimii/-6dB_valve/valve/id_04/abnormal/00000000.wav": ("valve", "id_04", None, 1),
        "generic/motor/normal/a.flac": ("motor", None, None, 0),
        "generic/motor/anomaly/b.wav": ("motor", None, None, 1),
        "loose/c.wav": ("loose", None, None, None),
        "top.wav": (tmp_path.name, None, None, None),
    }


def test_discover_generic_root_is_the_machine(tmp_path):
    root = tmp_path / "compressor"
    touch(root, "normal/a.wav", "abnormal/b.wav")
    assert {(r.machine, r.label) for r in discover(root)} == {("compressor", 0), ("compressor", 1)}


def test_discover_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        discover(tmp_path / "nope")
    touch(tmp_path, "empty/readme.txt", "empty/.hidden.wav")
    with pytest.raises(DatasetError, match=r"no audio files \(\.wav, \.flac.*empty"):
        discover(tmp_path / "empty")
    with pytest.raises(ParameterError, match="folder, a manifest"):
        discover(tmp_path / "empty" / "readme.txt")


def test_discover_one_audio_file(tmp_path):
    (path,) = touch(tmp_path, "fan/id_00/normal/a.wav")
    (record,) = discover(path)
    assert (record.machine, record.id, record.label) == ("fan", "id_00", 0)


# ----------------------------------------------------------------------------- manifests


def test_manifest_relative_paths_extra_columns_and_fallback(tmp_path):
    touch(tmp_path, "clips/a.wav", "clips/b.wav", "fan/id_03/abnormal/c.wav",
          "ToyCar/test/section_00_target_test_normal_0001_car_C2.wav")
    manifest = write_csv(tmp_path / "lists" / "m.csv", """
path,label,machine,split,rpm,site
../clips/a.wav,normal,pump,train,1500,north
../clips/b.wav,Anomaly,pump,test,,south
../fan/id_03/abnormal/c.wav,,,,900,
../ToyCar/test/section_00_target_test_normal_0001_car_C2.wav,1,,,,
""")
    records = discover(manifest)
    assert [r.path for r in records] == sorted(r.path for r in records)
    toy, a, b, c = records  # "ToyCar" < "clips" < "fan"
    assert (a.path, a.machine, a.id, a.split, a.label) == (tmp_path / "clips/a.wav", "pump", None, "train", 0)
    assert a.attributes == {"rpm": "1500", "site": "north"}
    assert (b.label, b.split, b.attributes) == (1, "test", {"site": "south"})
    assert (c.machine, c.id, c.label, c.split) == ("fan", "id_03", 1, None)
    assert (toy.machine, toy.id, toy.domain, toy.split, toy.label) == ("ToyCar", "section_00", "target", "test", 1)
    assert toy.attributes == {"car": "C2"}


def test_folder_with_manifest_uses_it(tmp_path, caplog):
    touch(tmp_path, "a.wav", "b.wav")
    write_csv(tmp_path / "manifest.csv", "path\na.wav")
    with caplog.at_level(logging.INFO, logger="earshot.datasets"):
        records = discover(tmp_path)
    assert [r.path.name for r in records] == ["a.wav"]
    assert "manifest" in caplog.text


@pytest.mark.parametrize(
    "text, error, pattern",
    [
        ("file,label\na.wav,0", DatasetError, "no 'path' column"),
        ("path,label\na.wav,0\nmissing.wav,1", DatasetError, r"row 2 .*'missing.wav' does not exist"),
        ("path,label\na.wav,bad", ParameterError, r"row 1 .*label .*'bad'"),
        ("path,split\na.wav,eval", ParameterError, r"row 1 .*split .*'eval'"),
        ("path,label", DatasetError, "no rows"),
    ],
)
def test_manifest_errors(tmp_path, text, error, pattern):
    touch(tmp_path, "a.wav")
    manifest = write_csv(tmp_path / "m.csv", text)
    with pytest.raises(error, match=pattern) as info:
        discover(manifest)
    assert "\n" not in str(info.value) and "m.csv" in str(info.value)


# ----------------------------------------------------------------------------- default split


def group_of(n_normal: int, n_abnormal: int, n_unknown: int = 0, **kw) -> list[Record]:
    return ([rec(f"n{i:03d}.wav", 0, **kw) for i in range(n_normal)]
            + [rec(f"a{i:03d}.wav", 1, **kw) for i in range(n_abnormal)]
            + [rec(f"u{i:03d}.wav", None, **kw) for i in range(n_unknown)])


def split_counts(records: list[Record]) -> Counter:
    return Counter((r.split, r.label) for r in records)


def test_default_split_counts_per_group():
    records = group_of(10, 3, 2) + group_of(4, 3, id="id_01") + group_of(5, 0, id="id_02")
    out = assign_default_split(records, group_by="id")
    by_group = {g: split_counts([r for r in out if r.group("id") == g]) for g in
                ("pump/id_00", "pump/id_01", "pump/id_02")}
    assert by_group["pump/id_00"] == {
        ("test", 1): 3, ("test", 0): 3, ("train", 0): 7, ("train", None): 2
    }
    assert by_group["pump/id_01"] == {("test", 1): 3, ("test", 0): 2, ("train", 0): 2}  # capped at half
    assert by_group["pump/id_02"] == {("train", 0): 5}
    assert [r.path for r in out] == [r.path for r in records]  # input order kept


def test_default_split_only_fills_missing_splits():
    records = group_of(6, 2) + [rec("kept.wav", 0, split="test"), rec("kept2.wav", 1, split="train")]
    out = assign_default_split(records)
    assert out[-2:] == records[-2:]
    assert split_counts(out[:-2]) == {("test", 1): 2, ("test", 0): 2, ("train", 0): 4}


def test_default_split_deterministic_and_order_independent():
    records = group_of(40, 10) + group_of(30, 5, machine="fan")
    test_set = lambda recs: {r.path for r in recs if r.split == "test"}  # noqa: E731
    first = assign_default_split(records, seed=3)
    shuffled = records[:]
    random.Random(1).shuffle(shuffled)
    assert test_set(first) == test_set(assign_default_split(records, seed=3))
    assert test_set(first) == test_set(assign_default_split(shuffled, seed=3))
    assert test_set(first) != test_set(assign_default_split(records, seed=4))
    # a group's split does not depend on the other groups
    pump_only = [r for r in records if r.machine == "pump"]
    pump_alone = test_set(assign_default_split(pump_only, seed=3))
    assert {p for p in test_set(first) if "pump" in p.parts} == pump_alone


def test_default_split_group_by_machine_and_bad_group_by():
    records = group_of(4, 2) + group_of(4, 2, id="id_01")
    out = assign_default_split(records, group_by="machine")
    assert split_counts(out) == {("test", 1): 4, ("test", 0): 4, ("train", 0): 4}
    with pytest.raises(ParameterError, match="group_by"):
        assign_default_split(records, group_by="site")


def test_train_test_groups():
    records = group_of(6, 2, 1) + group_of(4, 0, machine="fan", id=None)
    groups = train_test(records, group_by="id")
    assert list(groups) == ["fan", "pump/id_00"]
    train, test = groups["pump/id_00"]
    assert (len(train), len(test)) == (5, 4)
    assert all(r.split == "train" for r in train) and all(r.split == "test" for r in test)
    assert [r.path for r in train] == sorted(r.path for r in train)
    assert [len(x) for x in groups["fan"]] == [4, 0]


# ----------------------------------------------------------------------------- split files


@pytest.fixture
def small_tree(tmp_path):
    touch(tmp_path, "data/motor/normal/a.wav", "data/motor/normal/b.wav", "data/motor/abnormal/c.wav")
    return tmp_path


def test_split_file_overrides(small_tree):
    split_file = write_csv(small_tree / "splits.csv", f"""
path,split,label
data/motor/normal/a.wav,test,
{small_tree / 'data/motor/abnormal/c.wav'},train,normal
""")
    records = discover(small_tree / "data", split_file=split_file)
    got = {r.path.name: (r.split, r.label) for r in records}
    assert got == {"a.wav": ("test", 0), "b.wav": (None, 0), "c.wav": ("train", 0)}
    assert {r.path.name: r.split for r in assign_default_split(records)}["b.wav"] == "train"


@pytest.mark.parametrize(
    "text, error, pattern",
    [
        ("path,split\ndata/motor/normal/a.wav,valid", ParameterError, r"row 1 .*'valid'"),
        ("path,split,label\ndata/motor/normal/a.wav,test,2", ParameterError, r"row 1 .*label .*'2'"),
        ("path,split\ndata/motor/normal/zz.wav,test", DatasetError, r"row 1.*zz\.wav.*matches no clip"),
        ("path\ndata/motor/normal/a.wav", DatasetError, "no 'split' column"),
        ("path,split\ndata/motor/normal/a.wav,test\ndata/motor/../motor/normal/a.wav,train",
         ParameterError, "listed twice"),
    ],
)
def test_split_file_errors(small_tree, text, error, pattern):
    records = discover(small_tree / "data")
    with pytest.raises(error, match=pattern):
        apply_split_file(records, write_csv(small_tree / "splits.csv", text))


def test_split_file_missing(small_tree):
    with pytest.raises(ParameterError, match="split_file"):
        apply_split_file(discover(small_tree / "data"), small_tree / "nope.csv")


# ----------------------------------------------------------------------------- describe


def test_describe_counts():
    records = group_of(3, 1, 1) + group_of(2, 0, split="train", machine="fan")
    summary = describe(records, group_by="machine")
    assert summary["n_records"] == 7 and summary["n_machines"] == 2
    assert summary["labels"] == {"normal": 5, "anomaly": 1, "unknown": 1}
    assert summary["splits"] == {"train": 2, "test": 0, "none": 5}
    assert list(summary["groups"]) == ["fan", "pump"]
    assert summary["groups"]["pump"]["labels"] == {"normal": 3, "anomaly": 1, "unknown": 1}


# ----------------------------------------------------------------------------- shared real data


@needs_real
def test_real_dcase2020():
    records = discover(REAL / "dcase2020")
    assert {(r.machine, r.id) for r in records} == {("unknown", "id_00")}
    assert split_counts(records) == {("train", 0): 75, ("test", 1): 1}


@needs_real
def test_real_dcase2023():
    records = discover(REAL / "dcase2023")
    assert {r.id for r in records} == {"section_00"}
    machines = {"ToyCar", "ToyTrain", "bearing", "fan", "gearbox", "slider", "valve"}
    assert {r.machine for r in records} == machines
    assert {r.domain for r in records} == {"source", "target"}
    by_name = {r.path.name: r for r in records}
    toy = by_name["section_00_source_train_normal_0362_car_C2_spd_31V_mic_1.wav"]
    assert (toy.split, toy.label, toy.attributes) == ("train", 0, {"car": "C2", "spd": "31V", "mic": "1"})
    fan = by_name["section_00_source_test_anomaly_0022_m-n_W.wav"]
    assert (fan.split, fan.label, fan.attributes["m-n"]) == ("test", 1, "W")
    gear = by_name["section_00_target_test_anomaly_0040_volt_1.5_wt_130.wav"]
    assert (gear.domain, gear.attributes) == ("target", {"volt": "1.5", "wt": "130"})


@needs_real
def test_real_mimii():
    valve = discover(REAL / "mimii-valve")
    assert {r.group("id") for r in valve} == {"valve/id_00", "valve/id_06"}
    assert all(r.split is None for r in valve)
    fan = discover(REAL / "mimii-fan")
    counts = Counter((r.machine, r.id, r.label) for r in fan)
    assert counts == {("fan", "id_00", 0): 20, ("fan", "id_00", 1): 20}
