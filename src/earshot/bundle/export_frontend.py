"""The log-mel front end of an exported waveform graph, built as ONNX nodes.

:func:`frontend_model` turns the raw mono waveform into earshot's log-mel, in the time-major
layout the bundle's scoring graph takes::

    waveform (batch, n_samples) float32, [-1, 1], at the model's sample rate
      -> Pad (n_fft // 2 zeros each side: librosa's center=True, pad_mode="constant")
      -> the windowed DFT of every frame (frame t = padded[t * hop : t * hop + n_fft])
      -> power re**2 + im**2 (** (power / 2) when power != 2) -> Slaney mel filterbank
      -> Max(amin) -> Log * 10 / ln(10)                     = log-mel in dB
      -> Transpose                                           -> logmel (batch, n_time, n_mels)

The DFT is computed one of two ways (``dft``; ``"auto"`` takes the first that applies):

``"fft"``: a two-stage factorised DFT (Cooley-Tukey, ``n_fft = a * b``, ``b`` dividing
    ``hop_length`` too), as two dense products: the padded signal is cut into its ``b``
    polyphase rows (Reshape + Transpose), stage 1 is a grouped Conv (one group per row,
    ``a`` taps, stride ``hop_length / b``) whose kernels hold the window, the length-``a``
    DFT and the twiddle factors (only the ``a // 2 + 1`` bins a real signal needs), stage 2
    a MatMul with the length-``b`` complex DFT. The bins come out in blocks of consecutive
    frequencies, so the mel filterbank is applied in bands (Slice + small MatMul per group
    of filters, Concat). About 10x fewer multiply-adds than one dense DFT product
    (``n_fft`` 1024: ~1e5 instead of ~1e6 per frame) and 8x faster in onnxruntime (1.2
    instead of 9-10 ms per 10 s clip at 16 kHz, hop 512, one thread).
``"conv"``: one dense DFT product, a Conv with windowed cos/sin kernels (``n_fft`` taps,
    stride ``hop_length``), then the dense mel MatMul: where no common factor ``b`` of
    ``n_fft`` and ``hop_length`` halves the work (a prime ``n_fft``, or one sharing no
    factor above 2 with ``hop_length``).

Both use default-domain operators of opset 13 on (no ``STFT``/``DFT``: onnxruntime's kernels
for those run a scalar radix-2 FFT per frame, 5x slower than ``"fft"`` here). The front end
is built with the ``onnx`` package (``onnx.helper``/``numpy_helper``, imported when called),
in the bundle graph's own opset and IR version: no torch is needed. The products run in
float32 where earshot runs a float32 FFT, so the log-mels differ by float32 round-off (see
:mod:`earshot.bundle.export_check` for the measured differences and the tolerance).
:mod:`earshot.bundle.export_graph` joins it to the bundle's scoring graph.
"""

from __future__ import annotations

import math

import numpy as np

from earshot.errors import BundleError, ParameterError
from earshot.features.config import FeatureConfig
from earshot.features.melscale import mel_weights
from earshot.features.stft_plan import hann_window

__all__ = ["AMIN", "DFT_METHODS", "MIN_OPSET", "frontend_model"]

#: Floor on mel power before the logarithm (``earshot.features`` uses the same).
AMIN = 1e-10
#: Oldest default-domain opset the front end is written for (Unsqueeze takes axes as input).
MIN_OPSET = 13
#: How the front end computes the DFT: ``auto`` (``fft`` where it applies, else ``conv``).
DFT_METHODS = ("auto", "fft", "conv")

_PREFIX = "earshot_frontend/"
# Mel bands of the "fft" front end: consecutive filters are grouped while (filters x bins
# they span) stays within this many weights (measured: 256-4096 within 3% of each other at
# 128 mels; one dense product over all bins: 1.25x slower front end).
_MEL_GROUP_BUDGET = 2048


def _frontend_window(features: FeatureConfig) -> np.ndarray:
    """The analysis window of both DFT forms: earshot's periodic Hann (float32 values), float64."""
    return hann_window(features.n_fft, features.win_length).astype(np.float64)


