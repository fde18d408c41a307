"""Embedding detector (``--model embed``): classify what is known about normal clips, score by
distance to the normal clips' embeddings.

A compact CNN (:class:`earshot.models.embed.EmbeddingNet`) is trained on normal clips only,
with an angular-margin loss (ArcFace), to tell apart

- the **metadata classes** of the clips: every combination of the machine, id/section, domain
  and file-name or manifest attributes that tells the training clips apart (see
  :func:`metadata_classes`), and
- which **augmentation** was applied to a crop (the spectrum shifted up or down by 0, 1, 2 or 4
  mel bands, played as it is or twice as fast: 14 classes): a self-supervised task that needs
  no metadata and makes the network attend to exactly where the energy sits in frequency and
  how fast it changes.

By default (``targets="auto"``) a class is the pair (metadata class, augmentation). A clip's
score is the cosine distance of its embedding to the nearest normal training embeddings,
computed per domain and divided by that domain's typical distance, the smallest kept (the
DCASE 2023 "selective" idea; see :class:`earshot.detection.domain_heads.DomainKnn`). The scoring
graph (network + references) exports to ONNX with one "window" per clip.

With ``--group-by id`` every group has a single id, so only the domain and the attributes are
left as metadata; ``--group-by machine`` adds the ids as classes (the DCASE recipe). Both work:
with no metadata that tells clips apart, the augmentation task alone trains the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from earshot._util.validate import check_fraction, check_int
from earshot.detection._training import ProgressFn, calibrate, holdout_split, run_epochs, seeded_rng, train_epoch
from earshot.detection.base import ClipLevelDetector, as_clips, as_store, check_bool, each, frame_stats, int_at_least
from earshot.detection.domain_heads import DomainKnn, domain_labels, domain_scales, selective_scores
from earshot.errors import ParameterError
from earshot.features.store import FrameStore

__all__ = ["EmbedDetector", "metadata_classes", "AUGMENTATIONS", "EXCLUDED_KEYS", "SHIFTS", "SPEEDS"]

#: The self-supervised classes: which transformation a training crop went through.
#: Mel-band shifts (positive: up) and speed-ups of the augmentation classes; a class is one
#: (shift, speed) pair, e.g. ``shift+2`` or ``shift-1_speed2x``.
SHIFTS = (0, 1, -1, 2, -2, 4, -4)
SPEEDS = (1, 2)
AUGMENTATIONS = tuple(f"shift{s:+d}" + ("_speed2x" if v == 2 else "") for v in SPEEDS for s in SHIFTS)
#: Metadata keys never used as classes (they describe anomalies or the data split).
EXCLUDED_KEYS = frozenset({"label", "split", "path", "fault", "severity", "condition", "number"})
TARGETS = ("auto", "metadata", "augmentation")


def metadata_classes(metadata: Sequence[dict] | None, n_clips: int) -> tuple[np.ndarray | None, dict[str, Any]]:
    """A class per clip from what is known about it, or None when nothing tells clips apart.

    Candidate keys: ``machine``, ``id``, ``domain`` and every attribute except
    :data:`EXCLUDED_KEYS` (a clip without the attribute counts as its own value ``-``). A key
    is kept when it takes 2 to ``n_clips // 2`` values (a key unique to each clip, like a
    serial number, teaches nothing); a class is the tuple of the kept keys' values. While there
    are more than ``n_clips // 2`` classes, keys are dropped: attributes first (the one with
    the most values first), then the domain, the id and the machine; then a key that the
    other kept keys determine (an attribute constant per machine, say) is dropped too.

    Returns
    -------
    labels : np.ndarray of int or None
        ``(n_clips,)`` class indices.
    info : dict
        ``{"keys": [...], "classes": [names], "counts": [...]}`` (JSON-safe).
    """
    if metadata is None:
        return None, {"keys": [], "classes": [], "counts": []}
    metadata = [m or {} for m in metadata]
    if len(metadata) != n_clips:
        raise ParameterError(f"metadata: expected one dict per clip ({n_clips}), got {len(metadata)}")
    columns: dict[str, list[str]] = {}
    for key in ("machine", "id", "domain"):
        columns[key] = [str(m.get(key)) for m in metadata]
    attr_keys = sorted({k for m in metadata for k in (m.get("attributes") or {})} - EXCLUDED_KEYS)
    for key in attr_keys:
        columns[f"attributes.{key}"] = [str((m.get("attributes") or {}).get(key, "-")) for m in metadata]
    limit = n_clips // 2
    keys = [k for k, v in columns.items() if 2 <= len(set(v)) <= limit]
    attrs = sorted((k for k in keys if k.startswith("attributes.")), key=lambda k: (-len(set(columns[k])), k))
    drop_order = attrs + [k for k in ("domain", "id", "machine") if k in keys]

    def n_classes(ks: list[str]) -> int:
        return len({tuple(columns[k][i] for k in ks) for i in range(n_clips)})

    while keys and n_classes(keys) > limit:
        keys.remove(drop_order.pop(0))
    for k in drop_order:  # a key the others already determine adds nothing: drop it
        if k in keys and len(keys) > 1 and n_classes([j for j in keys if j != k]) == n_classes(keys):
            keys.remove(k)
    names = ["|".join(f"{k}={columns[k][i]}" for k in keys) for i in range(n_clips)]
    if not keys:
        return None, {"keys": [], "classes": [], "counts": []}
    classes = sorted(set(names))
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[c] for c in names], dtype=np.int64)
    return labels, {"keys": keys, "classes": classes, "counts": np.bincount(labels).tolist()}


def _targets(name: str, value: Any) -> None:
    if value not in TARGETS:
        raise ParameterError(f"{name}: expected one of {', '.join(TARGETS)}, got {value!r}")


def _enough_frames(name: str, value: Any) -> None:
    from earshot.models.embed import MIN_TIME  # deferred: earshot.models imports torch

    check_int(name, value, MIN_TIME)


def _positive_number(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ParameterError(f"{name}: expected a positive number, got {value!r}")


def _margin(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.5:
        raise ParameterError(f"{name}: expected a number in [0, 1.5) radians, got {value!r}")


def _shift(x: np.ndarray, s: int) -> np.ndarray:
    """Shift a ``(n_time, n_mels)`` crop by ``s`` mel bands (up if positive), edges repeated."""
    out = np.empty_like(x)
    if s > 0:
        out[:, s:] = x[:, :-s]
        out[:, :s] = x[:, :1]
    else:
        out[:, :s] = x[:, -s:]
        out[:, s:] = x[:, -1:]
    return out


class EmbedDetector(ClipLevelDetector):
    """Self-supervised embedding + per-domain k-NN detector (``--model embed``).

    Parameters
    ----------
    targets : {"auto", "metadata", "augmentation"}
        What the network learns to classify: ``auto`` = (metadata class, augmentation) pairs,
        or augmentations alone where no metadata tells the clips apart; ``metadata`` = the
        metadata classes only (an error if there are none); ``augmentation`` = augmentations
        only.
    width : int
        Channels of the first two conv blocks (the third has twice as many).
    embedding_dim : int
    epochs : int
        Passes; each pass draws ``crops_per_clip`` random crops of every training clip.
    batch_size : int
    learning_rate : float
    crop_frames : int
        Frames per training crop (shorter clips: half their length).
    crops_per_clip : int
    margin, scale : float
        ArcFace margin (radians) and logit scale.
    n_neighbors : int
        Nearest normal embeddings averaged per domain.
    selective : bool
        Per-domain references and scales (the smallest scaled distance wins).
    validation_fraction : float
        Share of the clips (at least 10 clips needed) held out from training the network:
        the best epoch on them is kept and, with 5 or more, the threshold is fitted on their
        scores. Held-out clips still serve as references.
    threshold : str
        ``gamma:q``, ``percentile:p``, ``mean-std:k``, ``max`` or ``value:x``.
    n_frames : int
        Fewest frames a clip must have (>= 4).
    random_state : int
        Seeds the split, crops, augmentations and the initial weights.

    Attributes
    ----------
    threshold_, threshold_source_ ("validation" or "train"), train_scores_, calibration_scores_
    history_ : dict
        ``loss``/``val_loss`` per epoch and ``best_epoch``.
    targets_ : dict
        The metadata keys and classes used, the augmentations, the number of classes.
    knn_ : DomainKnn
    """

    kind = "embed"

    def __init__(self, *, targets: str = "auto", width: int = 128, embedding_dim: int = 64, epochs: int = 20,
                 batch_size: int = 32, learning_rate: float = 1e-3, crop_frames: int = 64, crops_per_clip: int = 4,
                 margin: float = 0.2, scale: float = 16.0, n_neighbors: int = 1, selective: bool = True,
                 validation_fraction: float = 0.1, threshold: str = "gamma:0.9", n_frames: int = 5,
                 random_state: int = 0):
        self.targets = targets
        self.width = width
        self.embedding_dim = embedding_dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.crop_frames = crop_frames
        self.crops_per_clip = crops_per_clip
        self.margin = margin
        self.scale = scale
        self.n_neighbors = n_neighbors
        self.selective = selective
        self.validation_fraction = validation_fraction
        self.threshold = threshold
        self.n_frames = n_frames
        self.random_state = random_state

    _PARAMS = ("targets", "width", "embedding_dim", "epochs", "batch_size", "learning_rate", "crop_frames",
               "crops_per_clip", "margin", "scale", "n_neighbors", "selective", "validation_fraction", "threshold",
               "n_frames", "random_state")

    param_checks = (
        ("targets", _targets),
        *each(("width", "embedding_dim", "epochs", "batch_size", "crop_frames", "crops_per_clip", "n_neighbors"),
              int_at_least(1)),
        ("n_frames", _enough_frames),
        *each(("learning_rate", "scale"), _positive_number),
        ("margin", _margin),
        ("validation_fraction", check_fraction),
        ("selective", check_bool),
    )

    # ------------------------------------------------------------------ training
    def _build_net(self, n_mels: int, mean: np.ndarray, std: np.ndarray):
        import torch  # deferred: torch is only needed to train or score in torch

        from earshot.models.embed import EmbeddingNet  # deferred: earshot.models imports torch

        return EmbeddingNet(n_mels, torch.from_numpy(mean.astype(np.float32)), torch.from_numpy(std.astype(np.float32)),
                            width=int(self.width), embedding_dim=int(self.embedding_dim))

    def fit(self, X: Sequence[np.ndarray], y: Any = None, *, metadata: Sequence[dict] | None = None,
            progress: ProgressFn | None = None) -> "EmbedDetector":
        """Train the embedding on normal clips, store the normal embeddings, fit the threshold.

        Parameters
        ----------
        X : sequence of np.ndarray or FrameStore
            Normal clips ``(n_mels, n_time)`` in dB (at least 2).
        y : ignored
        metadata : sequence of dict, optional
            One dict per clip (``machine``, ``id``, ``domain``, ``attributes``): the metadata
            classes and the per-domain references come from it.
        progress : callable, optional
            ``progress(epoch, epochs, loss, val_loss)`` after each epoch.

        Returns
        -------
        self
        """
        import torch  # deferred: torch is only needed to train

        from earshot.models.embed import MIN_MELS, MIN_TIME, ArcMarginHead  # deferred: earshot.models imports torch

        spec = self._validate_params()
        store = as_store(X, self.n_frames)
        n = len(store)
        if store.n_mels < MIN_MELS:
            raise ParameterError(f"X: embed needs at least {MIN_MELS} mel bands, got {store.n_mels}")
        if n < 2:
            raise ParameterError(f"X: embed needs at least 2 normal clips, got {n}")
        domains = domain_labels(metadata, n) if self.selective else ["all"] * n
        meta, meta_info = (None, {"keys": [], "classes": [], "counts": []})
        if self.targets != "augmentation":
            meta, meta_info = metadata_classes(metadata, n)
            if meta is None and self.targets == "metadata":
                raise ParameterError("targets: 'metadata' needs metadata that tells the training clips apart "
                                     "(ids, domains or attributes); none does here: use targets=auto")

        rng = seeded_rng(self.random_state)
        train_idx, val_idx = holdout_split(n, self.validation_fraction, rng, min_clips=10)

        crop, pairs, augs = self._augmentation_plan(store, MIN_TIME)
        n_meta = 1 if meta is None else int(meta.max()) + 1
        n_classes = n_meta * len(augs)
        labels = np.zeros(n, np.int64) if meta is None else meta

        self.mean_, self.std_ = frame_stats(store, train_idx)
        net = self._build_net(store.n_mels, self.mean_, self.std_)
        head = ArcMarginHead(int(self.embedding_dim), n_classes, scale=float(self.scale), margin=float(self.margin))
        optimiser = torch.optim.Adam(list(net.parameters()) + list(head.parameters()), lr=float(self.learning_rate))

        def draw(idx: np.ndarray, generator: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
            """Random crops ``(len(idx), crop, n_mels)`` of the given clips, with their classes."""
            batch = np.empty((len(idx), crop, store.n_mels), np.float32)
            cls = np.empty(len(idx), np.int64)
            for j, i in enumerate(idx):
                a = int(generator.integers(len(pairs)))
                sh, speed = pairs[a]
                length = int(store.lengths[i])
                start = int(generator.integers(0, length - speed * crop + 1))
                x = store.clip_frames(i)[start : start + speed * crop]
                if speed == 2:
                    x = 0.5 * (x[0::2] + x[1::2])
                batch[j] = _shift(x, sh) if sh else x
                cls[j] = labels[i] * len(augs) + a
            return batch, cls

        val_rng = np.random.default_rng([int(self.random_state), 1])
        val_batch = draw(np.repeat(val_idx, self.crops_per_clip), val_rng) if len(val_idx) else None

        def batch_loss(idx: np.ndarray):
            xb, cb = draw(idx, rng)
            logits = head(net(torch.from_numpy(xb)), torch.from_numpy(cb))
            return torch.nn.functional.cross_entropy(logits, torch.from_numpy(cb))

        both = torch.nn.ModuleList([net, head])  # trained together; only the network is kept

        def one_epoch() -> float:  # batches of one crop are skipped: batch norm needs two samples
            samples = rng.permutation(np.repeat(train_idx, self.crops_per_clip))
            return train_epoch(both, optimiser, samples, batch_loss, batch_size=int(self.batch_size), min_batch=2)

        def validate() -> float:
            both.eval()
            vx, vc = val_batch
            with torch.inference_mode():
                logits = head(net(torch.from_numpy(vx)), torch.from_numpy(vc))
                return float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(vc)))

        run = run_epochs(net, self.epochs, one_epoch, validate if val_batch is not None else None, progress=progress)
        self.net_ = net
        self.n_mels_ = store.n_mels
        self.history_ = run.history()
        self.targets_ = {"metadata_keys": meta_info["keys"], "metadata_classes": meta_info["classes"],
                         "metadata_counts": meta_info["counts"], "augmentations": augs, "n_classes": n_classes,
                         "crop_frames": crop}

        self._fit_references(store, domains, train_idx, val_idx, spec)
        return self

    def _augmentation_plan(self, store: FrameStore, min_time: int) -> tuple[int, list[tuple[int, int]], list[str]]:
        """The crop length, the (shift, speed) pairs the clips allow, and their class names."""
        min_len = int(store.lengths.min())
        crop = int(min(self.crop_frames, max(min_time, min_len // 2)))
        speeds = SPEEDS if min_len >= 2 * crop else (1,)
        pairs = [(sh, v) for v in speeds for sh in SHIFTS if 4 * abs(sh) < store.n_mels]
        if self.targets == "metadata":
            pairs = [(0, 1)]
        augs = [f"shift{sh:+d}" + ("_speed2x" if v == 2 else "") for sh, v in pairs]
        return crop, pairs, augs

    def _fit_references(self, store: FrameStore, domains: list[str], train_idx: np.ndarray, val_idx: np.ndarray,
                        spec) -> None:
        """The normal embeddings as per-domain references, their leave-one-out scores, the threshold."""
        E = self._embed(store)
        dom, order = np.asarray(domains), sorted(set(domains))
        self.knn_ = DomainKnn(int(self.n_neighbors), metric="cosine").fit(E, dom, order)
        held = self.knn_.loo_distances(E, dom)
        self.knn_.scales_ = domain_scales(held, dom, order)
        loo = selective_scores(held, self.knn_.scales_)
        self.domain_counts_ = {d: domains.count(d) for d in order}
        self.train_scores_ = loo[train_idx]
        self.threshold_source_, self.calibration_scores_, self.threshold_ = calibrate(loo[val_idx], loo, spec)
        self.n_train_clips_ = int(len(train_idx))
        self.n_calibration_clips_ = int(len(self.calibration_scores_))

    # ------------------------------------------------------------------ scoring
    def _embed(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Unit embeddings ``(n_clips, embedding_dim)``, clips of equal length batched."""
        import torch  # deferred: torch is only needed to score in torch

        lengths = np.array([np.shape(c)[1] for c in clips])
        out = np.empty((len(clips), int(self.embedding_dim)))
        with torch.inference_mode():
            for length in np.unique(lengths):
                idx = np.flatnonzero(lengths == length)
                for b in range(0, len(idx), 64):
                    chunk = idx[b : b + 64]
                    x = torch.from_numpy(np.stack([np.asarray(clips[i], np.float32).T for i in chunk]))
                    out[chunk] = self.net_(x).double().numpy()
        return out

    def embed(self, X: Sequence[np.ndarray]) -> np.ndarray:
        """Unit-length embeddings of clips, ``(n_clips, embedding_dim)``."""
        self._check_fitted()
        clips = as_clips(X, self.n_frames)
        n_mels = int(np.shape(clips[0])[0])
        if n_mels != self.n_mels_:
            raise ParameterError(f"X: expected {self.n_mels_} mel bands as in training, got {n_mels}")
        return self._embed(clips)

    def score_samples(self, X: Sequence[np.ndarray]) -> np.ndarray:
        """Clip scores ``(n_clips,)``: smallest per-domain scaled cosine k-NN distance."""
        self._check_fitted()
        return self.knn_.score(self.embed(X))

    # ------------------------------------------------------------------ export
    def scoring_module(self):
        """The torch scoring graph: log-mel ``(batch, n_time, n_mels)`` -> ``(batch, 1)``."""
        self._check_fitted()
        from earshot.models.frugal import ClipScorer  # deferred: earshot.models imports torch

        return ClipScorer(self.net_, self.knn_.torch_module()).eval()

    def state_dict(self) -> dict:
        """Weights of the scoring graph (network, normalisation and reference embeddings)."""
        return self.scoring_module().state_dict()

    def fitted_state(self) -> dict[str, Any]:
        """What a bundle records of the fitted detector (JSON-safe)."""
        self._check_fitted()
        return {
            **self._fitted_common(),
            "domains": self.domain_counts_,
            "targets": self.targets_,
            "knn": self.knn_.state(),
        }

    @classmethod
    def from_fitted(cls, params: dict[str, Any], state: dict[str, Any], weights: dict) -> "EmbedDetector":
        """Rebuild a fitted detector from a bundle's parameters, fitted state and weights."""
        det = cls(**params)
        det._restore_common(state)
        n_mels = det.n_mels_
        net = det._build_net(n_mels, np.zeros(n_mels, np.float32), np.ones(n_mels, np.float32))
        net.load_state_dict({k[len("encoder."):]: v for k, v in weights.items() if k.startswith("encoder.")})
        net.eval()
        det.net_ = net
        det.mean_ = net.mean.numpy().copy()
        det.std_ = (1.0 / net.inv_std).numpy().copy()
        det.knn_ = DomainKnn.from_state(state["knn"], weights, "head.")
        det.targets_ = state.get("targets", {})
        det.domain_counts_ = dict(state.get("domains", {}))
        return det
