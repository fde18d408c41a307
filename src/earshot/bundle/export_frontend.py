"""The log-mel front end of an exported waveform graph, built as ONNX nodes.

:func:`frontend_model` turns the raw mono waveform into earshot's log-mel, in the time-major
layout the bundle's scoring graph takes::

    waveform (batch, n_samples) float32, [-1, 1], at the model's sample rate
      -> Pad (n_fft // 2 zeros each side: librosa's center=True, pad_mode="constant")
      -> Conv with windowed DFT kernels (n_fft taps, stride hop_length): re and im rows
      -> square -> MatMul with the dense Slaney mel filterbank (re**2 + im**2 summed by
         the product itself; ``(re**2 + im**2) ** (power / 2)`` when power != 2)
      -> Max(amin) -> Log * 10 / ln(10)                     = log-mel in dB
      -> Transpose                                           -> logmel (batch, n_time, n_mels)

The front end is built with the ``onnx`` package (``onnx.helper``/``numpy_helper``, imported
when called), in the bundle graph's own opset and IR version: no torch is needed. The DFT is
a float32 matrix product where earshot runs a float32 FFT, so the log-mels differ by float32
round-off (see :mod:`earshot.bundle.export_check` for the measured differences and the
tolerance). :mod:`earshot.bundle.export_graph` joins it to the bundle's scoring graph.
"""

from __future__ import annotations

import math

import numpy as np

from earshot.errors import BundleError
from earshot.features.config import FeatureConfig

__all__ = ["AMIN", "MIN_OPSET", "frontend_model"]

#: Floor on mel power before the logarithm (``earshot.features`` uses the same).
AMIN = 1e-10
#: Oldest default-domain opset the front end is written for (Unsqueeze takes axes as input).
MIN_OPSET = 13

_PREFIX = "earshot_frontend/"


