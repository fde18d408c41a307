"""StreamResampler: block by block, the same as scipy.signal.resample_poly of the whole signal."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.signal import resample_poly

from earshot.io.audio import resample
from earshot.timeline import StreamResampler

# Max abs error against resample_poly of the whole signal (float64), for signals within [-1, 1]:
# the sums are done in float64 and rounded once to float32, so the error is float32's rounding
# (half an ulp: 3e-8 at 0.5, 6e-8 at 1; measured up to 6e-8). 1e-6 leaves room for other BLAS-free
# numpy builds, and is still 100x below a 16-bit sample (3e-5).
TOL = 1e-6

RATES = [(48000, 16000), (44100, 16000), (22050, 16000), (32000, 16000), (96000, 16000), (8000, 16000),
         (16000, 16000)]


def signals(sr: int, seconds: float = 1.3) -> dict[str, np.ndarray]:
    n = int(seconds * sr) + 7  # not a whole number of output periods
    t = np.arange(n) / sr
    rng = np.random.default_rng(sr)
    return {"300 Hz": (0.9 * np.sin(2 * np.pi * 300 * t + 0.4)).astype(np.float32),
            "3 kHz": (0.5 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32),
            "noise": np.clip(0.3 * rng.standard_normal(n), -1, 1).astype(np.float32)}


def in_blocks(rs: StreamResampler, x: np.ndarray, rng: np.random.Generator, largest: int = 5000) -> np.ndarray:
    """Feed ``x`` in blocks of random sizes (empty ones too), then flush."""
    out, i = [], 0
    while i < len(x):
        k = int(rng.integers(0, largest))
        out.append(rs.process(x[i : i + k]))
        i += k
    out.append(rs.flush())
    assert all(o.dtype == np.float32 and o.ndim == 1 for o in out)
    return np.concatenate(out)


@pytest.mark.parametrize("orig_sr, target_sr", RATES)
def test_blocks_of_any_size_give_resample_poly_of_the_whole(orig_sr, target_sr):
    rs = StreamResampler(orig_sr, target_sr)
    rng = np.random.default_rng(0)
    for name, x in signals(orig_sr).items():
        whole = np.concatenate([rs.process(x), rs.flush()])
        ref = resample_poly(x.astype(np.float64), rs.up, rs.down)
        assert len(whole) == len(ref) == -(-len(x) * target_sr // orig_sr), name
        err = np.abs(whole - ref).max()
        assert err <= TOL, (name, err)  # from the very first sample: no start-up transient
        assert np.abs(whole - resample(x, orig_sr, target_sr)).max() <= TOL  # earshot's file path (float32)
        for _ in range(3):  # bit for bit the same, whatever the blocks
            np.testing.assert_array_equal(in_blocks(rs, x, rng), whole)
        short = x[: 2 * rs.n_taps + 3 * rs.down]  # even 0-2 samples at a time
        np.testing.assert_array_equal(in_blocks(rs, short, rng, largest=3),
                                      np.concatenate([rs.process(short), rs.flush()]))


@pytest.mark.parametrize("orig_sr, target_sr, up, down, delay", [
    (48000, 16000, 1, 3, 30.0), (44100, 16000, 160, 441, 27.5625), (32000, 16000, 1, 2, 20.0),
    (8000, 16000, 2, 1, 10.0), (16000, 16000, 1, 1, 0.0),
])
def test_ratio_and_delay(orig_sr, target_sr, up, down, delay):
    """Output m (at input time m * down / up) comes once input m * down / up + delay has arrived."""
    rs = StreamResampler(orig_sr, target_sr)
    assert (rs.up, rs.down, rs.delay) == (up, down, delay)
    x = np.ones(4000, np.float32)
    given = 0
    for n in range(1, 4001, 37):
        given += rs.process(x[rs.n_in : n]).size
        # the newest input output m reaches is (m * down + half_len) // up, at most m * down / up + delay
        expected = sum(1 for m in range(given + 20) if m * down + rs.half_len < n * up)
        assert given == rs.n_out == expected, n
    if delay:  # ten samples at the lower of the two rates: 0.625 ms for any rate down to 16 kHz
        assert delay / orig_sr == pytest.approx(10 / min(orig_sr, target_sr))


def test_state_stays_bounded():
    rs = StreamResampler(44100, 16000)
    x = np.random.default_rng(1).standard_normal(2822).astype(np.float32)
    for _ in range(500):  # 32 s in sound-card blocks
        rs.process(x)
        assert rs._buf.size <= rs.n_taps + x.size
    assert rs.n_in == 500 * 2822 and 0 <= -(-rs.n_in * 160 // 441) - rs.n_out <= 11


def test_a_new_signal_after_flush_and_odd_input():
    rs = StreamResampler(48000, 16000)
    x = signals(48000)["noise"]
    first = np.concatenate([rs.process(x[:, None]), rs.flush()])  # (n, 1) is taken as (n,)
    assert rs.n_in == rs.n_out == 0  # flush starts afresh
    np.testing.assert_array_equal(np.concatenate([rs.process(x.astype(np.float64)), rs.flush()]), first)
    assert rs.process(np.empty(0, np.float32)).size == 0 and rs.flush().size == 0
    with pytest.raises(ValueError, match="positive"):
        StreamResampler(0, 16000)


def test_importing_the_module_does_not_import_scipy_signal():
    code = ("import sys, earshot.timeline; "
            "bad = [m for m in ('scipy.signal', 'sounddevice', 'torch', 'matplotlib') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
