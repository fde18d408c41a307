"""Start-up: `earshot score` (and the packages on its path) load no heavy module.

Each check runs in a fresh interpreter and lists, at exit, which of the heavy modules are in
``sys.modules``: scipy.stats and scipy.sparse (about 0.6 s and 0.1 s of CPU to import), torch,
matplotlib, sklearn and the service stack. Scoring needs numpy, scipy.fft, soundfile and
onnxruntime only. The command line adds typer; rich (about 0.05 s) loads only when a console
prints or bars are drawn, pydantic not at all (typer 0.29 imports it to parse every parameter,
about 0.08 s: pyproject.toml keeps typer below 0.29), and ``earshot VERB`` imports VERB's module
only. Nor does scoring load earshot's dataset discovery and splitting or its training helpers.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from earshot.cli.app import main
from earshot.cli.commands import MODULES

from helpers.datasets import write_hum_dataset

HEAVY = ("scipy.stats", "scipy.sparse", "torch", "matplotlib", "sklearn", "fastapi", "sqlalchemy", "uvicorn",
         "starlette")
#: Not needed to score to stdout with stderr not a terminal.
CLI_EXTRA = ("rich", "pydantic")
#: earshot's own modules that scoring does not need (the packages re-export them lazily).
NOT_SCORING = ("earshot.datasets.discover", "earshot.datasets.splits", "earshot.detection._training")

# Run the command line in this interpreter, then print as JSON the heavy modules, the CLI extras and
# the verb modules of earshot.cli it loaded.
_WRAPPER = f"""
import json, sys
from earshot.cli.app import main
from earshot.cli.commands import MODULES
code = main(sys.argv[1:])
print(json.dumps({{"code": code, "heavy": [m for m in {HEAVY + CLI_EXTRA + NOT_SCORING!r} if m in sys.modules],
                  "verbs": sorted(v for v in MODULES if "earshot.cli." + v in sys.modules)}}), file=sys.stderr)
"""


def _heavy_after(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *args], capture_output=True, text=True, timeout=300)
    last = proc.stderr.strip().splitlines()[-1]
    return json.loads(last)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_hum_dataset(tmp_path_factory.mktemp("data"), np.random.default_rng(0), ids=("id_00",),
                             n_normal=10, n_abnormal=2)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dense-ae", "gauss"])
def test_score_loads_no_heavy_module(kind, data, tmp_path):
    out = tmp_path / "model"
    extra = ["--epochs", "2"] if kind == "dense-ae" else []
    assert main(["train", str(data), "--out", str(out), "--model", kind, "--n-mels", "32", *extra]) == 0
    wav = sorted(data.rglob("*.wav"))[0]
    result = _heavy_after("score", str(out), str(wav), "--format", "csv")
    assert result == {"code": 0, "heavy": [], "verbs": ["score"]}


def test_a_worker_builds_one_onnx_session_per_bundle(data, tmp_path, monkeypatch):
    """The batch worker loads its model with one-thread sessions: it builds no other to throw away."""
    import onnxruntime as ort

    from earshot.pipeline.batch import load_worker_model

    out = tmp_path / "model"
    assert main(["train", str(data), "--out", str(out), "--model", "gauss", "--n-mels", "32"]) == 0
    built = []
    real = ort.InferenceSession

    def counting(path, options=None, **kwargs):
        built.append(options.intra_op_num_threads)
        return real(path, options, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", counting)
    (bundle,) = load_worker_model(str(out)).bundles.values()
    assert built == [1]
    wav = sorted(data.rglob("*.wav"))[0]
    assert bundle.score_files([wav, wav]).shape == (2,) and built == [1]


def test_score_help_imports_no_library_module():
    """`earshot score` imports its library module before Typer runs (app._preload), but not for --help."""
    code = ("import sys\nfrom earshot.cli.app import main\nmain(['score', '--help'])\n"
            "print('earshot.pipeline.batch' in sys.modules, 'numpy' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout.strip().splitlines()[-1] == "False False"


def test_help_still_loads_every_verb():
    assert _heavy_after("--help")["verbs"] == sorted(MODULES)


def test_importing_the_packages_on_the_scoring_path_loads_no_heavy_module():
    code = ("import sys, earshot, earshot.features, earshot.features.filterbank, earshot.io, earshot.bundle, "
            "earshot.detection, earshot.pipeline.batch, earshot.cli\n"
            f"print([m for m in {HEAVY + CLI_EXTRA + NOT_SCORING!r} if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout.strip() == "[]"


def test_the_sparse_filterbank_still_builds_when_asked():
    from earshot.features import mel_filterbank
    from earshot.features.melscale import mel_weights

    fb = mel_filterbank(sr=16000, n_fft=1024, n_mels=64)
    assert type(fb).__module__.startswith("scipy.sparse")
    np.testing.assert_array_equal(fb.toarray(), mel_weights(16000, 1024, 64, 0.0, None))
