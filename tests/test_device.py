"""Where torch detectors train (``--device auto|cpu|cuda``) and how they use the CPU.

CPU-only: ``cuda`` is checked to fail in one line where torch sees no GPU, ``auto`` to train
exactly as ``cpu`` there. A GPU run is ``bench/gpu.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from earshot._util import cores  # noqa: E402
from earshot.detection import _training, resolve_device  # noqa: E402
from earshot.detection.autoencoder import AutoencoderDetector  # noqa: E402
from earshot.detection.cnn import CNNDetector  # noqa: E402
from earshot.detection.lstm_autoencoder import LstmAutoencoderDetector  # noqa: E402
from earshot.errors import ParameterError  # noqa: E402

from helpers.cli import one_line_error, run  # noqa: E402
from helpers.datasets import write_hum_dataset  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="torch sees a GPU here: auto picks it")


def _clips(n=8, n_mels=16, n_time=40, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(-40, 5, size=(n_mels, n_time)).astype(np.float32) for _ in range(n)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_hum_dataset(tmp_path_factory.mktemp("data"), np.random.default_rng(0), ids=("id_00",),
                             n_normal=8, n_abnormal=2)


# ---------------------------------------------------------------------- choosing the device
@no_gpu
def test_auto_is_the_cpu_without_a_gpu_and_cuda_when_torch_sees_one(monkeypatch):
    assert resolve_device("auto").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"


@no_gpu
def test_cuda_without_a_gpu_is_a_parameter_error():
    with pytest.raises(ParameterError, match="device: cuda .*no CUDA device"):
        resolve_device("cuda")


@pytest.mark.parametrize("bad", ["gpu", "CUDA", "cuda:x", "", 0])
def test_unknown_device_names_are_refused(bad):
    with pytest.raises(ParameterError, match="device: expected one of auto, cpu, cuda"):
        resolve_device(bad)
    with pytest.raises(ParameterError, match="device"):
        AutoencoderDetector(device=bad, epochs=1).fit(_clips())


@pytest.mark.parametrize("cls", [AutoencoderDetector, LstmAutoencoderDetector, CNNDetector])
def test_every_torch_detector_has_a_device_parameter(cls):
    assert cls().get_params()["device"] == "auto"


# ---------------------------------------------------------------------- same training on the CPU
@no_gpu
@pytest.mark.parametrize("cls, params", [(AutoencoderDetector, {"n_frames": 3, "hidden": 16, "bottleneck": 4}),
                                         (LstmAutoencoderDetector, {"n_frames": 8, "window_hop": 4, "hidden": 8})])
def test_auto_trains_bitwise_as_cpu(cls, params):
    a = cls(device="auto", epochs=3, batch_size=32, **params).fit(_clips())
    c = cls(device="cpu", epochs=3, batch_size=32, **params).fit(_clips())
    for (name, wa), (_, wc) in zip(a.state_dict().items(), c.state_dict().items()):
        assert torch.equal(wa, wc), name
    assert a.threshold_ == c.threshold_
    assert all(t.device.type == "cpu" for t in a.state_dict().values())


@no_gpu
def test_cnn_auto_trains_bitwise_as_cpu():
    clips, y = _clips(12, n_time=48), np.array([0] * 8 + [1] * 4)
    params = {"n_frames": 16, "width": 4, "n_blocks": 1, "epochs": 2, "batch_size": 8}
    a = CNNDetector(device="auto", **params).fit(clips, y)
    c = CNNDetector(device="cpu", **params).fit(clips, y)
    for (name, wa), (_, wc) in zip(a.state_dict().items(), c.state_dict().items()):
        assert torch.equal(wa, wc), name


def test_the_cpu_optimiser_is_foreach_adam():
    net = torch.nn.Linear(3, 2)
    adam = _training.make_optimiser(net.parameters(), torch.device("cpu"), lr=1e-3)
    adamw = _training.make_optimiser(net.parameters(), torch.device("cpu"), lr=1e-3, kind="adamw", weight_decay=0.1)
    assert type(adam) is torch.optim.Adam and adam.defaults["foreach"] is True
    assert type(adamw) is torch.optim.AdamW and adamw.defaults["weight_decay"] == 0.1


# ---------------------------------------------------------------------- threads on a busy machine
@pytest.mark.parametrize("load, expected", [(0.3, 2), (1.0, 2), (2.2, 1), (6.5, 1)])
def test_idle_cores_leaves_the_cores_other_work_takes(monkeypatch, load, expected):
    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(cores.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(cores.os, "getloadavg", lambda: (load, load, load))
    assert cores.idle_cores() == expected


def test_training_threads_lowers_never_raises_and_restores(monkeypatch):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(_training, "idle_cores", lambda: 1)
        with _training.training_threads(torch.device("cpu")) as n:
            assert n == 1 and torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        monkeypatch.setattr(_training, "idle_cores", lambda: 8)
        with _training.training_threads(torch.device("cpu")) as n:
            assert n == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------- the command line
@no_gpu
@pytest.mark.parametrize("verb", ["train", "cv"])
def test_cli_cuda_without_a_gpu_is_one_line(verb, data, tmp_path, capsys):
    args = [verb, data, "--device", "cuda", "--epochs", "1"] + (["--out", tmp_path / "m"] if verb == "train" else [])
    code, _, err = run(args, capsys)
    one_line_error(code, err, "device: cuda", "no CUDA device")
    assert not (tmp_path / "m").exists()


def test_cli_unknown_device_is_one_line(data, tmp_path, capsys):
    code, _, err = run(["train", data, "--out", tmp_path / "m", "--device", "gpu"], capsys)
    one_line_error(code, err, "device", "'gpu'")
    assert not (tmp_path / "m").exists()


def test_service_setting_train_device():
    settings = pytest.importorskip("earshot.service.settings")
    assert settings.Settings().train_device == "auto"
    assert settings.Settings(train_device="cpu").train_device == "cpu"
    with pytest.raises(ParameterError, match="train_device"):
        settings.Settings(train_device="gpu")
