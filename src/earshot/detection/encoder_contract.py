"""The JSON contract of a user-supplied ONNX encoder (``--model encoder``), read and checked.

An encoder ``enc.onnx`` comes with ``enc.json`` beside it (same name, ``.json``), a flat object::

    {
      "input_kind": "logmel",                        # or "waveform" (see below)
      "input_name": "logmel",                        # the ONNX graph's input
      "input_shape": ["batch", 1, "n_mels", "n_time"],
      "sr": 16000,                                   # the rate the log-mel is computed at
      "n_mels": 64,
      "output_name": "embedding",                    # the ONNX graph's output, (batch, output_size)
      "output_size": 768,
      "min_frames": 16,                              # optional (default 1)
      "hop_length": 160, "n_fft": 400                # optional: feature settings that must match
    }

``input_shape`` names the axes of the encoder's input in order: ``"batch"``, ``"n_time"`` and
``"n_mels"`` once each, plus any number of literal ``1`` (a channel axis, say). earshot feeds
its log-mel in dB (see :func:`earshot.features.log_mel`), rearranged to that layout.

A waveform encoder (``"input_kind": "waveform"``) names ``"batch"`` and ``"n_samples"`` once
each (plus literal ``1``), takes the decoded mono signal at ``sr`` (float32, [-1, 1]), has no
``n_mels`` or feature settings, and may give ``min_samples`` (default 1) instead of
``min_frames``. Every
failure is one :class:`~earshot.errors.ParameterError` line naming the file and the field.
The full description is in ``docs/encoder.md``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from earshot.errors import ParameterError

__all__ = ["AXES", "FEATURE_FIELDS", "EncoderContract", "check_graph", "contract_path", "read_contract"]

#: Optional contract fields naming feature settings (FeatureConfig's names) that must match.
FEATURE_FIELDS = ("n_fft", "hop_length", "win_length", "fmin", "fmax", "power")
#: ``onnx.TensorProto.FLOAT`` (read from the protobuf without importing onnx).
_FLOAT = 1
#: Feature settings `earshot train` has an option for.
_CLI_FEATURES = ("sr", "n_mels", "n_fft", "hop_length")
#: The axes of each input kind, in earshot's own layout (what the scoring graph takes).
AXES = {"logmel": ("batch", "n_time", "n_mels"), "waveform": ("batch", "n_samples")}
_REQUIRED = ("input_kind", "input_name", "input_shape", "sr", "output_name", "output_size")
_KNOWN = set(_REQUIRED) | {"n_mels", "min_frames", "min_samples", "description"} | set(FEATURE_FIELDS)


@dataclass(frozen=True)
class EncoderContract:
    """What an encoder takes and gives (see the module docstring for the JSON form).

    Attributes
    ----------
    input_kind : str
        ``"logmel"`` or ``"waveform"``.
    input_name : str
    input_shape : tuple
        Axis names (``"batch"``, ``"n_time"``, ``"n_mels"``; ``"batch"``, ``"n_samples"`` for a
        waveform) and literal ``1``.
    sr, n_mels, output_size, min_frames, min_samples : int
        ``n_mels`` is 0 for a waveform encoder.
    output_name : str
    features : dict
        Feature settings (of :data:`FEATURE_FIELDS`) the log-mel must be computed with.
    description : str
    """

    input_kind: str
    input_name: str
    input_shape: tuple
    sr: int
    n_mels: int
    output_name: str
    output_size: int
    min_frames: int = 1
    min_samples: int = 1
    features: dict = field(default_factory=dict)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON form (as read by :func:`read_contract`)."""
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        data.update(data.pop("features"))
        drop = ("n_mels", "min_frames") if self.input_kind == "waveform" else ("min_samples",)
        return {k: v for k, v in data.items() if k not in drop}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> EncoderContract:
        """Validate the flat JSON form; errors name ``where`` (a file) and the field."""
        if not isinstance(data, dict):
            raise ParameterError(f"{where}: expected a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - _KNOWN)
        if unknown:
            raise ParameterError(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(sorted(_KNOWN))})")
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise ParameterError(f"{where}: {missing[0]}: missing (required: {', '.join(_REQUIRED)})")

        def bad(name: str, expected: str) -> ParameterError:
            return ParameterError(f"{where}: {name}: expected {expected}, got {data[name]!r}")

        kind = data["input_kind"]
        if kind not in AXES:
            raise bad("input_kind", "'logmel' or 'waveform'")
        wave = kind == "waveform"
        for name in ("n_mels", "min_frames", *FEATURE_FIELDS) if wave else ("min_samples",):
            if name in data:
                raise ParameterError(f"{where}: {name}: not a field of the contract of an input_kind {kind!r} encoder "
                                     "(see docs/encoder.md)")
        if not wave and "n_mels" not in data:
            raise ParameterError(f"{where}: n_mels: missing (required for a logmel encoder)")
        for name in ("input_name", "output_name"):
            if not isinstance(data[name], str) or not data[name]:
                raise bad(name, "a tensor name of the ONNX graph")
        for name in ("sr", "n_mels", "output_size", "min_frames", "min_samples"):
            value = data.get(name, 1)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(name, "a positive integer")
        shape = data["input_shape"]
        axes = AXES[kind]
        ok = isinstance(shape, list) and all(a in axes or (type(a) is int and a == 1) for a in shape)
        if not ok or sorted(a for a in shape if a != 1) != sorted(axes):
            raise bad("input_shape", f"a list naming {', '.join(map(repr, axes))} once each, plus literal 1s")
        feats = {k: data[k] for k in FEATURE_FIELDS if k in data}
        for name, value in feats.items():
            nullable = name in ("win_length", "fmax")
            if not ((value is None and nullable) or (isinstance(value, (int, float)) and not isinstance(value, bool)
                                                     and math.isfinite(value) and value >= 0)):
                raise bad(name, "a non-negative number" + (" or null" if nullable else ""))
        description = data.get("description", "")
        if not isinstance(description, str):
            raise bad("description", "a string")
        return cls(input_kind=kind, input_name=data["input_name"], input_shape=tuple(shape), sr=data["sr"],
                   n_mels=0 if wave else data["n_mels"], output_name=data["output_name"],
                   output_size=data["output_size"], min_frames=int(data.get("min_frames", 1)),
                   min_samples=int(data.get("min_samples", 1)), features=feats, description=description)

    def check_features(self, features: Any, where: str) -> None:
        """Raise unless ``features`` (a FeatureConfig) was computed as the contract asks.

        Parameters
        ----------
        features : FeatureConfig
            The log-mel settings a bundle is being saved with.
        where : str
            The contract file, for the message.
        """
        defaults = {"fmax": features.sr / 2, "win_length": features.n_fft}  # what None means
        wanted = {"sr": self.sr} if self.input_kind == "waveform" else {"sr": self.sr, "n_mels": self.n_mels,
                                                                         **self.features}
        for name, value in wanted.items():
            have = getattr(features, name)
            if (have if have is not None else defaults.get(name)) != (value if value is not None else defaults.get(name)):
                how = (f"train with --{name.replace('_', '-')} {value}" if name in _CLI_FEATURES
                       else f"compute it with FeatureConfig({name}={value!r})")
                raise ParameterError(f"{where}: {name}: the encoder expects {value!r}, but the "
                                     f"{'audio' if self.input_kind == 'waveform' else 'log-mel'} was computed with "
                                     f"{have!r} ({how})")


