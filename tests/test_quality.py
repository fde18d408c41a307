"""Quality floors on synthetic audio with known ground truth (the dense autoencoder end to end).

- Core floor: clips with injected clicks or a bearing tone against plain hum, AUC >= 0.95.
- Every synthetic fault type is detectable at maximum severity: AUC >= 0.9 per fault type.
"""

from __future__ import annotations

import numpy as np
import pytest

from earshot.detection.autoencoder import AutoencoderDetector
from earshot.evaluation.metrics import roc_auc
from earshot.features import FeatureConfig, log_mel
from earshot.synth import FAULTS, render_clip

SR = 16000
FEATURES = FeatureConfig(n_mels=64)
AE = {"epochs": 20, "batch_size": 256, "random_state": 0}

pytestmark = pytest.mark.slow  # each trains a 20-epoch autoencoder on 2-3 s clips: minutes in all


def _auc(det, normals, anomalies):
    s = det.score_samples([log_mel(y, FEATURES) for y in normals + anomalies])
    return roc_auc(np.r_[np.zeros(len(normals)), np.ones(len(anomalies))], s)


def _hum(rng, seconds=2.0):
    t = np.arange(int(seconds * SR)) / SR
    f0 = 50 * (1 + 0.002 * rng.normal())
    y = sum(a * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) for k, a in ((1, 0.3), (2, 0.15), (3, 0.05)))
    return (y + 0.03 * rng.normal(size=t.size)).astype(np.float32)


def _with_clicks(rng, y):
    clicks = np.zeros_like(y)
    clicks[rng.integers(0, y.size, 12)] = rng.choice([-1.0, 1.0], 12)
    return y + 0.5 * clicks


def _with_bearing_tone(rng, y):
    t = np.arange(y.size) / SR
    return (y + 0.05 * np.sin(2 * np.pi * rng.uniform(2500, 3500) * t)).astype(np.float32)


def test_quality_floor_clicks_and_bearing_tone_vs_hum():
    rng = np.random.default_rng(0)
    det = AutoencoderDetector(**AE).fit([log_mel(_hum(rng), FEATURES) for _ in range(40)])
    normals = [_hum(rng) for _ in range(20)]
    assert _auc(det, normals, [_with_clicks(rng, _hum(rng)) for _ in range(20)]) >= 0.95
    assert _auc(det, normals, [_with_bearing_tone(rng, _hum(rng)) for _ in range(20)]) >= 0.95


@pytest.mark.parametrize("machine", sorted(FAULTS))
def test_every_fault_type_detectable_at_max_severity(machine):
    def clips(n, fault=None, start=0):
        return [render_clip(machine, machine_id=0, fault=fault, severity=1.0 if fault else 0.0, duration_s=3.0,
                            sr=SR, snr_db=0.0, rng=np.random.default_rng([start, i]))
                for i in range(n)]

    det = AutoencoderDetector(**AE).fit([log_mel(y, FEATURES) for y in clips(30, start=1)])
    normals = clips(12, start=2)
    aucs = {fault: _auc(det, normals, clips(12, fault, start=3)) for fault in FAULTS[machine]}
    assert min(aucs.values()) >= 0.9, aucs
