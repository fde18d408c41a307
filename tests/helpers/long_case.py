"""The long-recording case shared by the timeline, listen, device and LSTM tests (built once per session)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

from earshot.cli.app import main
from earshot.synth import render_clip, synthesize_long

from helpers.signals import SR
from helpers.torch_threads import single_torch_thread

FAULT = (60.0, 90.0)  # where the long recording's fault is, in seconds


def long_case(tmp_path_factory, model: str = "dense-ae", params: tuple[str, ...] = ()) -> dict[str, Path]:
    """A fan: six long normal recordings (32 s each, cut into 1 s windows for training), a
    120 s recording with an imbalance from 60 s to 90 s, and a model trained on the normal
    ones (``params``: extra ``-p key=value`` settings). Built once per test session (cached
    under the session's base temp folder)."""
    root = tmp_path_factory.getbasetemp() / "long-case"
    case = {"root": root, "long": root / "fan_long.wav", "train": root / "train", "model": root / "-".join(("model", model, *params))}
    if not case["long"].exists():
        root.mkdir(exist_ok=True)
        synthesize_long(case["long"], machine="fan", duration_s=120.0, fault_start_s=FAULT[0], fault_end_s=FAULT[1],
                        seed=0)
        case["train"].mkdir(exist_ok=True)
        for i in range(6):  # other recordings of the same machine (same seed = same fan)
            y = render_clip("fan", machine_id=0, duration_s=32.0, sr=SR, snr_db=6.0,
                            rng=np.random.default_rng(1000 + i), seed=0)
            sf.write(case["train"] / f"normal_{i}.wav", y, SR, subtype="PCM_16")
    if not case["model"].exists():
        extra = ["-p", "hidden=64"] if model == "dense-ae" else []
        for p in params:
            extra += ["-p", p]
        with single_torch_thread():
            code = main(["train", str(case["train"]), "--out", str(case["model"]), "--model", model,
                         "--group-by", "none", "--n-mels", "32", "--epochs", "8", *extra])
        assert code == 0
    return case


def read_events(path: Path) -> list[dict[str, float]]:
    """An events CSV (``start_s, end_s, peak_score, mean_score``) as floats."""
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]
