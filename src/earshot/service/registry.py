"""The models the service scores with, loaded once at start-up and hot-swapped after training.

Model names are URL-safe: a group ``fan/id_00`` of the ``--models`` directory is served as
``fan_id_00`` (:func:`earshot.bundle.group_dirname`, the name of its bundle folder). A model
trained by the service for a machine lives in ``<data>/models/<machine>/`` and is named after
the machine (it replaces a ``--models`` group of the same name).

A machine is scored by, in order: the model set for it (``PUT /machines/{machine}``, or the
one its training job wrote), the model named like the machine, the default model (``--default-model``,
or the only model when there is exactly one); otherwise its snippets are stored unscored.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from earshot.bundle import Bundle, group_dirname, load_model
from earshot.errors import BundleError, ParameterError

__all__ = ["ModelEntry", "ModelRegistry", "NAME_RE", "check_name"]

log = logging.getLogger(__name__)

#: Machine and model names: letters, digits, ``.``, ``_``, ``-``; at most 64, starting alphanumeric.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # always fullmatch: "$" accepts a trailing newline


def check_name(value: str, what: str) -> str:
    """``value`` if it is a valid machine/model name, else a ParameterError naming ``what``."""
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise ParameterError(
            f"{what}: expected 1-64 letters, digits, '.', '_' or '-' starting with a letter or digit, got {value!r}"
        )
    return value


@dataclass
class ModelEntry:
    """One loaded bundle and where it came from."""

    name: str
    bundle: Bundle
    source: str  # "models-dir" | "trained"
    group: Optional[str]
    loaded_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))

    def summary(self) -> dict[str, Any]:
        m = self.bundle.manifest
        f = self.bundle.features
        return {
            "name": self.name,
            "source": self.source,
            "group": self.group,
            "kind": self.bundle.kind,
            "streams": self.bundle.streams,  # false: clip-level (gauss, knn, embed), no timeline
            "threshold": self.bundle.threshold_,
            "threshold_method": m.get("threshold", {}).get("method"),
            "threshold_source": m.get("threshold", {}).get("source"),
            "aggregate": self.bundle.aggregate,
            "features": {"sr": f.sr, "n_fft": f.n_fft, "hop_length": f.hop_length, "n_mels": f.n_mels,
                         "n_frames": f.n_frames, "channel": self.bundle.channel},
            "created_at": m.get("created_at"),
            "n_train_clips": m.get("training", {}).get("n_clips"),
            "false_alarm_rate": m.get("validation", {}).get("false_alarm_rate"),
        }

    def detail(self) -> dict[str, Any]:
        """The summary plus the manifest (without the training file list: server paths)."""
        manifest = {k: v for k, v in self.bundle.manifest.items() if k not in ("training", "fitted")}
        training = {k: v for k, v in self.bundle.manifest.get("training", {}).items() if k not in ("files", "data_root")}
        return {**self.summary(), "manifest": {**manifest, "training": training}}


class ModelRegistry:
    """Name -> :class:`ModelEntry`; reads are lock-free, swaps take a lock."""

    def __init__(self, *, models_dir: Optional[Path], trained_dir: Path, default_model: Optional[str] = None):
        self.models_dir = Path(models_dir) if models_dir is not None else None
        self.trained_dir = Path(trained_dir)
        self._default = default_model
        self._entries: dict[str, ModelEntry] = {}
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the ``--models`` directory and every machine-trained bundle (start-up)."""
        entries: dict[str, ModelEntry] = {}
        if self.models_dir is not None:
            model = load_model(self.models_dir)
            for group, bundle in model.bundles.items():
                name = group_dirname(group)
                entries[name] = ModelEntry(name, bundle, "models-dir", group)
        self.trained_dir.mkdir(parents=True, exist_ok=True)
        for sub in sorted(self.trained_dir.iterdir()):
            if not sub.is_dir() or sub.name.startswith(".") or not NAME_RE.fullmatch(sub.name):
                continue
            try:
                entries[sub.name] = ModelEntry(sub.name, Bundle(sub), "trained", None)
            except BundleError as exc:
                log.warning("skipping trained model %s: %s", sub, exc)
        if self._default is not None and self._default not in entries:
            raise ParameterError(f"--default-model: expected one of {', '.join(sorted(entries)) or '(no models)'}, "
                                 f"got {self._default!r}")
        with self._lock:
            self._entries = entries
        log.info("loaded %d model(s): %s", len(entries), ", ".join(sorted(entries)) or "none")

    def put(self, entry: ModelEntry) -> None:
        """Add or replace one model (after a training job)."""
        with self._lock:
            entries = dict(self._entries)
            entries[entry.name] = entry
            self._entries = entries

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> Optional[ModelEntry]:
        return self._entries.get(name)

    def all(self) -> list[ModelEntry]:
        entries = self._entries
        return [entries[k] for k in sorted(entries)]

    @property
    def default(self) -> Optional[ModelEntry]:
        if self._default is not None:
            return self._entries.get(self._default)
        from_dir = [e for e in self._entries.values() if e.source == "models-dir"]
        return from_dir[0] if len(from_dir) == 1 else None

    def for_machine(self, machine: str, explicit: Optional[str] = None) -> Optional[ModelEntry]:
        """The model that scores ``machine`` (see the module docstring), or None."""
        entries = self._entries
        if explicit and explicit in entries:
            return entries[explicit]
        if machine in entries:
            return entries[machine]
        return self.default
