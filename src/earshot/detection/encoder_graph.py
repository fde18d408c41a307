"""The one ONNX scoring graph of the encoder detector, built from the user's encoder.

:func:`scoring_graph` takes the encoder's graph (every name prefixed ``encoder/``, in its own
opset and IR version) and adds, before it, the nodes that lay earshot's log-mel ``(batch,
n_time, n_mels)`` out as the contract's ``input_shape`` (Transpose, Unsqueeze) and, after it,
the k-NN head of :class:`~earshot.detection.frugal.DomainKnn` (MatMul, TopK and elementwise
ops only, the same from opset 13 on)::

    logmel -> adapter/ -> encoder/ -> head/ -> window_scores (batch, 1)

Without a head the graph ends at ``embedding (batch, output_size)`` (used to fit). The
``onnx`` package is imported only when a graph is built (training); scoring a built graph
needs onnxruntime only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from earshot.detection.encoder_contract import (
    AXES,
    EncoderContract,
    check_graph,
    contract_path,
    read_contract,
)
from earshot.detection.frugal import DomainKnn
from earshot.errors import ParameterError

__all__ = ["MIN_OPSET", "NORM_EPS", "error_line", "load_encoder", "onnx_session", "scoring_graph"]

#: Fewest default-domain opset of an encoder (the bundle's export needs 13 as well).
MIN_OPSET = 13
#: Floor of an embedding's norm before it is made unit-length (cosine metric).
NORM_EPS = 1e-12


# ---------------------------------------------------------------------- the ONNX graph
def _default_opset(model: Any) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


def _adapter_nodes(contract: EncoderContract, out: str) -> tuple[list, list]:
    """Nodes ``logmel (batch, n_time, n_mels)`` (or ``waveform (batch, n_samples)``) -> ``out``
    in the contract's input layout."""
    from onnx import (  # deferred: onnx is only needed to build the graph
        helper,
        numpy_helper,
    )

    core = [a for a in contract.input_shape if a != 1]
    axes = AXES[contract.input_kind]
    perm = [axes.index(a) for a in core]
    ones = [i for i, a in enumerate(contract.input_shape) if a == 1]
    nodes, inits, x = [], [], contract.input_kind
    if perm != list(range(len(axes))):
        nodes.append(helper.make_node("Transpose", [x], ["adapter/transposed"], name="adapter/transpose", perm=perm))
        x = "adapter/transposed"
    if ones:
        inits.append(numpy_helper.from_array(np.array(ones, np.int64), "adapter/axes"))
        nodes.append(helper.make_node("Unsqueeze", [x, "adapter/axes"], [out], name="adapter/unsqueeze"))
    else:
        nodes.append(helper.make_node("Identity", [x], [out], name="adapter/identity"))
    return nodes, inits


def _head_nodes(knn: DomainKnn, z: str, out: str) -> tuple[list, list]:
    """Nodes ``z (batch, dim)`` -> ``out (batch, 1)``: :meth:`DomainKnn.score` (unit rows first
    for ``cosine``). Only MatMul/TopK/elementwise ops, the same from opset 13 on."""
    from onnx import (  # deferred: onnx is only needed to build the graph
        helper,
        numpy_helper,
    )

    p, nodes, inits = "head/", [], []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, np.float32 if np.asarray(value).dtype.kind == "f"
                                                        else np.int64), p + name))
        return p + name

    def node(op: str, inputs: list[str], name: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [p + name], name=p + name, **attrs))
        return p + name

    dim = knn.refs_[0].shape[1]
    ones = const("ones", np.ones((dim, 1)))
    if knn.metric == "cosine":
        norm = node("Sqrt", [node("MatMul", [node("Mul", [z, z], "z2"), ones], "n2")], "norm")
        z = node("Div", [z, node("Max", [norm, const("eps", np.array(NORM_EPS))], "norm_floor")], "unit")
    else:
        zz = node("MatMul", [node("Mul", [z, z], "z2"), ones], "zz")
    scaled = []
    for d, (refs, k) in enumerate(zip(knn.refs_, knn.ks_)):
        dot = node("MatMul", [z, const(f"refs_t_{d}", refs.T)], f"dot_{d}")
        if knn.metric == "cosine":
            dist = node("Sub", [const("one", np.array(1.0)), dot], f"dist_{d}")
        else:
            sq = node("Add", [node("Sub", [zz, node("Mul", [dot, const("two", np.array(2.0))], f"dot2_{d}")],
                                   f"zd_{d}"), const(f"rr_{d}", (refs * refs).sum(1)[None, :])], f"sq_{d}")
            dist = node("Sqrt", [node("Max", [sq, const("zero", np.array(0.0))], f"sq0_{d}")], f"dist_{d}")
        nodes.append(helper.make_node("TopK", [dist, const(f"k_{d}", np.array([k]))], [p + f"near_{d}", p + f"ix_{d}"],
                                      name=p + f"topk_{d}", axis=1, largest=0, sorted=1))
        mean = node("MatMul", [p + f"near_{d}", const(f"avg_{d}", np.full((k, 1), 1.0 / k))], f"mean_{d}")
        scaled.append(node("Div", [mean, const(f"scale_{d}", np.array(knn.scales_[d]))], f"scaled_{d}"))
    joined = node("Concat", scaled, "domains", axis=1) if len(scaled) > 1 else scaled[0]
    nodes.append(helper.make_node("TopK", [joined, const("k_min", np.array([1]))], [out, p + "which"], name=p + "min",
                                  axis=1, largest=0, sorted=1))
    # a constant used by several domains is listed once
    unique = {t.name: t for t in inits}
    return nodes, list(unique.values())


