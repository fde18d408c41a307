"""A tiny torch audio encoder, exported to ONNX with its contract (for ``--model encoder``).

Built in the test run; nothing is downloaded. The encoder takes log-mel in dB laid out
``(batch, 1, n_mels, n_time)`` (a channel axis, mel-major, as many torch audio encoders do) and
returns ``(batch, dim)``: a fixed random projection of the per-band mean and standard deviation.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path


def tiny_encoder(folder: Path, *, n_mels: int = 32, dim: int = 16, sr: int = 16000, seed: int = 0,
                 name: str = "enc", **contract) -> Path:
    """Write ``folder/<name>.onnx`` and ``folder/<name>.json``; return the .onnx path.

    ``contract`` entries override (or, with value None, remove) fields of the written contract.
    """
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(seed)
            self.proj = nn.Linear(2 * n_mels, dim)

        def forward(self, x):  # (batch, 1, n_mels, n_time) in dB
            x = (x[:, 0] + 40.0) / 10.0
            feats = torch.cat([x.mean(dim=2), x.std(dim=2)], dim=1)
            return self.proj(feats)

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Tiny().eval(), (torch.zeros(2, 1, n_mels, 20),), str(path), input_names=["fbank"],
                          output_names=["embedding"], opset_version=17, dynamo=False,
                          dynamic_axes={"fbank": {0: "batch", 3: "time"}, "embedding": {0: "batch"}})
    spec = {"input_kind": "logmel", "input_name": "fbank", "input_shape": ["batch", 1, "n_mels", "n_time"],
            "sr": sr, "n_mels": n_mels, "output_name": "embedding", "output_size": dim, "min_frames": 2,
            "description": "tiny test encoder"}
    spec.update(contract)
    spec = {k: v for k, v in spec.items() if v is not None}
    path.with_suffix(".json").write_text(json.dumps(spec), encoding="utf-8")
    return path


def tiny_waveform_encoder(folder: Path, *, dim: int = 16, sr: int = 16000, seed: int = 0, name: str = "wenc") -> Path:
    """A waveform-input encoder: ``(batch, 1, n_samples)`` -> Conv1d stack -> log of the mean
    over time ``(batch, dim)``. Writes ``folder/<name>.onnx`` and its contract; returns the .onnx path."""
    import torch
    from torch import nn

    class TinyWave(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(seed)
            self.conv = nn.Sequential(nn.Conv1d(1, dim, 64, stride=32), nn.ReLU(),
                                      nn.Conv1d(dim, dim, 3, padding=1), nn.ReLU())

        def forward(self, x):  # (batch, 1, n_samples), [-1, 1]
            return torch.log(self.conv(x).mean(dim=2) + 1e-3)

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(TinyWave().eval(), (torch.zeros(2, 1, 4000),), str(path), input_names=["audio"],
                          output_names=["embedding"], opset_version=17, dynamo=False,
                          dynamic_axes={"audio": {0: "batch", 2: "n_samples"}, "embedding": {0: "batch"}})
    spec = {"input_kind": "waveform", "input_name": "audio", "input_shape": ["batch", 1, "n_samples"], "sr": sr,
            "output_name": "embedding", "output_size": dim, "min_samples": 64,
            "description": "tiny test waveform encoder"}
    path.with_suffix(".json").write_text(json.dumps(spec), encoding="utf-8")
    return path