def _dft_rows(features: FeatureConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windowed DFT kernels of the bins the mel filterbank uses.

    Returns
    -------
    kernels : np.ndarray, shape (n_rows, 1, n_fft), float32
        Conv weights: ``window * cos`` for every kept bin, then ``window * sin`` for every kept
        bin with a non-zero imaginary part (neither DC nor Nyquist), so
        ``n_rows = n_cos + n_sin``.
    weights : np.ndarray, shape (n_mels, n_cos), float32
        Slaney mel weights of the kept bins (bins no filter weighs are left out: they add 0
        to every band).
    sin_of : np.ndarray, shape (n_sin,), int
        For each sine row, the index (among the kept bins) of its bin.
    """
    from earshot.features.filterbank import _mel_weights
    from earshot.features.stft_plan import _window

    n_fft = features.n_fft
    mel = _mel_weights(features.sr, n_fft, features.n_mels, features.fmin, features.fmax)
    bins = np.flatnonzero(mel.any(axis=0))
    sin_of = np.flatnonzero((bins > 0) & (2 * bins != n_fft))
    window = _window(n_fft, features.win_length).astype(np.float64)
    n = np.arange(n_fft)

    def phase(k: np.ndarray) -> np.ndarray:  # exact integer phase k * n mod n_fft
        return 2.0 * np.pi * ((k[:, None] * n[None, :]) % n_fft) / n_fft

    kernels = np.concatenate([np.cos(phase(bins)) * window, np.sin(phase(bins[sin_of])) * window])
    return kernels.astype(np.float32)[:, None, :], np.ascontiguousarray(mel[:, bins]), sin_of


def frontend_model(features: FeatureConfig, *, opset: int = 17, ir_version: int = 8, output: str = "logmel"):
    """The log-mel front end as an ONNX model: ``waveform`` -> ``output``.

    Equal to :func:`earshot.features.log_mel` (librosa's ``melspectrogram`` + ``power_to_db``
    with ``center=True``, ``pad_mode="constant"``, periodic Hann, Slaney mel, ``amin=1e-10``,
    ``ref=1``, ``top_db=None``) up to float32 round-off, in the bundle graph's time-major
    layout.

    Parameters
    ----------
    features : FeatureConfig
        The bundle's feature parameters.
    opset : int
        Default-domain opset to write (the bundle graph's; at least :data:`MIN_OPSET`).
    ir_version : int
        ONNX IR version to write (the bundle graph's).
    output : str
        Name of the output tensor.

    Returns
    -------
    onnx.ModelProto
        Input ``waveform`` float32 ``(batch, n_samples)``; output float32
        ``(batch, n_time, n_mels)`` in dB, ``n_time = 1 + (n_samples + 2 * (n_fft // 2) - n_fft)
        // hop_length``. Internal names start with ``earshot_frontend/``.

    Raises
    ------
    BundleError
        ``opset`` older than :data:`MIN_OPSET`.
    """
    from onnx import TensorProto, helper, numpy_helper

    if opset < MIN_OPSET:
        raise BundleError(f"ONNX opset {opset}: the exported front end needs opset {MIN_OPSET} or newer")
    p = _PREFIX
    kernels, weights, sin_of = _dft_rows(features)
    n_cos = weights.shape[1]
    pad = features.n_fft // 2

    def const(name: str, value: np.ndarray):
        return numpy_helper.from_array(np.asarray(value), p + name)

    inits = [const("pads", np.array([0, pad, 0, pad], np.int64)), const("axis1", np.array([1], np.int64)),
             const("dft", kernels), const("amin", np.float32(AMIN)),
             const("db", np.float32(10.0 / math.log(10.0)))]
    nodes = [
        # center=True, pad_mode="constant": n_fft // 2 zeros on each side
        helper.make_node("Pad", ["waveform", p + "pads"], [p + "padded"], name=p + "pad", mode="constant"),
        helper.make_node("Unsqueeze", [p + "padded", p + "axis1"], [p + "signal"], name=p + "channel"),
        # frame t = padded[t * hop : t * hop + n_fft], windowed, times cos / sin: (batch, n_rows, n_time)
        helper.make_node("Conv", [p + "signal", p + "dft"], [p + "dft_rows"], name=p + "stft",
                         kernel_shape=[features.n_fft], strides=[features.hop_length]),
        helper.make_node("Mul", [p + "dft_rows", p + "dft_rows"], [p + "squared"], name=p + "square"),
    ]
    if features.power == 2.0:
        # the mel weight of each bin twice (cosine row, sine row): the product sums re**2 + im**2
        mel = np.concatenate([weights, weights[:, sin_of]], axis=1)
        spectrum = p + "squared"
    else:
        # (re**2 + im**2) ** (power / 2) per bin before the mel product: a sine row for every
        # kept bin (zeros for DC and Nyquist) so the two halves line up, then Slice + Add
        sines = np.zeros((n_cos, 1, features.n_fft), np.float32)
        sines[sin_of] = kernels[n_cos:]
        inits[2] = const("dft", np.concatenate([kernels[:n_cos], sines]))
        inits += [const("zero", np.array([0], np.int64)), const("n_cos", np.array([n_cos], np.int64)),
                  const("n_rows", np.array([2 * n_cos], np.int64))]
        nodes += [
            helper.make_node("Slice", [p + "squared", p + "zero", p + "n_cos", p + "axis1"], [p + "re2"], name=p + "re2"),
            helper.make_node("Slice", [p + "squared", p + "n_cos", p + "n_rows", p + "axis1"], [p + "im2"], name=p + "im2"),
            helper.make_node("Add", [p + "re2", p + "im2"], [p + "power2"], name=p + "re2_im2"),
        ]
        if features.power == 1.0:
            nodes.append(helper.make_node("Sqrt", [p + "power2"], [p + "power"], name=p + "magnitude"))
        else:
            inits.append(const("half_power", np.float32(features.power / 2.0)))
            nodes.append(helper.make_node("Pow", [p + "power2", p + "half_power"], [p + "power"], name=p + "power"))
        mel, spectrum = weights, p + "power"
    inits.append(const("mel", np.ascontiguousarray(mel, dtype=np.float32)))
    nodes += [
        helper.make_node("MatMul", [p + "mel", spectrum], [p + "mel_power"], name=p + "mel_bands"),
        helper.make_node("Max", [p + "mel_power", p + "amin"], [p + "floored"], name=p + "amin_floor"),
        helper.make_node("Log", [p + "floored"], [p + "ln"], name=p + "log"),
        helper.make_node("Mul", [p + "ln", p + "db"], [p + "db_bands"], name=p + "to_db"),  # 10 * log10
        helper.make_node("Transpose", [p + "db_bands"], [output], name=p + "time_major", perm=[0, 2, 1]),
    ]
    graph = helper.make_graph(
        nodes, "earshot_logmel",
        [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", "n_samples"])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", "n_time", features.n_mels])],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", int(opset))],
                             producer_name="earshot", ir_version=int(ir_version))