def scoring_graph(encoder: bytes, contract: EncoderContract, knn: DomainKnn | None = None) -> bytes:
    """The one ONNX graph: log-mel (or waveform) -> encoder -> k-NN head, serialised.

    Parameters
    ----------
    encoder : bytes
        The encoder's ONNX model.
    contract : EncoderContract
    knn : DomainKnn, optional
        The fitted head; without it the graph ends at the (unscaled) embedding.

    Returns
    -------
    bytes
        Input ``logmel`` float32 ``(batch, n_time, n_mels)`` (a waveform encoder: ``waveform``
        ``(batch, n_samples)``); output ``window_scores`` float32
        ``(batch, 1)``, or ``embedding`` ``(batch, output_size)`` without ``knn``.
    """
    from onnx import (  # deferred: only building needs onnx
        TensorProto,
        compose,
        helper,
        load_from_string,
    )

    model = compose.add_prefix(load_from_string(encoder), "encoder/")
    graph = model.graph
    adapter, adapter_inits = _adapter_nodes(contract, "encoder/" + contract.input_name)
    if knn is None:
        tail = [helper.make_node("Identity", ["encoder/" + contract.output_name], ["embedding"], name="embedding")]
        tail_inits, out = [], helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", contract.output_size])
    else:
        tail, tail_inits = _head_nodes(knn, "encoder/" + contract.output_name, "window_scores")
        out = helper.make_tensor_value_info("window_scores", TensorProto.FLOAT, ["batch", 1])
    nodes = adapter + list(graph.node) + tail
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(adapter_inits + tail_inits)
    weights = {t.name for t in graph.initializer}
    kept = [i for i in graph.input if i.name in weights]
    del graph.input[:]
    shape = ["batch", "n_samples"] if contract.input_kind == "waveform" else ["batch", "n_time", contract.n_mels]
    graph.input.extend([helper.make_tensor_value_info(contract.input_kind, TensorProto.FLOAT, shape)] + kept)
    del graph.output[:]
    graph.output.append(out)
    graph.name = "earshot_encoder_scorer"
    return model.SerializeToString()


def error_line(exc: BaseException) -> str:
    """The first line of an exception's message (onnx and onnxruntime write several)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def onnx_session(model: bytes, where: str):
    import onnxruntime as ort  # deferred: only fitting and scoring a fitted detector need a session

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ParameterError(f"{where}: cannot be loaded by onnxruntime ({error_line(exc)})") from None


def load_encoder(path: str | Path) -> tuple[bytes, EncoderContract]:
    """Read an encoder and its contract, and check that they agree.

    Returns
    -------
    encoder : bytes
    contract : EncoderContract

    Raises
    ------
    ParameterError
        One line naming the file (and the contract field).
    """
    import onnx  # deferred: onnx is only needed to read the encoder when training

    path = Path(path)
    if path.suffix != ".onnx" or not path.is_file():
        raise ParameterError(f"encoder: expected an existing .onnx file, got {str(path)!r}")
    contract = read_contract(path)
    data = path.read_bytes()
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # onnx raises DecodeError and others for a damaged file
        raise ParameterError(f"encoder: {path}: not a readable ONNX model ({error_line(exc)})") from None
    opset = _default_opset(model)
    if opset < MIN_OPSET:
        raise ParameterError(f"encoder: {path}: default-domain opset {opset}; export it with opset_version >= "
                             f"{MIN_OPSET}")
    check_graph(model, contract, f"{contract_path(path)} ({path.name})")
    return data, contract
