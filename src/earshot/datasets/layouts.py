"""Classify one audio file by its own path (file name and the folders above it).

Each file is read on its own, so a folder that mixes layouts works. Layouts, tried in order:

``dcase2021``
    ``<machine>/{train,test}/section_XX_{source,target}_{train,test}_{normal,anomaly}_NNNN[_attrs]``
    ``.wav``;
    also the unlabelled evaluation names ``section_XX_NNNN.wav`` (split "test", label None).
``dcase2020``
    ``<machine>/{train,test}/{normal,anomaly}_id_XX_NNNNNNNN.wav``.
``mimii``
    ``[<snr>_<machine>/]<machine>/id_XX/{normal,abnormal}/*.wav`` (split None).
``generic``
    ``<machine>/{normal,abnormal,anomaly}/*.wav`` (id None, split None).
``unlabelled``
    anything else: machine is the folder holding the file, label None.

A folder named ``train`` or ``test`` (DCASE 2021 also has ``source_test``/``target_test``)
holding the file, or holding its label folder, gives the split, and the machine is the folder
above it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from earshot.datasets.records import Attributes

__all__ = ["AUDIO_EXTENSIONS", "ParsedPath", "is_audio_file", "is_hidden", "parse_path"]

#: File extensions taken as audio (compared case-insensitively).
AUDIO_EXTENSIONS = (".wav", ".flac")
#: Key under which an attribute token without a partner is kept.
EXTRA_KEY = "extra"
#: Name used when no folder name is available (a file at the file-system root).
UNKNOWN_MACHINE = "unknown"

_DCASE2021 = re.compile(
    r"^section_(?P<section>\d+)"
    r"(?:_(?P<domain>source|target))?"
    r"(?:_(?P<split>train|test))?"
    r"(?:_(?P<condition>normal|anomaly))?"
    r"_(?P<number>\d+)"
    r"(?:_(?P<attrs>.+))?$"
)
_DCASE2020 = re.compile(r"^(?P<condition>normal|anomaly)_(?P<id>id_\d+)_(?P<number>\d+)$")
_ID_FOLDER = re.compile(r"^id_\d+$")
_SPLIT_FOLDER = re.compile(r"^(?:(?:source|target)_)?(?P<split>train|test)$")
_LABEL_FOLDERS = {"normal": 0, "abnormal": 1, "anomaly": 1}
_CONDITIONS = {"normal": 0, "anomaly": 1}


@dataclass(frozen=True)
class ParsedPath:
    """What the path of one audio file says about it.

    Attributes
    ----------
    layout : str
        ``"dcase2021"``, ``"dcase2020"``, ``"mimii"``, ``"generic"`` or ``"unlabelled"``.
    machine, id, domain, split, label, attributes
        As in :class:`earshot.datasets.Record`.
    """

    layout: str
    machine: str
    id: str | None = None
    domain: str = "source"
    split: str | None = None
    label: int | None = None
    attributes: Attributes = field(default_factory=Attributes)


def is_hidden(name: str) -> bool:
    """True for a hidden file or folder name (starting with a dot)."""
    return name.startswith(".")


def is_audio_file(path: str | os.PathLike) -> bool:
    """True when the path has an audio extension (``.wav``/``.flac``, any case), not hidden."""
    path = Path(path)
    return not is_hidden(path.name) and path.suffix.lower() in AUDIO_EXTENSIONS


def parse_path(path: str | os.PathLike, root: str | os.PathLike | None = None) -> ParsedPath | None:
    """Classify one audio file by its path.

    Parameters
    ----------
    path : str or path-like
        The audio file; a relative path is taken relative to ``root`` (or the working folder).
        The file is not opened and need not exist.
    root : str or path-like, optional
        The data folder being read. Relative paths are resolved against it, and a folder
        below it whose name starts with a dot makes the file hidden.

    Returns
    -------
    ParsedPath or None
        None when the file is not audio (extension other than ``.wav``/``.flac``) or is hidden.

    Examples
    --------
    >>> p = parse_path("ToyCar/train/section_00_source_train_normal_0362_car_C2_spd_31V_mic_1.wav")
    >>> p.machine, p.id, p.split, p.label, dict(p.attributes)
    ('ToyCar', 'section_00', 'train', 0, {'car': 'C2', 'spd': '31V', 'mic': '1'})
    """
    path = _absolute(path, root)
    if not is_audio_file(path) or _under_hidden_folder(path, root):
        return None
    return classify_path(path)


def classify_path(path: str | os.PathLike) -> ParsedPath:
    """Classify a file by its path whatever its extension (used for manifest rows)."""
    path = Path(os.path.abspath(path))
    return (
        _parse_dcase2021(path)
        or _parse_dcase2020(path)
        or _parse_label_folder(path)
        or _parse_unlabelled(path)
    )


def parse_attributes(text: str | None) -> Attributes:
    """Parse DCASE file-name attributes: ``"car_C2_spd_31V"`` -> ``{"car": "C2", "spd": "31V"}``.

    Tokens are paired in order as key, value. A last token without a partner is kept under
    ``"extra"`` (``"extra_2"``, ... if that key is taken).
    """
    if not text:
        return Attributes()
    tokens = text.split("_")
    pairs = dict(zip(tokens[0::2], tokens[1::2]))
    if len(tokens) % 2:
        key, n = EXTRA_KEY, 1
        while key in pairs:
            n += 1
            key = f"{EXTRA_KEY}_{n}"
        pairs[key] = tokens[-1]
    return Attributes(pairs)


def _absolute(path: str | os.PathLike, root: str | os.PathLike | None) -> Path:
    path = Path(path)
    if root is not None and not path.is_absolute():
        path = Path(root) / path
    return Path(os.path.abspath(path))


def _under_hidden_folder(path: Path, root: str | os.PathLike | None) -> bool:
    if root is None:
        return False
    try:
        folders = path.parent.relative_to(os.path.abspath(root)).parts
    except ValueError:
        return False
    return any(is_hidden(name) for name in folders)


def _name(folder: Path) -> str:
    return folder.name or UNKNOWN_MACHINE


def _split_folder(folder: Path) -> tuple[str, str | None]:
    """Machine and split for a file (or label folder) held by ``folder``.

    A ``train``/``test`` folder gives the split and the machine is the folder above it.
    """
    match = _SPLIT_FOLDER.fullmatch(folder.name)
    if match:
        return _name(folder.parent), match["split"]
    return _name(folder), None


def _parse_dcase2021(path: Path) -> ParsedPath | None:
    match = _DCASE2021.fullmatch(path.stem)
    if match is None:
        return None
    machine, folder_split = _split_folder(path.parent)
    condition = match["condition"]
    return ParsedPath(
        layout="dcase2021",
        machine=machine,
        id=f"section_{match['section']}",
        domain=match["domain"] or "source",
        split=match["split"] or ("test" if condition is None else folder_split),
        label=None if condition is None else _CONDITIONS[condition],
        attributes=parse_attributes(match["attrs"]),
    )


def _parse_dcase2020(path: Path) -> ParsedPath | None:
    match = _DCASE2020.fullmatch(path.stem)
    if match is None:
        return None
    machine, split = _split_folder(path.parent)
    return ParsedPath(
        layout="dcase2020",
        machine=machine,
        id=match["id"],
        split=split,
        label=_CONDITIONS[match["condition"]],
    )


def _parse_label_folder(path: Path) -> ParsedPath | None:
    """MIMII (``<machine>/id_XX/<label>/``) or generic (``<machine>/<label>/``) layout."""
    label = _LABEL_FOLDERS.get(path.parent.name.lower())
    if label is None:
        return None
    holder = path.parent.parent
    if _ID_FOLDER.fullmatch(holder.name):
        return ParsedPath(layout="mimii", machine=_name(holder.parent), id=holder.name, label=label)
    machine, split = _split_folder(holder)
    return ParsedPath(layout="generic", machine=machine, split=split, label=label)


def _parse_unlabelled(path: Path) -> ParsedPath:
    machine, split = _split_folder(path.parent)
    return ParsedPath(layout="unlabelled", machine=machine, split=split)
