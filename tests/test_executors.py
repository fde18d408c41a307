"""Executors: spec parsing, ordered bounded map, and identical results in every back-end
(batch scoring and feature extraction), on one shared pool and one LocalCluster."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest

from earshot.errors import ParameterError
from earshot._util.executors import (DaskExecutor, ProcessExecutor, SerialExecutor, batched, get_executor,
                               parse_executor)
from helpers.scale import tiny_data, tiny_model

try:
    import dask.distributed  # noqa: F401

    HAVE_DASK = True
except ImportError:  # the dask extra is optional
    HAVE_DASK = False


@pytest.fixture(scope="module")
def pool():
    with ProcessExecutor(2) as ex:
        yield ex


@pytest.fixture(scope="module")
def cluster():
    if not HAVE_DASK:
        pytest.skip("dask.distributed is not installed (extra: dask)")
    with DaskExecutor(workers=2) as ex:
        yield ex


@pytest.fixture(params=["serial", "processes", "dask"])
def executor(request):
    if request.param == "serial":
        return SerialExecutor()
    return request.getfixturevalue({"processes": "pool", "dask": "cluster"}[request.param])


# ---------------------------------------------------------------------- specs
@pytest.mark.parametrize("spec, expected", [
    ("serial", ("serial", None)), ("processes", ("processes", None)), ("dask", ("dask", None)),
    ("DASK", ("dask", None)), ("dask=tcp://10.0.0.5:8786", ("dask", "tcp://10.0.0.5:8786")),
    ("dask=localhost:8786", ("dask", "tcp://localhost:8786")),
])
def test_parse_executor(spec, expected):
    assert parse_executor(spec) == expected


@pytest.mark.parametrize("spec", ["threads", "", "processes=4", "dask=nohost", "dask=http://h:1", "dask=h:port"])
def test_bad_executor_spec_names_the_option(spec):
    with pytest.raises(ParameterError, match="--executor"):
        parse_executor(spec)


def test_get_executor_from_environment(monkeypatch):
    monkeypatch.setenv("EARSHOT_EXECUTOR", "serial")
    assert isinstance(get_executor(None, default="processes"), SerialExecutor)
    monkeypatch.delenv("EARSHOT_EXECUTOR")
    assert isinstance(get_executor(None, default="processes"), ProcessExecutor)
    with pytest.raises(ParameterError, match="workers"):
        get_executor("processes", workers=0)


def test_batched_is_lazy_and_complete():
    source = itertools.count()
    first = next(batched(source, 3))
    assert first == [0, 1, 2] and next(source) == 3  # consumed no more than one batch
    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(ParameterError):
        next(batched(range(3), 0))


# ---------------------------------------------------------------------- map
def test_map_keeps_order_and_bounds_the_work_in_flight(executor):
    pulled = []

    def items():
        for i in range(40):
            pulled.append(i)
            yield -i

    results = executor.map(abs, items())
    assert next(results) == 0
    assert len(pulled) <= 2 * executor.workers + 1  # the iterable is consumed lazily
    assert list(results) == list(range(1, 40))


def test_map_raises_the_task_error(executor):
    with pytest.raises(ValueError, match="not-a-number"):
        list(executor.map(int, ["1", "2", "not-a-number", "4"]))
    assert list(executor.map(int, ["7"])) == [7]  # a single task runs here; the executor still works
    assert list(executor.map(int, [])) == []


def test_tasks_run_in_other_processes(executor):
    import os

    pids = set(executor.map(_pid_of, range(2 * executor.workers + 2)))
    if isinstance(executor, SerialExecutor):
        assert pids == {os.getpid()}
    else:
        assert os.getpid() not in pids


def _pid_of(_):  # used by the serial executor only: workers cannot import the test module
    import os

    return os.getpid()


# ---------------------------------------------------------------------- identical results
def test_batch_scoring_is_identical_in_every_executor(executor, tmp_path_factory):
    from earshot.pipeline.batch import iter_scores

    data, model = tiny_data(tmp_path_factory), tiny_model(tmp_path_factory)
    reference = [r for b in iter_scores(model, [data], executor="serial", batch_size=5) for r in b]
    rows = [r for b in iter_scores(model, [data], executor=executor, batch_size=5) for r in b]
    assert len(rows) == len(reference) == 32
    assert rows == reference  # same paths, order, groups and bit-identical scores
    # each clip is scored on its own: the batch size changes nothing either
    assert [r for b in iter_scores(model, [data], executor=executor, batch_size=64) for r in b] == rows


def test_feature_extraction_is_identical_in_every_executor(executor, tmp_path_factory, monkeypatch):
    from earshot.features.cache import feature_reader
    from earshot.features.config import FeatureConfig
    from earshot.pipeline import extract_store

    monkeypatch.delenv("EARSHOT_CACHE", raising=False)
    paths = sorted(tiny_data(tmp_path_factory).rglob("*.wav"))
    config = FeatureConfig(n_mels=32)
    serial = extract_store(paths, config, executor="serial")
    reader = feature_reader(paths, config, executor=executor, batch_size=6)
    if not isinstance(executor, SerialExecutor):  # computed ahead by the workers, written to disk
        assert len(reader.entries) == len(paths) and all(e.exists() for e in reader.entries.values())
    store = extract_store(paths, config, executor=executor)
    assert np.array_equal(store.frames, serial.frames) and np.array_equal(store.offsets, serial.offsets)
    assert np.array_equal(reader(paths[3], config), serial[3])


def test_cli_executor_option_and_bad_spec(tmp_path_factory, tmp_path, capsys):
    from earshot.cli.app import main

    data, model = tiny_data(tmp_path_factory), tiny_model(tmp_path_factory)
    code = main(["score", str(model), str(data), "--executor", "serial", "--out", str(tmp_path / "r.csv")])
    assert code == 0 and "scored 32 files" in capsys.readouterr().out
    code = main(["score", str(model), str(data), "--executor", "threads"])
    err = capsys.readouterr().err
    assert code == 1 and len(err.splitlines()) == 1 and "--executor" in err


@pytest.mark.skipif(not HAVE_DASK, reason="dask.distributed is not installed (extra: dask)")
def test_unreachable_dask_scheduler_is_a_parameter_error():
    ex = get_executor("dask=tcp://127.0.0.1:9")
    ex.connect_timeout_s = 1.0
    with ex, pytest.raises(ParameterError, match="dask=tcp://127.0.0.1:9: cannot reach the Dask scheduler"):
        list(ex.map(abs, [-1, -2]))


def test_executor_modules_import_no_heavy_dependency():
    code = ("import sys, earshot._util.executors, earshot.pipeline.batch, earshot.features.cache; "
            "bad = [m for m in ('torch', 'dask', 'distributed', 'pyarrow') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cross_validation_folds_are_identical_in_every_executor(executor, tmp_path_factory):
    from earshot.pipeline.crossval import cross_validate
    from earshot.features.config import FeatureConfig

    data = tiny_data(tmp_path_factory)
    kw = dict(model="gauss", features=FeatureConfig(n_mels=32))
    serial = cross_validate(data, executor="serial", **kw)
    got = cross_validate(data, executor=executor, **kw)
    for s in (serial, got):
        for scheme in s["schemes"].values():
            for fold in scheme["folds"]:
                fold.pop("fit_seconds", None)
    assert got == serial and len(got["schemes"]["leave-one-out"]["folds"]) == 2
