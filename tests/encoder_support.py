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
