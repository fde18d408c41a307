"""The whole exported graph: the log-mel front end, the bundle's scoring graph, the clip aggregate.

:func:`waveform_model` joins :func:`~earshot.bundle.export_frontend.frontend_model` to the
bundle's ``model.onnx`` with :func:`onnx.compose.merge_models` (``logmel`` feeds the bundle
graph's input), in the bundle graph's own default-domain opset and IR version, and appends
the clip aggregate as ONNX nodes::

    waveform -> front end -> logmel -> the bundle's scoring graph -> window_scores (batch, n_windows)
                                    -> the bundle's aggregate (mean, max, quantile:q) -> score (batch,)

``mean`` and ``max`` are one reduction (axes as an attribute before opset 18, an input from
18 on); ``quantile:q`` sorts the windows and interpolates as numpy does. The ``onnx`` package
is imported only when a graph is built. :func:`_graph_bytes` gives the bytes, opset and IR
version of either form; for the log-mel form (a byte copy of the bundle graph) the opset and
IR version are read from the serialised protobuf directly, so that form needs no ``onnx``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from earshot import __version__
from earshot.bundle.export_frontend import frontend_model
from earshot.bundle.format import ONNX_FILE
from earshot.bundle.scorer import Bundle
from earshot.detection.aggregate import parse_aggregate
from earshot.errors import BundleError

__all__ = ["waveform_model"]

_AGG_PREFIX = "earshot_aggregate/"


# ---------------------------------------------------------------------------- aggregate
def _axes_node(op: str, inp: str, out: str, axes: list[int], opset: int, name: str, **attrs) -> list:
    """``op`` over ``axes``: an attribute before opset 18 (Reduce*), an input from 18 on."""
    from onnx import TensorProto, helper  # deferred: onnx is needed only to export

    if opset >= 18:
        axes_name = name + "_axes"
        return [helper.make_node("Constant", [], [axes_name], name=axes_name,
                                 value=helper.make_tensor(axes_name, TensorProto.INT64, [len(axes)], axes)),
                helper.make_node(op, [inp, axes_name], [out], name=name, **attrs)]
    return [helper.make_node(op, [inp], [out], name=name, axes=axes, **attrs)]


def _aggregate_nodes(spec: str, opset: int, scores: str = "window_scores", out: str = "score") -> tuple[list, list]:
    """Nodes ``scores (batch, n_windows) -> out (batch,)`` computing the clip aggregate.

    ``mean`` and ``max`` are one reduction; ``quantile:q`` sorts the windows (TopK, ascending)
    and interpolates linearly between the two order statistics around ``q * (n_windows - 1)``
    (numpy's default ``linear`` method; the position is computed in float64).

    Returns
    -------
    nodes, initializers : list, list
    """
    from onnx import TensorProto, helper, numpy_helper  # deferred: onnx is needed only to export

    method, q = parse_aggregate(spec)
    p = _AGG_PREFIX
    if method in ("mean", "max"):
        op = "ReduceMean" if method == "mean" else "ReduceMax"
        return _axes_node(op, scores, out, [1], opset, p + method, keepdims=0), []

    def const(name, value):
        return numpy_helper.from_array(np.asarray(value), p + name)

    inits = [const("one", np.array([1], np.int64)), const("two", np.array([2], np.int64)),
             const("one_i", np.int64(1)), const("q", np.float64(q))]
    nodes = [
        helper.make_node("Shape", [scores], [p + "shape"], name=p + "shape"),
        helper.make_node("Slice", [p + "shape", p + "one", p + "two"], [p + "n"], name=p + "n_windows"),
        helper.make_node("TopK", [scores, p + "n"], [p + "sorted", p + "order"], name=p + "sort",
                         axis=1, largest=0, sorted=1),
        helper.make_node("Sub", [p + "n", p + "one"], [p + "last"], name=p + "last"),
        helper.make_node("Cast", [p + "last"], [p + "last_d"], name=p + "last_d", to=TensorProto.DOUBLE),
        helper.make_node("Mul", [p + "last_d", p + "q"], [p + "pos"], name=p + "pos"),
        helper.make_node("Floor", [p + "pos"], [p + "lo_d"], name=p + "floor"),
        helper.make_node("Sub", [p + "pos", p + "lo_d"], [p + "frac_d"], name=p + "frac_d"),
        helper.make_node("Cast", [p + "frac_d"], [p + "frac"], name=p + "frac", to=TensorProto.FLOAT),
        helper.make_node("Cast", [p + "lo_d"], [p + "lo"], name=p + "lo", to=TensorProto.INT64),
        helper.make_node("Add", [p + "lo", p + "one_i"], [p + "lo1"], name=p + "lo1"),
        helper.make_node("Min", [p + "lo1", p + "last"], [p + "hi"], name=p + "hi"),
        helper.make_node("Gather", [p + "sorted", p + "lo"], [p + "a"], name=p + "a", axis=1),
        helper.make_node("Gather", [p + "sorted", p + "hi"], [p + "b"], name=p + "b", axis=1),
        helper.make_node("Sub", [p + "b", p + "a"], [p + "b_a"], name=p + "b_a"),
        helper.make_node("Mul", [p + "b_a", p + "frac"], [p + "step"], name=p + "step"),
        helper.make_node("Add", [p + "a", p + "step"], [p + "value"], name=p + "value"),
        helper.make_node("Squeeze", [p + "value", p + "one"], [out], name=p + "squeeze"),
    ]
    return nodes, inits


# ---------------------------------------------------------------------------- whole graph
def _default_opset(model) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise BundleError("the bundle's ONNX graph imports no default-domain opset")


def waveform_model(bundle: Bundle, *, dft: str = "auto"):
    """The bundle's scoring graph behind the log-mel front end, with the clip aggregate.

    Parameters
    ----------
    bundle : Bundle
    dft : {"auto", "fft", "conv"}
        How the front end computes the DFT (:func:`~earshot.bundle.export_frontend.frontend_model`;
        ``auto``, the factorised form where ``n_fft`` and ``hop_length`` allow it, is what
        ``earshot export`` writes).

    Returns
    -------
    onnx.ModelProto
        Input ``waveform`` float32 ``(batch, n_samples)`` at ``bundle.features.sr``; outputs
        ``window_scores`` float32 ``(batch, n_windows)`` (the bundle graph's) and ``score``
        float32 ``(batch,)``, the bundle's aggregate of the window scores.

    Raises
    ------
    BundleError
        The bundle graph cannot be read or joined (an opset older than :data:`MIN_OPSET`,
        names that collide with the front end's).
    ParameterError
        Unknown ``dft``, or ``fft`` where it does not apply.
    """
    import onnx  # deferred: onnx is needed only to export
    from onnx import TensorProto, compose, helper  # deferred: onnx is needed only to export

    path = bundle.path / ONNX_FILE
    try:
        inner = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and others for a damaged file
        raise BundleError(f"{path}: cannot be read as ONNX ({exc})") from None
    names_in = [i.name for i in inner.graph.input if i.name not in {t.name for t in inner.graph.initializer}]
    names_out = [o.name for o in inner.graph.output]
    if names_in != ["logmel"] or names_out[:1] != ["window_scores"]:
        raise BundleError(f"{path}: expected input logmel and output window_scores, got {names_in} -> {names_out}")
    opset = _default_opset(inner)
    front = frontend_model(bundle.features, opset=opset, ir_version=inner.ir_version, dft=dft)
    # other domains the bundle graph imports must be known to the merged model as well
    front.opset_import.extend(e for e in inner.opset_import if e.domain not in ("", "ai.onnx"))
    try:
        merged = compose.merge_models(front, inner, io_map=[("logmel", "logmel")],
                                      producer_name="earshot", producer_version=_version())
    except ValueError as exc:
        raise BundleError(f"{path}: cannot be joined to the log-mel front end ({exc})") from None
    # one opset entry per domain (merge_models lists both models' entries)
    seen: dict[str, Any] = {}
    for entry in merged.opset_import:
        seen.setdefault(entry.domain, entry)
    del merged.opset_import[:]
    merged.opset_import.extend(seen.values())
    nodes, inits = _aggregate_nodes(bundle.aggregate, opset)
    taken = {n for node in merged.graph.node for n in node.output} | {t.name for t in merged.graph.initializer}
    if "score" in taken:
        raise BundleError(f"{path}: the scoring graph already has a tensor named 'score'")
    merged.graph.node.extend(nodes)
    merged.graph.initializer.extend(inits)
    del merged.graph.output[:]
    merged.graph.output.extend([
        helper.make_tensor_value_info("window_scores", TensorProto.FLOAT, ["batch", "n_windows"]),
        helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"]),
    ])
    merged.graph.name = "earshot_waveform_scorer"
    form = front.doc_string.split(": ", 1)[-1]  # the front end's DFT form
    merged.doc_string = (f"earshot {_version()}: waveform (batch, n_samples) at {bundle.features.sr} Hz -> log-mel "
                         f"({form}) -> {bundle.kind} window_scores (batch, n_windows) -> score (batch,) = "
                         f"{bundle.aggregate}")
    try:
        onnx.checker.check_model(merged)
    except Exception as exc:  # onnx.checker.ValidationError
        raise BundleError(f"{path}: the joined waveform graph is not valid ONNX ({exc})") from None
    return merged


def _version() -> str:
    return __version__


def _graph_bytes(bundle: Bundle, front_end: str, dft: str = "auto") -> tuple[bytes, int, int, bytes | None]:
    """(model bytes, opset, IR version, front-end-only bytes or None) of one group's export;
    ``dft`` as :func:`waveform_model` (both graphs are built with the same)."""
    if front_end == "logmel":
        data = (bundle.path / ONNX_FILE).read_bytes()
        opset, ir_version = _graph_versions(data, bundle)
        return data, opset, ir_version, None
    merged = waveform_model(bundle, dft=dft)
    opset = _default_opset(merged)
    front = frontend_model(bundle.features, opset=opset, ir_version=merged.ir_version, dft=dft)
    return merged.SerializeToString(), opset, int(merged.ir_version), front.SerializeToString()


# ---------------------------------------------------------------------------- versions without onnx
def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data):
            raise ValueError("truncated varint")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def _proto_fields(data: bytes):
    """(field number, wire type, value) of a protobuf message's top-level fields."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 1:
            value, i = data[i : i + 8], i + 8
        elif wire == 2:
            size, i = _varint(data, i)
            value, i = data[i : i + size], i + size
        elif wire == 5:
            value, i = data[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if i > len(data):
            raise ValueError("truncated field")
        yield number, wire, value


def _graph_versions(data: bytes, bundle: Bundle) -> tuple[int, int]:
    """Default-domain opset and IR version of a serialised ModelProto, read without the onnx
    package (the log-mel form needs nothing but a copy): ``ir_version`` is field 1, each
    ``opset_import`` field 8 (``domain`` 1, ``version`` 2)."""
    ir_version = opset = None
    try:
        for number, wire, value in _proto_fields(data):
            if number == 1 and wire == 0:
                ir_version = int(value)
            elif number == 8 and wire == 2:
                entry = {n: v for n, _, v in _proto_fields(value)}
                if entry.get(1, b"") in (b"", b"ai.onnx"):
                    opset = int(entry.get(2, 1))
    except (ValueError, TypeError) as exc:
        raise BundleError(f"{bundle.path / ONNX_FILE}: not a readable ONNX model ({exc})") from None
    if ir_version is None or opset is None:
        raise BundleError(f"{bundle.path / ONNX_FILE}: not a readable ONNX model (no IR version or opset)")
    return opset, ir_version
