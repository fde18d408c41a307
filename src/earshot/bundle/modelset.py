"""Model sets: one bundle per data group (machine, machine/id), with an ``index.json``."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from earshot import __version__
from earshot.bundle.format import FORMAT_VERSION, INDEX, MANIFEST, check_format, read_json
from earshot.bundle.scorer import Bundle
from earshot.datasets import group_name, parse_path
from earshot.errors import AudioError, BundleError, ParameterError

__all__ = ["ModelSet", "load_model", "group_dirname", "write_index"]

log = logging.getLogger(__name__)


def group_dirname(group: str) -> str:
    """A directory name for a group name (``fan/id_00`` -> ``fan_id_00``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", group).strip("._") or "group"


def write_index(directory: Path, groups: Mapping[str, str], *, group_by: str, extra: dict[str, Any] | None = None) -> None:
    """Write a model set's ``index.json`` (group name -> bundle sub-directory)."""
    index = {
        "format_version": FORMAT_VERSION,
        "kind": "model-set",
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"earshot": __version__},
        "group_by": group_by,
        "groups": dict(sorted(groups.items())),
        **(extra or {}),
    }
    with open(Path(directory) / INDEX, "w", encoding="utf-8") as fh:
        json.dump(index, fh, indent=2)


class ModelSet:
    """One bundle per group, as written by ``earshot train``.

    A single bundle directory is read as a model set of one group.

    Attributes
    ----------
    path : Path
    group_by : str
        ``id``, ``machine`` or ``none``: how the training data was grouped.
    bundles : dict[str, Bundle]
        Group name -> loaded bundle.
    """

    def __init__(self, path: Path, group_by: str, bundles: dict[str, Bundle], index: dict[str, Any] | None = None):
        self.path = path
        self.group_by = group_by
        self.bundles = bundles
        self.index = index or {}

    @property
    def groups(self) -> list[str]:
        return sorted(self.bundles)

    def parsed_group(self, path: str | os.PathLike, *, with_id: bool = False) -> str | None:
        """The group the layout parsing of training gives ``path`` (None when it cannot tell).

        With ``with_id``, only files whose path names a machine id (DCASE, MIMII layouts) are
        parsed: for a model of one group, other folder names say nothing reliable.
        """
        if self.group_by == "none":
            return None
        parsed = parse_path(Path(path))
        if parsed is None or (with_id and parsed.id is None):
            return None
        try:
            return group_name(parsed, self.group_by)
        except Exception:  # an unparseable path cannot be told apart from a bad one here
            return None

    def group_of(self, path: str | os.PathLike) -> str | None:
        """The group a file belongs to by the layout parsing used in training, or None.

        A model of one group takes every file except one whose parsed group is another.
        """
        if len(self.bundles) == 1:
            only = next(iter(self.bundles))
            name = self.parsed_group(path, with_id=True)
            return only if name is None or name == only or only == "all" else None
        name = self.parsed_group(path)
        return name if name in self.bundles else None

    def bundle_for(self, path: str | os.PathLike, group: str | None = None) -> tuple[str, Bundle]:
        """The (group, bundle) that scores ``path``; ``group`` overrides the layout parsing.

        Raises
        ------
        ParameterError
            The file's group cannot be told, or its parsed group (e.g. ``fan/id_00``) is not
            one of the model's (the same for a model of one group and a model set).
        """
        if not Path(path).exists():
            raise AudioError(f"{path}: no such file")
        if group is not None:
            if group not in self.bundles:
                raise ParameterError(f"group: expected one of {', '.join(self.groups)}, got {group!r}")
            return group, self.bundles[group]
        name = self.group_of(path)
        if name is None:
            parsed = self.parsed_group(path, with_id=True)  # a folder name alone says too little
            what = (f"is a {parsed!r} clip by its path, and the model has no such group" if parsed is not None
                    else "cannot tell which group this file belongs to")
            raise ParameterError(f"{path}: {what} (the model has groups {', '.join(self.groups)}); "
                                 "pass --group NAME to score it with one of them")
        return name, self.bundles[name]

    def score_files(self, paths: Sequence[str | os.PathLike], *, group: str | None = None,
                    on_file: Callable[[], None] | None = None) -> list[dict[str, Any]]:
        """Score audio files, each with its group's bundle; one row per file, in the order given.

        The files of one group go through :meth:`Bundle.score_files` together.

        Parameters
        ----------
        paths : sequence of path-like
        group : str, optional
            Score every file with this group's bundle instead of routing by the layout.
        on_file : callable, optional
            Called once per file once it is scored (for progress bars).

        Returns
        -------
        list of dict
            ``path, group, score, threshold, is_anomalous``.
        """
        routed: dict[str, list[int]] = {}
        for i, p in enumerate(paths):
            name, _ = self.bundle_for(p, group)
            routed.setdefault(name, []).append(i)
        rows: list[dict[str, Any] | None] = [None] * len(paths)
        for name, idx in routed.items():
            bundle = self.bundles[name]
            scores = bundle.score_files([paths[i] for i in idx], on_file=on_file)
            for i, s in zip(idx, scores):
                rows[i] = {"path": str(paths[i]), "group": name, **bundle.verdict(s)}
        return rows  # type: ignore[return-value]


def load_model(path: str | os.PathLike, *, precision: str | None = None, threads: int = 0) -> ModelSet:
    """Load a model set directory (``index.json``) or a single bundle (``manifest.json``).

    ``precision`` chooses each bundle's scoring graph (see :class:`Bundle`: ``auto``, the
    default, runs a stored int8 graph; ``float32`` always ``model.onnx``); ``threads`` the
    intra-op threads of each bundle's scoring session (0: onnxruntime's default).

    Raises
    ------
    BundleError
        Missing directory, neither file present, unknown format version, incomplete bundle.
    """
    path = Path(path)
    if not path.exists():
        raise BundleError(f"{path}: no such model directory")
    if not path.is_dir():
        raise BundleError(f"{path}: expected a model directory, got a file")
    if (path / INDEX).exists():
        index = read_json(path / INDEX)
        kind = index.get("kind", "model-set")
        if kind != "model-set":
            how = "; give the model folder it came from, or run it with onnxruntime" if "export" in str(kind) else ""
            raise BundleError(f"{path} is an export folder (kind {kind}){how}" if how else
                              f"{path / INDEX}: not an earshot model set (kind {kind!r})")
        check_format(index, path / INDEX)
        groups = index.get("groups")
        if not isinstance(groups, dict) or not groups:
            raise BundleError(f"{path / INDEX}: lists no groups")
        bundles = {name: Bundle(path / sub, precision=precision, threads=threads) for name, sub in groups.items()}
        return ModelSet(path, str(index.get("group_by", "id")), bundles, index)
    if (path / MANIFEST).exists():
        bundle = Bundle(path, precision=precision, threads=threads)
        group = bundle.group or "all"
        group_by = bundle.manifest.get("training", {}).get("group_by", "none")
        return ModelSet(path, group_by, {group: bundle})
    raise BundleError(f"{path}: not an earshot model (no {INDEX} or {MANIFEST})")