def contract_path(encoder: str | Path) -> Path:
    """The contract file beside an encoder: ``enc.onnx`` -> ``enc.json``."""
    return Path(encoder).with_suffix(".json")


def read_contract(encoder: str | Path) -> EncoderContract:
    """Read and validate the contract beside ``encoder`` (the ``.onnx`` file).

    Raises
    ------
    ParameterError
        One line naming the file (and the field) when the contract is missing or wrong.
    """
    path = contract_path(encoder)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParameterError(f"encoder: no contract {path} beside {encoder} (see docs/encoder.md)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{path}: cannot be read ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParameterError(f"{path}: not valid JSON ({exc})") from None
    return EncoderContract.from_dict(data, str(path))


def check_graph(model: Any, contract: EncoderContract, where: str) -> None:
    """Raise unless an encoder's ONNX graph (an ``onnx.ModelProto``) matches its contract.

    Checks the one input (name, float32, rank, fixed sizes against ``input_shape``: the time
    axis must be dynamic) and that ``output_name`` is a float32 output.
    """
    graph = model.graph
    weights = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    if [i.name for i in inputs] != [contract.input_name]:
        raise ParameterError(f"{where}: input_name: the encoder's inputs are {[i.name for i in inputs]}, expected "
                             f"one named {contract.input_name!r}")
    tensor = inputs[0].type.tensor_type
    if tensor.elem_type != _FLOAT:
        raise ParameterError(f"{where}: input_name: expected a float32 input, the encoder's has element type "
                             f"{tensor.elem_type}")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    if len(dims) != len(contract.input_shape):
        raise ParameterError(f"{where}: input_shape: {len(contract.input_shape)} axes, but the encoder's input "
                             f"has {len(dims)}")
    for axis, (have, want) in enumerate(zip(dims, contract.input_shape)):
        if have is None:
            continue  # a dynamic axis takes any size
        if want in ("n_time", "n_samples"):
            raise ParameterError(f"{where}: input_shape: the encoder's time axis {axis} is fixed at {have} "
                                 f"{'samples' if want == 'n_samples' else 'frames'}; "
                                 "export it with a dynamic time axis (dynamic_axes)")
        expected = contract.n_mels if want == "n_mels" else 1 if want == 1 else None
        if expected is not None and have != expected:
            raise ParameterError(f"{where}: input_shape: axis {axis} ({want}) is {have} in the encoder, expected "
                                 f"{expected}")
    outputs = {o.name: o for o in graph.output}
    if contract.output_name not in outputs:
        raise ParameterError(f"{where}: output_name: the encoder's outputs are {sorted(outputs)}, not "
                             f"{contract.output_name!r}")
    if outputs[contract.output_name].type.tensor_type.elem_type != _FLOAT:
        raise ParameterError(f"{where}: output_name: expected a float32 output")