def _dft_rows(features: FeatureConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windowed DFT kernels of the bins the mel filterbank uses (the ``"conv"`` form).

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
    n_fft = features.n_fft
    mel = mel_weights(features.sr, n_fft, features.n_mels, features.fmin, features.fmax)
    bins = np.flatnonzero(mel.any(axis=0))
    sin_of = np.flatnonzero((bins > 0) & (2 * bins != n_fft))
    window = _frontend_window(features)
    n = np.arange(n_fft)

    def phase(k: np.ndarray) -> np.ndarray:  # exact integer phase k * n mod n_fft
        return 2.0 * np.pi * ((k[:, None] * n[None, :]) % n_fft) / n_fft

    kernels = np.concatenate([np.cos(phase(bins)) * window, np.sin(phase(bins[sin_of])) * window])
    return kernels.astype(np.float32)[:, None, :], np.ascontiguousarray(mel[:, bins]), sin_of


# ---------------------------------------------------------------------------- factorised DFT
def _fft_factors(features: FeatureConfig) -> tuple[int, int] | None:
    """The cheapest ``(a, b)`` with ``n_fft = a * b`` and ``b >= 2`` dividing ``hop_length``; None
    where no such pair saves at least half the multiply-adds of one dense DFT product.

    Multiply-adds per frame: stage 1 ``2 * (a // 2 + 1) * a * b``, stage 2
    ``(2 * b) ** 2 * (a // 2 + 1)``; the dense product ``(n_fft + 2) * n_fft``.
    """
    n = features.n_fft
    g = math.gcd(n, features.hop_length)
    best = None
    for b in range(2, g + 1):
        if g % b or n // b < 2:
            continue
        a = n // b
        k = a // 2 + 1
        cost = 2 * k * a * b + 4 * b * b * k
        if best is None or cost < best[0]:
            best = (cost, a, b)
    if best is None or best[0] > (n + 2) * n // 2:
        return None
    return best[1], best[2]


def _fft_tables(features: FeatureConfig, a: int, b: int):
    """Constants of the factorised DFT.

    With ``n = b * i + j`` (``i < a``, ``j < b``: sample ``i`` of polyphase row ``j``) and
    ``k = ka + a * kb``, ``X[k] = sum_j W_b^(j kb) * Z[j, ka]`` where
    ``Z[j, ka] = sum_i w[n] x[n] W_N^(ka n)`` (``W_m = exp(-2 pi i / m)``). A real signal
    needs ``ka <= a // 2`` only: bin ``k`` is ``X[k]`` when ``k mod a <= a // 2``, else
    ``conj(X[n_fft - k])``, whose power is the same.

    Returns
    -------
    stage1 : np.ndarray, shape (b * 2 * n_ka, 1, a), float32
        Grouped-Conv kernels: group ``j``, then real and imaginary part, then ``ka``.
    stage2 : np.ndarray, shape (2 * n_kb, 2 * b), float32
        Rows (re/im, kept ``kb`` in frequency order), columns (``j``, re/im).
    weights : np.ndarray, shape (n_mels, n_kb * n_ka), float64
        Mel weights of the rows ``(kb, ka)`` of the power; each bin weighed once.
    """
    n_fft = features.n_fft
    n_ka = a // 2 + 1
    window = _frontend_window(features)
    i, j, ka = np.arange(a), np.arange(b), np.arange(n_ka)
    n = b * i[None, :] + j[:, None]  # (b, a): sample of row j, tap i
    phase = 2.0 * np.pi * ((ka[None, :, None] * n[:, None, :]) % n_fft) / n_fft  # (b, n_ka, a)
    wn = window[n][:, None, :]
    stage1 = np.stack([np.cos(phase) * wn, -np.sin(phase) * wn], axis=1)  # (b, 2, n_ka, a)

    mel = mel_weights(features.sr, n_fft, features.n_mels, features.fmin, features.fmax)
    weights = np.zeros((features.n_mels, b, n_ka))
    for k in range(n_fft // 2 + 1):
        r = k if k % a <= a // 2 else n_fft - k
        weights[:, r // a, r % a] += mel[:, k]
    # blocks kb in frequency order (kb = 0, b - 1, 1, b - 2, ...: block kb holds bins near
    # a * kb, or near n_fft - a * kb through the mirror), those any filter weighs
    order = np.array([x for pair in zip(range(b), range(b - 1, -1, -1)) for x in pair][:b])
    kept = np.array([kb for kb in order if weights[:, kb].any()])
    kb = kept[:, None]
    phase2 = 2.0 * np.pi * ((kb * j[None, :]) % b) / b
    c, s = np.cos(phase2), -np.sin(phase2)
    stage2 = np.zeros((2, len(kept), b, 2))  # (re, im)[kb] = (c Zr - s Zi, s Zr + c Zi)
    stage2[0, :, :, 0], stage2[0, :, :, 1], stage2[1, :, :, 0], stage2[1, :, :, 1] = c, -s, s, c
    return (stage1.reshape(b * 2 * n_ka, 1, a).astype(np.float32),
            stage2.reshape(2 * len(kept), 2 * b).astype(np.float32),
            weights[:, kept].reshape(features.n_mels, len(kept) * n_ka))


def _mel_groups(weights: np.ndarray, budget: int | None = None) -> list[tuple[int, int, int, int]]:
    """``(i0, i1, lo, hi)``: filters ``i0:i1`` weigh only rows ``lo:hi``; consecutive filters
    grouped greedily while ``(i1 - i0) * (hi - lo) <= budget`` (default :data:`_MEL_GROUP_BUDGET`)."""
    budget = _MEL_GROUP_BUDGET if budget is None else budget

    def span(i0: int, i1: int) -> tuple[int, int]:
        rows = np.flatnonzero(weights[i0:i1].any(axis=0))
        return (int(rows[0]), int(rows[-1]) + 1) if rows.size else (0, 1)

    groups, i0, n_mels = [], 0, weights.shape[0]
    while i0 < n_mels:
        i1 = i0 + 1
        lo, hi = span(i0, i1)
        while i1 < n_mels:
            lo2, hi2 = span(i0, i1 + 1)
            if (i1 + 1 - i0) * (hi2 - lo2) > budget:
                break
            i1, lo, hi = i1 + 1, lo2, hi2
        groups.append((i0, i1, lo, hi))
        i0 = i1
    return groups


# ---------------------------------------------------------------------------- graph
def _power_nodes(features: FeatureConfig, power2: str, const, helper) -> tuple[list, list, str]:
    """``power2`` (re**2 + im**2) -> its ``** (power / 2)``: (nodes, initializers, output name)."""
    p = _PREFIX
    if features.power == 2.0:
        return [], [], power2
    if features.power == 1.0:
        return [helper.make_node("Sqrt", [power2], [p + "power"], name=p + "magnitude")], [], p + "power"
    return ([helper.make_node("Pow", [power2, p + "half_power"], [p + "power"], name=p + "power")],
            [const("half_power", np.float32(features.power / 2.0))], p + "power")


def _conv_nodes(features: FeatureConfig, const, helper) -> tuple[list, list]:
    """``padded`` (batch, n_padded) -> ``mel_power`` (batch, n_mels, n_time): one DFT Conv."""
    p = _PREFIX
    kernels, weights, sin_of = _dft_rows(features)
    n_cos = weights.shape[1]
    inits = [const("axis1", np.array([1], np.int64))]
    nodes = [
        helper.make_node("Unsqueeze", [p + "padded", p + "axis1"], [p + "signal"], name=p + "channel"),
        # frame t = padded[t * hop : t * hop + n_fft], windowed, times cos / sin: (batch, n_rows, n_time)
        helper.make_node("Conv", [p + "signal", p + "dft"], [p + "dft_rows"], name=p + "stft",
                         kernel_shape=[features.n_fft], strides=[features.hop_length]),
        helper.make_node("Mul", [p + "dft_rows", p + "dft_rows"], [p + "squared"], name=p + "square"),
    ]
    if features.power == 2.0:
        # the mel weight of each bin twice (cosine row, sine row): the product sums re**2 + im**2
        inits.append(const("dft", kernels))
        mel = np.concatenate([weights, weights[:, sin_of]], axis=1)
        spectrum = p + "squared"
    else:
        # (re**2 + im**2) ** (power / 2) per bin before the mel product: a sine row for every
        # kept bin (zeros for DC and Nyquist) so the two halves line up, then Slice + Add
        sines = np.zeros((n_cos, 1, features.n_fft), np.float32)
        sines[sin_of] = kernels[n_cos:]
        inits += [const("dft", np.concatenate([kernels[:n_cos], sines])), const("zero", np.array([0], np.int64)),
                  const("n_cos", np.array([n_cos], np.int64)), const("n_rows", np.array([2 * n_cos], np.int64))]
        nodes += [
            helper.make_node("Slice", [p + "squared", p + "zero", p + "n_cos", p + "axis1"], [p + "re2"], name=p + "re2"),
            helper.make_node("Slice", [p + "squared", p + "n_cos", p + "n_rows", p + "axis1"], [p + "im2"], name=p + "im2"),
            helper.make_node("Add", [p + "re2", p + "im2"], [p + "power2"], name=p + "re2_im2"),
        ]
        more_nodes, more_inits, spectrum = _power_nodes(features, p + "power2", const, helper)
        nodes, inits = nodes + more_nodes, inits + more_inits
        mel = weights
    inits.append(const("mel", np.ascontiguousarray(mel, dtype=np.float32)))
    nodes.append(helper.make_node("MatMul", [p + "mel", spectrum], [p + "mel_power"], name=p + "mel_bands"))
    return nodes, inits


def _fft_nodes(features: FeatureConfig, a: int, b: int, const, helper) -> tuple[list, list]:
    """``padded`` (batch, n_padded) -> ``mel_power`` (batch, n_mels, n_time): factorised DFT."""
    p = _PREFIX
    stage1, stage2, weights = _fft_tables(features, a, b)
    n_rows = weights.shape[1]  # kept kb blocks x n_ka
    inits = [const("stage1", stage1), const("stage2", stage2), const("b", np.array([b], np.int64)),
             const("zero", np.array([0], np.int64)), const("one", np.array([1], np.int64)),
             const("two", np.array([2], np.int64)), const("rows_b", np.array([0, -1, b], np.int64)),
             const("stage2_in", np.array([0, 2 * b, -1], np.int64)),
             const("re_im", np.array([0, 2, n_rows, -1], np.int64)),
             const("bins", np.array([0, n_rows, -1], np.int64))]
    nodes = [
        # the polyphase rows: padded[:, b * i + j] -> rows[:, j, i], the signal cut to a
        # multiple of b (the cut samples are past the end of the last frame)
        helper.make_node("Shape", [p + "padded"], [p + "shape"], name=p + "shape"),
        helper.make_node("Slice", [p + "shape", p + "one", p + "two"], [p + "n_padded"], name=p + "n_padded"),
        helper.make_node("Div", [p + "n_padded", p + "b"], [p + "n_per_row"], name=p + "n_per_row"),
        helper.make_node("Mul", [p + "n_per_row", p + "b"], [p + "n_cut"], name=p + "n_cut"),
        helper.make_node("Slice", [p + "padded", p + "zero", p + "n_cut", p + "one"], [p + "cut"], name=p + "cut"),
        helper.make_node("Reshape", [p + "cut", p + "rows_b"], [p + "by_row"], name=p + "by_row"),
        helper.make_node("Transpose", [p + "by_row"], [p + "rows"], name=p + "polyphase", perm=[0, 2, 1]),
        # stage 1: window, length-a DFT and twiddles of every row: (batch, b * 2 * n_ka, n_time)
        helper.make_node("Conv", [p + "rows", p + "stage1"], [p + "z"], name=p + "stage1", group=b,
                         kernel_shape=[a], strides=[features.hop_length // b]),
        # stage 2: the length-b DFT across rows: (batch, 2 * kept kb, n_ka * n_time)
        helper.make_node("Reshape", [p + "z", p + "stage2_in"], [p + "z_rows"], name=p + "z_rows"),
        helper.make_node("MatMul", [p + "stage2", p + "z_rows"], [p + "x"], name=p + "stage2"),
        helper.make_node("Reshape", [p + "x", p + "re_im"], [p + "x_re_im"], name=p + "x_re_im"),
        helper.make_node("Mul", [p + "x_re_im", p + "x_re_im"], [p + "squared"], name=p + "square"),
        helper.make_node("Slice", [p + "squared", p + "zero", p + "one", p + "one"], [p + "re2"], name=p + "re2"),
        helper.make_node("Slice", [p + "squared", p + "one", p + "two", p + "one"], [p + "im2"], name=p + "im2"),
        helper.make_node("Add", [p + "re2", p + "im2"], [p + "power2_4d"], name=p + "re2_im2"),
        helper.make_node("Reshape", [p + "power2_4d", p + "bins"], [p + "power2"], name=p + "bins"),
    ]
    more_nodes, more_inits, spectrum = _power_nodes(features, p + "power2", const, helper)
    nodes, inits = nodes + more_nodes, inits + more_inits
    groups = _mel_groups(weights)
    bands = []
    for g, (i0, i1, lo, hi) in enumerate(groups):
        inits += [const(f"mel{g}", weights[i0:i1, lo:hi].astype(np.float32)),
                  const(f"mel{g}_lo", np.array([lo], np.int64)), const(f"mel{g}_hi", np.array([hi], np.int64))]
        nodes += [helper.make_node("Slice", [spectrum, p + f"mel{g}_lo", p + f"mel{g}_hi", p + "one"],
                                   [p + f"band{g}"], name=p + f"band{g}"),
                  helper.make_node("MatMul", [p + f"mel{g}", p + f"band{g}"], [p + f"mel_power{g}"],
                                   name=p + f"mel_bands{g}")]
        bands.append(p + f"mel_power{g}")
    nodes.append(helper.make_node("Concat", bands, [p + "mel_power"], name=p + "mel_bands", axis=1))
    return nodes, inits


def _dft_method(features: FeatureConfig, dft: str) -> tuple[str, tuple[int, int] | None]:
    if dft not in DFT_METHODS:
        raise ParameterError(f"dft: expected one of {', '.join(DFT_METHODS)}, got {dft!r}")
    factors = _fft_factors(features) if dft != "conv" else None
    if dft == "fft" and factors is None:
        raise ParameterError(f"dft='fft': n_fft={features.n_fft} and hop_length={features.hop_length} have no "
                             "factorisation that saves work; use 'conv' or 'auto'")
    return ("fft" if factors is not None else "conv"), factors


def frontend_model(features: FeatureConfig, *, opset: int = 17, ir_version: int = 8, output: str = "logmel",
                   dft: str = "auto"):
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
    dft : {"auto", "fft", "conv"}
        How the DFT is computed (see the module's text): ``auto`` is ``fft`` where ``n_fft``
        and ``hop_length`` allow it, else ``conv``.

    Returns
    -------
    onnx.ModelProto
        Input ``waveform`` float32 ``(batch, n_samples)``; output float32
        ``(batch, n_time, n_mels)`` in dB, ``n_time = 1 + (n_samples + 2 * (n_fft // 2) - n_fft)
        // hop_length``. Internal names start with ``earshot_frontend/``; the model's
        ``doc_string`` names the DFT form.

    Raises
    ------
    BundleError
        ``opset`` older than :data:`MIN_OPSET`.
    ParameterError
        Unknown ``dft``, or ``fft`` where it does not apply.
    """
    from onnx import TensorProto, helper, numpy_helper  # deferred: onnx is needed only to export

    if opset < MIN_OPSET:
        raise BundleError(f"ONNX opset {opset}: the exported front end needs opset {MIN_OPSET} or newer")
    method, factors = _dft_method(features, dft)
    p = _PREFIX
    pad = features.n_fft // 2

    def const(name: str, value: np.ndarray):
        return numpy_helper.from_array(np.asarray(value), p + name)

    inits = [const("pads", np.array([0, pad, 0, pad], np.int64)), const("amin", np.float32(AMIN)),
             const("db", np.float32(10.0 / math.log(10.0)))]
    # center=True, pad_mode="constant": n_fft // 2 zeros on each side
    nodes = [helper.make_node("Pad", ["waveform", p + "pads"], [p + "padded"], name=p + "pad", mode="constant")]
    if method == "fft":
        a, b = factors
        more_nodes, more_inits = _fft_nodes(features, a, b, const, helper)
        doc = f"DFT factorised as {a} x {b}: grouped Conv, MatMul"
    else:
        more_nodes, more_inits = _conv_nodes(features, const, helper)
        doc = "DFT as one Conv with windowed cos/sin kernels"
    nodes, inits = nodes + more_nodes, inits + more_inits
    nodes += [
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
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", int(opset))],
                              producer_name="earshot", ir_version=int(ir_version))
    model.doc_string = f"earshot log-mel front end: {doc}"
    return model
