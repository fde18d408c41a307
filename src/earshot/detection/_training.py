"""The training loop the torch detectors share.

Each detector keeps what is its own (which windows or crops it feeds the network, its loss,
its validation measure) and passes it in as small callables; this module owns the rest:

- :func:`holdout_split`: whole clips held out from training (for the best epoch and the
  threshold);
- :func:`train_epoch`: one pass of mini-batch gradient descent;
- :func:`mean_loss`: the mean error of held-out items, in chunks, without gradients;
- :func:`run_epochs`: the epoch loop, with the loss history, the best validated epoch's
  weights kept and restored, and early stopping when asked;
- :func:`calibrate`: the threshold on held-out normal scores, or in-sample when too few;
- :func:`resolve_device`, :func:`make_optimiser` and :func:`training_threads`: where training
  runs (``auto``: CUDA when torch sees it), Adam in its fastest exact form for that device
  (fused on CUDA, foreach on CPU) and, on CPU, no more torch threads than there are idle
  usable cores for the duration of a fit.

The networks in :mod:`earshot.models` stay pure modules. torch is imported only when a
function that needs it runs, so importing a detector stays cheap.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from earshot._util.cores import idle_cores
from earshot.detection.thresholds import ThresholdSpec, fit_threshold
from earshot.errors import ParameterError

__all__ = [
    "DEVICES",
    "MIN_CALIBRATION_CLIPS",
    "TrainingRun",
    "calibrate",
    "check_device",
    "holdout_split",
    "make_optimiser",
    "mean_loss",
    "resolve_device",
    "run_epochs",
    "seeded_rng",
    "train_epoch",
    "training_threads",
]

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, float, float | None], None]

#: Fewest held-out normal clips for the threshold to be fitted on them rather than in-sample.
MIN_CALIBRATION_CLIPS = 5

#: Where a torch detector trains: ``auto`` (CUDA when torch sees a GPU, else the CPU), ``cpu``,
#: ``cuda`` (or ``cuda:N``). The fitted detector and its bundle are the same either way: the
#: network is moved back to the CPU when training ends.
DEVICES = ("auto", "cpu", "cuda")


def check_device(name: str, value: Any) -> None:
    """Parameter check: ``value`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (no torch needed)."""
    if not isinstance(value, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise ParameterError(f"{name}: expected one of {', '.join(DEVICES)} (or cuda:N), got {value!r}")


def resolve_device(device: str):
    """The ``torch.device`` to train on.

    Raises
    ------
    ParameterError
        ``cuda`` asked for where torch sees no CUDA device, or an unknown name.
    """
    import torch  # deferred: torch is only needed to train

    check_device("device", device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ParameterError(f"device: {device} was asked for, but torch sees no CUDA device "
                                 f"(torch {torch.__version__}); use --device cpu or auto")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ParameterError(f"device: {device}: torch sees {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(device)


def make_optimiser(params, device, *, lr: float, kind: str = "adam", **options: Any):
    """Adam (``kind="adam"``) or AdamW (``"adamw"``) in its fastest form on ``device``: fused
    kernels on CUDA, the multi-tensor (foreach) implementation on the CPU; the same update rule.
    """
    import torch  # deferred: torch is only needed to train

    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[kind]
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return cls(params, lr=float(lr), **fast, **options)


@contextlib.contextmanager
def training_threads(device) -> Iterator[int]:
    """For the duration of a fit on the CPU: torch intra-op threads lowered (never raised) to
    the idle usable cores (:func:`earshot._util.cores.idle_cores`), so that a busy machine does
    not thrash; restored afterwards. Yields the thread count (unchanged on a GPU)."""
    import torch  # deferred: torch is only needed to train

    before = torch.get_num_threads()
    if device.type != "cpu":
        yield before
        return
    threads = max(1, min(before, idle_cores()))
    torch.set_num_threads(threads)
    log.debug("training on the CPU with %d torch thread(s) (was %d)", threads, before)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


def seeded_rng(random_state: int) -> np.random.Generator:
    """A numpy generator seeded with ``random_state``; torch's initial weights are seeded alike.

    Returns
    -------
    np.random.Generator
        Draws the split, the shuffling and any augmentation, in the order the detector asks.
    """
    import torch  # deferred: torch is only needed to train

    torch.manual_seed(int(random_state))
    return np.random.default_rng(random_state)


def holdout_split(n_clips: int, fraction: float, rng: np.random.Generator, *, min_clips: int = 4
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Split clip indices into (train, held-out), whole clips, uniformly at random.

    ``round(fraction * n_clips)`` clips are held out, none when there are fewer than
    ``min_clips`` clips. One permutation is drawn from ``rng`` either way.

    Parameters
    ----------
    n_clips : int
    fraction : float
        Share of the clips held out, ``0 <= fraction < 1``.
    rng : np.random.Generator
    min_clips : int
        Fewest clips for anything to be held out.

    Returns
    -------
    train_idx, val_idx : np.ndarray of int
        Sorted, disjoint, covering ``range(n_clips)``; shapes ``(n_train,)`` and ``(n_val,)``.
    """
    order = rng.permutation(n_clips)
    n_val = int(round(float(fraction) * n_clips)) if n_clips >= min_clips else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def train_epoch(model, optimiser, items: np.ndarray, batch_loss: Callable[[np.ndarray], Any], *,
                batch_size: int, min_batch: int = 1, clip_norm: float | None = None) -> float:
    """One pass of mini-batch gradient descent over ``items``, in the order given.

    Parameters
    ----------
    model : torch.nn.Module
        Put in training mode; its parameters' gradient norm is clipped when ``clip_norm`` is set.
    optimiser : torch.optim.Optimizer
    items : np.ndarray
        ``(n_items, ...)``: what batches are cut from (window starts, sample positions),
        already shuffled.
    batch_loss : callable
        ``batch_loss(items[b : b + batch_size])`` -> scalar loss tensor, the batch's mean.
    batch_size : int
        Items per optimiser step.
    min_batch : int
        A smaller (last) batch is skipped: 2 where batch norm needs two samples.
    clip_norm : float, optional
        Largest gradient norm before each step.

    Returns
    -------
    float
        Mean loss per item over the batches trained on (0.0 if none was).
    """
    import torch  # deferred: torch is only needed to train

    model.train()
    total, count, on_device = 0.0, 0, None  # on a GPU the sum stays there: no sync per batch
    for b in range(0, len(items), int(batch_size)):
        batch = items[b : b + int(batch_size)]
        if len(batch) < min_batch:
            continue
        loss = batch_loss(batch)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimiser.step()
        if loss.device.type == "cpu":
            total += loss.item() * len(batch)
        else:
            part = loss.detach().double() * len(batch)
            on_device = part if on_device is None else on_device + part
        count += len(batch)
    if on_device is not None:
        total += float(on_device)
    return total / max(count, 1)


def mean_loss(model, items: np.ndarray, item_errors: Callable[[np.ndarray], Any], *, chunk: int = 4096) -> float:
    """Mean error per item over ``items``, in eval mode and without gradients.

    Parameters
    ----------
    model : torch.nn.Module
        Put in eval mode.
    items : np.ndarray
        ``(n_items, ...)``, at least one.
    item_errors : callable
        ``item_errors(items[b : b + chunk])`` -> tensor ``(len(chunk),)`` of per-item errors.
    chunk : int
        Items per forward pass (bounds the activations).

    Returns
    -------
    float
    """
    import torch  # deferred: torch is only needed to train

    model.eval()
    total = 0.0
    with torch.inference_mode():
        for b in range(0, len(items), chunk):
            total += float(item_errors(items[b : b + chunk]).sum())
    return total / len(items)


@dataclass
class TrainingRun:
    """What :func:`run_epochs` did.

    Attributes
    ----------
    loss : list of float
        Training loss per epoch run.
    val_loss : list of float or None
        Validation loss per epoch run (None where nothing is held out).
    best_epoch : int
        1-based epoch whose weights were kept (the last epoch when nothing was validated).
    stopped_epoch : int
        The last epoch run (``epochs`` unless training stopped early).
    """

    loss: list[float]
    val_loss: list[float | None]
    best_epoch: int
    stopped_epoch: int

    def history(self) -> dict[str, Any]:
        """``{"loss": [...], "val_loss": [...], "best_epoch": n}``, the detectors' ``history_``."""
        return {"loss": self.loss, "val_loss": self.val_loss, "best_epoch": self.best_epoch}


def run_epochs(model, epochs: int, train_one: Callable[[], float], validate: Callable[[], float] | None = None, *,
               patience: int | None = None, progress: ProgressFn | None = None) -> TrainingRun:
    """Train epoch after epoch, keep the weights of the epoch with the lowest validation loss.

    After each epoch: the losses are recorded, ``progress`` is called, and a validation loss
    below every earlier one keeps a deep copy of ``model``'s weights. At the end the kept
    weights (if any) are loaded back and ``model`` is put in eval mode.

    Parameters
    ----------
    model : torch.nn.Module
        The module whose weights are kept and restored.
    epochs : int
        Most epochs to run.
    train_one : callable
        ``train_one()`` -> float: trains one epoch, returns its training loss.
    validate : callable, optional
        ``validate()`` -> float: the held-out loss after an epoch; None when nothing is held out.
    patience : int, optional
        Stop after this many validated epochs in a row without a lower loss (None: never).
    progress : callable, optional
        ``progress(epoch, epochs, loss, val_loss)`` after each epoch.

    Returns
    -------
    TrainingRun
    """
    epochs = int(epochs)
    run = TrainingRun(loss=[], val_loss=[], best_epoch=epochs, stopped_epoch=epochs)
    best_val, best_state, since_best = np.inf, None, 0
    for epoch in range(1, epochs + 1):
        loss = train_one()
        val_loss = validate() if validate is not None else None
        run.loss.append(loss)
        run.val_loss.append(val_loss)
        log.debug("epoch %d/%d loss %.4f val_loss %s", epoch, epochs, loss, val_loss)
        if progress is not None:
            progress(epoch, epochs, loss, val_loss)
        if val_loss is None:
            continue
        if val_loss < best_val:
            best_val, run.best_epoch, since_best = val_loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since_best += 1
            if patience is not None and since_best >= patience:
                run.stopped_epoch = epoch
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return run


def calibrate(held_out: np.ndarray, fallback: np.ndarray, spec: ThresholdSpec, *,
              min_clips: int = MIN_CALIBRATION_CLIPS) -> tuple[str, np.ndarray, float]:
    """Fit the threshold on held-out normal clip scores, or on ``fallback`` when too few.

    Parameters
    ----------
    held_out : np.ndarray
        ``(n_val,)`` scores of normal clips the network never trained on.
    fallback : np.ndarray
        ``(n,)`` in-sample normal scores, used when ``n_val < min_clips``.
    spec : ThresholdSpec
    min_clips : int

    Returns
    -------
    source : str
        ``"validation"`` or ``"train"``.
    calibration_scores : np.ndarray
        The scores the threshold was fitted on (``held_out`` or ``fallback`` itself).
    threshold : float
    """
    source, scores = ("validation", held_out) if len(held_out) >= min_clips else ("train", fallback)
    return source, scores, float(fit_threshold(scores, spec))
