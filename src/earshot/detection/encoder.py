"""Pretrained-encoder detector (``--model encoder``): a user-supplied ONNX encoder embeds each
clip; the score is the k-NN distance to the normal clips' embeddings (the DCASE 2023-2025
recipe: a frozen BEATs/EAT/CED encoder + k-NN).

The encoder (``encoder=enc.onnx``, with its contract ``enc.json`` beside it, see
:mod:`earshot.detection.encoder_contract` and ``docs/encoder.md``) is never trained. The head
is the one of ``knn``: per-domain references, each domain's distances divided by the typical
held-out distance of its own normal clips, the smallest kept (:class:`DomainKnn`); the
held-out distances are leave-one-out, exact for a frozen encoder.

There is one scoring path: the fitted detector builds one ONNX graph, log-mel ``(batch,
n_time, n_mels)`` (a waveform encoder: the waveform ``(batch, n_samples)``, see :attr:`input`)
-> the layout of the contract -> the encoder -> the k-NN head ->
``window_scores (batch, 1)`` (:mod:`earshot.detection.encoder_graph`); :meth:`score_samples`
runs it with onnxruntime, and the bundle stores it as its ``model.onnx`` (so scoring stays
torch-free and ``earshot export`` joins it to the waveform front end like any other).
``weights.pt`` keeps the encoder's bytes and the references for :func:`load_detector`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from earshot._util.validate import check_int
from earshot.detection.base import Detector
from earshot.detection.encoder_contract import EncoderContract, contract_path, read_contract
from earshot.detection.encoder_graph import (
    NORM_EPS,
    error_line,
    load_encoder,
    onnx_session,
    scoring_graph,
)
from earshot.detection.frugal import (
    CROSS_FIT,
    DomainKnn,
    as_clips,
    domain_labels,
    domain_scales,
    selective_scores,
)
from earshot.detection.thresholds import ThresholdSpec, fit_threshold
from earshot.errors import ParameterError

__all__ = ["EncoderDetector"]

_METRICS = ("cosine", "euclidean")


def _waveforms(X: Sequence[np.ndarray], min_samples: int) -> list[np.ndarray]:
    """Check the clips of a waveform encoder: 1-D float signals of at least ``min_samples``."""
    clips = [np.asarray(x, dtype=np.float32) for x in X]
    if not clips:
        raise ParameterError("X: no clips")
    for i, c in enumerate(clips):
        if c.ndim != 1:
            raise ParameterError(f"X: clip {i}: a waveform encoder takes 1-D signals (n_samples,), got shape {c.shape}")
        if c.size < min_samples:
            raise ParameterError(f"X: clip {i} has {c.size} samples; the encoder needs at least {min_samples} "
                                 "(contract min_samples)")
    return clips


# ---------------------------------------------------------------------- the detector
class EncoderDetector(Detector):
    """Frozen pretrained ONNX encoder + per-domain k-NN (``--model encoder``).

    Parameters
    ----------
    encoder : str
        Path of the ONNX encoder; its contract ``<same name>.json`` lies beside it.
    n_neighbors : int
        Nearest normal embeddings averaged per domain (at most the domain's clips).
    metric : {"cosine", "euclidean"}
        Distance between embeddings (cosine: on unit-length embeddings).
    selective : bool
        Per-domain references and scales, the smallest scaled distance wins (True); False
        pools every clip into one reference.
    threshold : str
        ``gamma:q``, ``percentile:p``, ``mean-std:k``, ``max`` or ``value:x``, fitted on the
        leave-one-out scores of the training clips.
    n_frames : int
        Fewest frames a clip must have (at least the contract's ``min_frames``).
    batch_size : int
        Clips per encoder call.
    random_state : int
        Accepted like every detector's; nothing here is random.

    Attributes
    ----------
    threshold_, threshold_source_ ("cross-fit"), train_scores_, calibration_scores_
        The leave-one-out scores of the training clips (the threshold is fitted on them).
    knn_ : DomainKnn
        ``refs_`` (the normal embeddings per domain), ``ks_``, ``scales_``.
    contract_ : EncoderContract
    encoder_ : bytes
        The encoder's ONNX model.
    graph_ : bytes
        The scoring graph (:func:`scoring_graph`), the bundle's ``model.onnx``.
    """

    kind = "encoder"

    def __init__(self, *, encoder: str | None = None, n_neighbors: int = 1, metric: str = "cosine",
                 selective: bool = True, threshold: str = "gamma:0.9", n_frames: int = 5, batch_size: int = 16,
                 random_state: int = 0):
        self.encoder = encoder
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.selective = selective
        self.threshold = threshold
        self.n_frames = n_frames
        self.batch_size = batch_size
        self.random_state = random_state

    def _validate_params(self) -> ThresholdSpec:
        for name in ("n_neighbors", "n_frames", "batch_size"):
            check_int(name, getattr(self, name), 1)
        if self.metric not in _METRICS:
            raise ParameterError(f"metric: expected one of {', '.join(_METRICS)}, got {self.metric!r}")
        if not isinstance(self.selective, (bool, np.bool_)):
            raise ParameterError(f"selective: expected true or false, got {self.selective!r}")
        spec = ThresholdSpec.parse(self.threshold)
        if not isinstance(self.encoder, (str, Path)):
            raise ParameterError("encoder: expected the path of an ONNX encoder with its .json contract beside it "
                                 f"(--param encoder=enc.onnx), got {self.encoder!r}")
        return spec

    @property
    def input(self) -> str:
        """What the detector is fitted on and scores: ``"logmel"`` clips ``(n_mels, n_time)`` or,
        for an encoder whose contract says ``"input_kind": "waveform"``, ``"waveform"`` clips
        ``(n_samples,)`` at the contract's ``sr`` (read from the contract before fitting)."""
        contract = getattr(self, "contract_", None)
        if contract is None:
            if not isinstance(self.encoder, (str, Path)):
                return "logmel"  # fit says what is wrong with the parameter
            contract = read_contract(self.encoder)
        return contract.input_kind

    def _check_clips(self, X: Sequence[np.ndarray]) -> Sequence[np.ndarray]:
        if self.contract_.input_kind == "waveform":
            return _waveforms(X, self.contract_.min_samples)
        clips = as_clips(X, self.n_frames)
        n_mels = int(np.shape(clips[0])[0])
        if n_mels != self.contract_.n_mels:
            raise ParameterError(f"X: the encoder expects {self.contract_.n_mels} mel bands (contract n_mels), got "
                                 f"{n_mels}: compute the log-mel with --n-mels {self.contract_.n_mels}")
        return clips

    def _run(self, session, clips: Sequence[np.ndarray], width: int) -> np.ndarray:
        """The session's one output per clip, ``(n_clips, width)``, clips of equal length batched."""
        lengths = np.array([np.shape(c)[-1] for c in clips])
        out = np.empty((len(clips), width))
        for length in np.unique(lengths):
            idx = np.flatnonzero(lengths == length)
            for b in range(0, len(idx), int(self.batch_size)):
                chunk = idx[b : b + int(self.batch_size)]
                # (n_mels, n_time) -> (n_time, n_mels); a waveform (n_samples,) stays as it is
                x = np.ascontiguousarray(np.stack([np.asarray(clips[i], np.float32).T for i in chunk]))
                kind = self.contract_.input_kind
                try:
                    (y,) = session.run(None, {kind: x})
                except Exception as exc:  # onnxruntime raises its own exception types
                    unit = "samples" if kind == "waveform" else "frames"
                    raise ParameterError(f"encoder: {self.encoder} failed on clips of {length} {unit} "
                                         f"({error_line(exc)})") from None
                if y.shape != (len(chunk), width):
                    raise ParameterError(f"encoder: output {self.contract_.output_name!r} has shape {y.shape} for "
                                         f"{len(chunk)} clips, expected (batch, {width}) (contract output_size)")
                out[chunk] = y
        return out

    def fit(self, X: Sequence[np.ndarray], y: Any = None, *, metadata: Sequence[dict] | None = None,
            progress: Any = None) -> EncoderDetector:
        """Embed the normal clips, keep them as references, fit the scales and the threshold.

        Parameters
        ----------
        X : sequence of np.ndarray or FrameStore
            Normal clips ``(n_mels, n_time)`` in dB (at least 2), ``n_mels`` as the contract's; for
            a waveform encoder 1-D signals ``(n_samples,)`` at the contract's ``sr``.
        y : ignored
        metadata : sequence of dict, optional
            One dict per clip; its ``domain`` selects the per-domain references.
        progress : callable, optional
            Called once when done as ``progress(1, 1, 0.0, None)``.

        Returns
        -------
        self
        """
        spec = self._validate_params()
        encoder, contract = load_encoder(self.encoder)
        if self.n_frames < contract.min_frames:
            raise ParameterError(f"n_frames: the encoder needs clips of at least {contract.min_frames} frames "
                                 f"(contract min_frames), got n_frames={self.n_frames}")
        self.contract_ = contract
        clips = self._check_clips(X)
        n = len(clips)
        if n < 2:
            raise ParameterError(f"X: encoder needs at least 2 normal clips, got {n}")
        domain_list = domain_labels(metadata, n) if self.selective else ["all"] * n
        dom, domains = np.asarray(domain_list), sorted(set(domain_list))
        embedder = onnx_session(scoring_graph(encoder, contract), f"encoder: {self.encoder}")
        E = self._run(embedder, clips, contract.output_size)
        del embedder
        if not np.isfinite(E).all():
            raise ParameterError(f"encoder: {self.encoder} gave NaN or infinite embeddings")
        if self.metric == "cosine":
            E = E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), NORM_EPS)
        knn = DomainKnn(int(self.n_neighbors), metric=self.metric).fit(E, dom, domains)
        held = knn.loo_distances(E, dom)
        knn.scales_ = domain_scales(held, dom, domains)
        loo = selective_scores(held, knn.scales_)

        self.knn_ = knn
        self.encoder_ = encoder
        self.graph_ = scoring_graph(encoder, contract, knn)
        self._scorer = None
        self.n_mels_ = contract.n_mels
        self.domain_counts_ = {d: int(np.sum(dom == d)) for d in domains}
        self.train_scores_ = self.calibration_scores_ = loo
        self.threshold_source_ = CROSS_FIT
        self.threshold_ = float(fit_threshold(loo, spec))
        self.n_train_clips_ = self.n_calibration_clips_ = n
        self.history_ = {}
        if progress is not None:
            progress(1, 1, 0.0, None)
        return self

    # ------------------------------------------------------------------ scoring
    def window_scores(self, X: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One "window" per clip, ``[array([score])]``, from the scoring graph (onnxruntime)."""
        self._check_fitted()
        clips = self._check_clips(X)
        if getattr(self, "_scorer", None) is None:  # one session, made when first needed
            self._scorer = onnx_session(self.graph_, "the encoder's scoring graph")
        return [row for row in self._run(self._scorer, clips, 1)]

    def score_samples(self, X: Sequence[np.ndarray]) -> np.ndarray:
        """Clip scores ``(n_clips,)``: the smallest per-domain scaled k-NN distance of the clip's
        embedding (about 1 for a typical new normal clip of that domain)."""
        return np.array([w[0] for w in self.window_scores(X)])

    def __getstate__(self) -> dict[str, Any]:
        """Picklable state: the onnxruntime session is left out (made again when needed)."""
        return {k: v for k, v in vars(self).items() if k != "_scorer"}

    # ------------------------------------------------------------------ bundle
    def scoring_graph(self, features: Any) -> bytes:
        """The bundle's ``model.onnx`` (serialised), once ``features`` are checked against the
        contract (``sr``, ``n_mels`` and any feature settings it names)."""
        self._check_fitted()
        self.contract_.check_features(features, str(contract_path(self.encoder)))
        return self.graph_

    def state_dict(self) -> dict:
        """``weights.pt``: the encoder's bytes (uint8) and the head's references and scales."""
        import torch  # deferred: torch is only needed to write weights.pt

        self._check_fitted()
        weights = {"encoder_onnx": torch.frombuffer(bytearray(self.encoder_), dtype=torch.uint8),
                   "head.scales": torch.from_numpy(self.knn_.scales_.astype(np.float32))}
        for d, refs in enumerate(self.knn_.refs_):
            weights[f"head.refs_{d}"] = torch.from_numpy(refs.astype(np.float32))
        return weights

    def fitted_state(self) -> dict[str, Any]:
        """What a bundle records of the fitted detector (JSON-safe)."""
        self._check_fitted()
        return {**self._fitted_common(), "domains": self.domain_counts_, "knn": self.knn_.state(),
                "contract": self.contract_.to_dict()}

    @classmethod
    def from_fitted(cls, params: dict[str, Any], state: dict[str, Any], weights: dict) -> EncoderDetector:
        """Rebuild a fitted detector from a bundle's parameters, fitted state and weights."""
        det = cls(**params)
        det._restore_common(state, default_source=CROSS_FIT)
        det.contract_ = EncoderContract.from_dict(state["contract"], "the bundle's encoder contract")
        det.encoder_ = weights["encoder_onnx"].numpy().tobytes()
        det.knn_ = DomainKnn.from_state(state["knn"], weights, "head.")
        det.domain_counts_ = dict(state.get("domains", {}))
        det.graph_ = scoring_graph(det.encoder_, det.contract_, det.knn_)
        det._scorer = None
        return det
