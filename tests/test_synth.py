"""Tests of the synthesiser (earshot.synth): determinism, layout, ground truth, validation."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earshot.errors import ParameterError
from earshot.synth import (
    FAULT_TYPES,
    FAULTS,
    MACHINES,
    MANIFEST_COLUMNS,
    render_clip,
    render_long,
    synthesize,
    synthesize_long,
)

SR = 16000
SMALL = dict(n_ids=1, n_normal=2, n_abnormal=2, duration_s=0.5)
ALL_FAULTS = [(m, f) for m, faults in FAULTS.items() for f in faults]


def read_manifest(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == MANIFEST_COLUMNS
        return list(reader)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- registry


def test_registry_lists_machines_and_faults():
    assert set(MACHINES) == {"fan", "pump", "valve", "slider", "bearing"}
    assert set(FAULTS) == set(MACHINES)
    distinct = {f for faults in FAULTS.values() for f in faults}
    assert len(distinct) >= 8
    for machine, model in MACHINES.items():
        assert len(FAULTS[machine]) >= 2
        assert model.default_fault in FAULTS[machine]
        assert set(FAULTS[machine]) <= set(FAULT_TYPES)


def test_importing_synth_loads_no_heavy_dependency():
    code = ("import sys, earshot.synth; "
            "print([m for m in ('torch', 'matplotlib', 'sklearn', 'librosa') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- render_clip


@pytest.mark.parametrize("machine", list(MACHINES))
def test_render_clip_normal(machine):
    y = render_clip(machine, machine_id=0, duration_s=1.0, sr=SR, snr_db=0.0,
                    rng=np.random.default_rng(0))
    assert y.dtype == np.float32 and y.shape == (SR,)
    assert np.all(np.isfinite(y)) and np.max(np.abs(y)) <= 1.0
    rms_db = 20 * np.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
    assert -36.0 < rms_db < -20.0


def test_render_clip_is_deterministic_and_ids_differ():
    kw = dict(machine_id=2, fault="cavitation", severity=0.5, duration_s=0.5, sr=SR, snr_db=6.0)
    a = render_clip("pump", rng=np.random.default_rng(7), **kw)
    b = render_clip("pump", rng=np.random.default_rng(7), **kw)
    c = render_clip("pump", rng=np.random.default_rng(8), **kw)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    other_id = render_clip("pump", rng=np.random.default_rng(7), **{**kw, "machine_id": 4})
    other_seed = render_clip("pump", rng=np.random.default_rng(7), seed=1, **kw)
    assert not np.array_equal(a, other_id)
    assert not np.array_equal(a, other_seed)


def test_target_domain_differs_from_source():
    kw = dict(machine_id=0, duration_s=0.5, sr=SR, snr_db=0.0)
    for machine in MACHINES:
        src = render_clip(machine, rng=np.random.default_rng(1), **kw)
        tgt = render_clip(machine, rng=np.random.default_rng(1), domain="target", **kw)
        assert not np.array_equal(src, tgt)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"machine": "drill"}, "machine"),
        ({"machine_id": -1}, "machine_id"),
        ({"machine_id": True}, "machine_id"),
        ({"fault": "leak"}, "fault"),  # not a fan fault
        ({"fault": "imbalance", "severity": 1.5}, "severity"),
        ({"severity": 0.5}, "severity"),  # severity without a fault
        ({"duration_s": 0.0}, "duration_s"),
        ({"duration_s": -1.0}, "duration_s"),
        ({"snr_db": float("nan")}, "snr_db"),
        ({"snr_db": float("inf")}, "snr_db"),
        ({"sr": 100}, "sr"),
        ({"sr": 16000.5}, "sr"),
        ({"domain": "other"}, "domain"),
        ({"rng": 0}, "rng"),
    ],
)
def test_render_clip_bad_parameters(kwargs, name):
    args = dict(machine="fan", machine_id=0, duration_s=0.5, sr=SR, snr_db=0.0,
                rng=np.random.default_rng(0))
    args.update(kwargs)
    machine = args.pop("machine")
    with pytest.raises(ParameterError, match=name):
        render_clip(machine, **args)


# ----------------------------------------------------------------------------- synthesize


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    kw = dict(machines=["valve", "bearing"], **SMALL)
    synthesize(tmp_path / "a", seed=3, **kw)
    synthesize(tmp_path / "b", seed=3, **kw)
    synthesize(tmp_path / "c", seed=4, **kw)
    a, b, c = (tree_bytes(tmp_path / x) for x in "abc")
    assert a == b
    wavs = [k for k in a if k.endswith(".wav")]
    assert wavs and all(a[k] != c[k] for k in wavs)


def test_clips_do_not_depend_on_other_machines_or_n_jobs(tmp_path):
    synthesize(tmp_path / "one", machines=["pump"], **SMALL)
    synthesize(tmp_path / "two", machines=["fan", "pump"], n_jobs=2, **SMALL)
    one, two = tree_bytes(tmp_path / "one"), tree_bytes(tmp_path / "two")
    pump = {k: v for k, v in two.items() if k.startswith("pump/")}
    assert pump == {k: v for k, v in one.items() if k.startswith("pump/")}
    assert len(pump) == 4


def test_manifest_matches_files_and_ground_truth(tmp_path):
    manifest = synthesize(tmp_path, machines=list(MACHINES), n_ids=2, n_normal=3, n_abnormal=4,
                          duration_s=0.25)
    assert manifest == tmp_path / "manifest.csv"
    rows = read_manifest(manifest)
    on_disk = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.wav")}
    assert {r["path"] for r in rows} == on_disk
    assert len(rows) == len(on_disk) == 5 * 2 * (3 + 4)
    assert not list(tmp_path.rglob("*.tmp*"))
    for r in rows:
        machine, ident, folder, name = r["path"].split("/")
        assert (machine, ident) == (r["machine"], r["id"])
        assert ident in ("id_00", "id_02")
        assert folder == ("abnormal" if r["label"] == "1" else "normal")
        assert r["domain"] == "source" and r["split"] == "" and r["shift"] == ""
        if r["label"] == "1":
            assert r["fault"] in FAULTS[machine]
            assert 0.0 < float(r["severity"]) <= 1.0
        else:
            assert r["label"] == "0" and r["fault"] == "" and r["severity"] == ""
    info = sf.info(str(tmp_path / rows[0]["path"]))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (SR, 1, "PCM_16", 4000)
    # every fault type of a machine appears among its abnormal clips
    for machine in MACHINES:
        faults = {r["fault"] for r in rows if r["machine"] == machine and r["label"] == "1"}
        assert faults == set(FAULTS[machine][:4])


def test_domain_shift_adds_target_rows(tmp_path):
    rows = read_manifest(synthesize(tmp_path, machines=["fan", "slider"], n_ids=2, n_normal=4,
                                    n_abnormal=2, duration_s=0.25, domain_shift=True, n_target=2))
    target = [r for r in rows if r["domain"] == "target"]
    assert len(target) == 2 * 2 * (2 + 1)
    for r in target:
        assert r["shift"] in ("speed", "load", "background") and r["shift_value"]
    assert all(r["shift"] == "" for r in rows if r["domain"] == "source")
    normal_names = sorted(r["path"] for r in target if r["label"] == "0")
    assert normal_names[0].endswith("normal/00000004.wav")  # numbering continues after source
    # the default: about 10 % of n_normal
    rows = read_manifest(synthesize(tmp_path / "d", machines=["valve"], n_ids=1, n_normal=20,
                                    n_abnormal=4, duration_s=0.25, domain_shift=True))
    assert sum(r["domain"] == "target" and r["label"] == "0" for r in rows) == 2
    assert sum(r["domain"] == "target" and r["label"] == "1" for r in rows) == 1


def test_refuses_foreign_folder_but_replaces_previous_output(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ParameterError, match="out_dir"):
        synthesize(foreign, machines=["fan"], **SMALL)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    out = tmp_path / "synth"
    synthesize(out, machines=["fan", "pump"], n_ids=1, n_normal=3, n_abnormal=1, duration_s=0.25)
    (out / "notes.txt").write_text("kept")
    rows = read_manifest(synthesize(out, machines=["fan"], n_ids=1, n_normal=2, n_abnormal=1,
                                    duration_s=0.25))
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*.wav")}
    assert on_disk == {r["path"] for r in rows} and len(on_disk) == 3
    assert not (out / "pump").exists()
    assert (out / "notes.txt").read_text() == "kept"
    with pytest.raises(ParameterError, match="out_dir"):
        synthesize(out / "notes.txt", machines=["fan"], **SMALL)


def test_interrupted_run_leaves_no_partial_files(tmp_path):
    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        synthesize(tmp_path, machines=["fan"], n_ids=1, n_normal=300, n_abnormal=0,
                   duration_s=0.1, progress=stop)
    assert not (tmp_path / "manifest.csv").exists()
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]
    wavs = list(tmp_path.rglob("*.wav"))
    assert 0 < len(wavs) < 300
    assert all(sf.info(str(p)).frames == 1600 for p in wavs)
    # a rerun into the interrupted folder is allowed
    synthesize(tmp_path, machines=["fan"], **SMALL)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"machines": ["fan", "drill"]}, "machines"),
        ({"machines": []}, "machines"),
        ({"n_ids": 0}, "n_ids"),
        ({"n_ids": 2.5}, "n_ids"),
        ({"n_normal": 0}, "n_normal"),
        ({"n_abnormal": -1}, "n_abnormal"),
        ({"snr_db": float("nan")}, "snr_db"),
        ({"duration_s": 0}, "duration_s"),
        ({"seed": -1}, "seed"),
        ({"n_target": 3}, "n_target"),  # without domain_shift
        ({"domain_shift": "yes"}, "domain_shift"),
        ({"n_jobs": 0}, "n_jobs"),
    ],
)
def test_synthesize_bad_parameters(tmp_path, kwargs, name):
    args = dict(machines=["fan"], **SMALL)
    args.update(kwargs)
    with pytest.raises(ParameterError, match=name):
        synthesize(tmp_path / "out", **args)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- long recordings


def test_synthesize_long_writes_wav_and_ground_truth(tmp_path):
    path = tmp_path / "rec" / "long.wav"
    truth = synthesize_long(path, machine="bearing", machine_id=2, duration_s=4.0,
                            fault_start_s=1.0, fault_end_s=3.0, severity=0.7, seed=5)
    sidecar = json.loads((tmp_path / "rec" / "long.wav.json").read_text())
    assert sidecar == {**truth}
    assert (truth["machine"], truth["id"], truth["fault"]) == ("bearing", "id_02", "outer_race")
    assert (truth["fault_start_s"], truth["fault_end_s"], truth["severity"]) == (1.0, 3.0, 0.7)
    assert truth["events"] == [{"start_s": 1.0, "end_s": 3.0, "fault": "outer_race", "severity": 0.7}]
    info = sf.info(str(path))
    assert (info.frames, info.samplerate, info.subtype) == (4 * SR, SR, "PCM_16")
    end_default = synthesize_long(tmp_path / "b.wav", duration_s=2.0, fault_start_s=1.0)
    assert end_default["fault_end_s"] == 2.0 and end_default["fault"] == "imbalance"


@pytest.mark.parametrize("machine, fault", ALL_FAULTS)
def test_long_fault_is_confined_to_its_time_range(machine, fault):
    kw = dict(machine_id=0, duration_s=6.0, fault=fault, fault_start_s=1.5, fault_end_s=4.5, snr_db=0.0)
    y1, truth = render_long(machine, severity=1.0, **kw)
    y0, _ = render_long(machine, severity=0.0, **kw)
    a, b = int(1.5 * SR), int(4.5 * SR)
    diff = (y1 - y0).astype(np.float64)
    assert np.max(np.abs(diff[:a])) <= 1e-6 and np.max(np.abs(diff[b:])) <= 1e-6
    inside = np.sqrt(np.mean(diff[a:b] ** 2))
    normal = np.sqrt(np.mean(y0[a:b].astype(np.float64) ** 2))
    assert inside > 0.05 * normal
    # a weaker fault changes the sound less
    y_weak, _ = render_long(machine, severity=0.3, **kw)
    assert np.sqrt(np.mean((y_weak - y0)[a:b].astype(np.float64) ** 2)) < inside


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"fault_start_s": 5.0}, "fault_start_s"),
        ({"fault_end_s": 0.5}, "fault_end_s"),
        ({"fault_end_s": 9.0}, "fault_end_s"),
        ({"fault": "cavitation"}, "fault"),
        ({"severity": -0.1}, "severity"),
        ({"machine": "drill"}, "machine"),
        ({"duration_s": math.inf}, "duration_s"),
    ],
)
def test_synthesize_long_bad_parameters(tmp_path, kwargs, name):
    args = dict(machine="fan", duration_s=4.0, fault_start_s=1.0)
    args.update(kwargs)
    with pytest.raises(ParameterError, match=name):
        synthesize_long(tmp_path / "x.wav", **args)
    assert not list(tmp_path.iterdir())
