"""One clip of a data set: :class:`Record`, and how records are grouped.

A record says where a clip lies and what is known about it: the machine it was recorded on,
the machine id or DCASE section, the domain, the split and the label. It never holds audio.
Label 1 means anomaly, 0 normal and ``None`` unknown (an unlabelled clip).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from earshot.errors import ParameterError

__all__ = ["Attributes", "Record", "group_name", "GROUP_BY", "SPLITS", "LABELS"]

#: Accepted values of ``group_by``.
GROUP_BY = ("id", "machine", "none")
#: Accepted values of :attr:`Record.split` (besides ``None``).
SPLITS = ("train", "test")
#: Accepted values of :attr:`Record.label` (besides ``None``): 0 normal, 1 anomaly.
LABELS = (0, 1)


class Attributes(Mapping[str, str]):
    """A read-only, hashable ``str -> str`` mapping (the attributes of a clip).

    Parameters
    ----------
    items : Mapping or iterable of (key, value) pairs, optional
        Keys and values are turned into strings.

    Examples
    --------
    >>> a = Attributes({"spd": "31V", "mic": 1})
    >>> a["mic"], a == {"spd": "31V", "mic": "1"}
    ('1', True)
    """

    __slots__ = ("_data",)

    def __init__(self, items: Mapping[Any, Any] | Iterable[tuple[Any, Any]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._data: dict[str, str] = {str(k): str(v) for k, v in pairs}

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._data == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return f"Attributes({self._data!r})"


def _check_choice(name: str, value: Any, allowed: tuple) -> None:
    if value is not None and value not in allowed:
        raise ParameterError(f"{name} must be one of {allowed} or None; got {value!r}")


def _as_label(value: Any) -> int | None:
    """Turn a label given as bool / numpy integer into a plain int; check it is 0, 1 or None."""
    if value is None:
        return None
    try:
        label = int(value)
    except (TypeError, ValueError):
        label = None
    if label is None or label != value or label not in LABELS:
        raise ParameterError(f"label must be 0 (normal), 1 (anomaly) or None; got {value!r}")
    return label


@dataclass(frozen=True)
class Record:
    """One audio clip and what is known about it.

    Parameters
    ----------
    path : pathlib.Path
        Where the clip lies (discovery stores absolute paths). A ``str`` is turned into a Path.
    machine : str
        Machine type or name, e.g. ``"fan"`` or ``"ToyCar"``.
    id : str or None
        Machine id (``"id_00"``) or DCASE section (``"section_00"``); None when unknown.
    domain : str
        ``"source"`` (default) or ``"target"`` (DCASE 2021+ domain shift).
    split : {"train", "test"} or None
        None when the data does not say; see :func:`earshot.datasets.assign_default_split`.
    label : {0, 1} or None
        1 anomaly, 0 normal, None unknown.
    attributes : Mapping[str, str]
        Extra facts, e.g. DCASE file-name attributes (``{"spd": "31V"}``) or extra manifest
        columns. Stored as a read-only, hashable :class:`Attributes`.
    """

    path: Path
    machine: str
    id: str | None = None
    domain: str = "source"
    split: str | None = None
    label: int | None = None
    attributes: Mapping[str, str] = field(default_factory=Attributes)

    def __post_init__(self) -> None:
        _check_choice("split", self.split, SPLITS)
        object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "label", _as_label(self.label))
        if not isinstance(self.attributes, Attributes):
            object.__setattr__(self, "attributes", Attributes(self.attributes))

    def group(self, group_by: str = "id") -> str:
        """Name of the group this record belongs to; see :func:`group_name`."""
        return group_name(self, group_by)


def group_name(record: Record, group_by: str = "id") -> str:
    """Name of the group a record belongs to.

    Parameters
    ----------
    record : Record
    group_by : {"id", "machine", "none"}
        ``"id"``: ``"<machine>/<id>"`` (just ``"<machine>"`` when the id is unknown);
        ``"machine"``: the machine; ``"none"``: ``"all"`` (one group).

    Returns
    -------
    str

    Raises
    ------
    ParameterError
        If ``group_by`` is not one of the accepted values.
    """
    if group_by == "id":
        return record.machine if record.id is None else f"{record.machine}/{record.id}"
    if group_by == "machine":
        return record.machine
    if group_by == "none":
        return "all"
    raise ParameterError(f"group_by must be one of {GROUP_BY}; got {group_by!r}")
