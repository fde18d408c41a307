"""Library workflows that join the layers for the command line and the service: extract
features (:mod:`.extract`), train (:mod:`.train`), score and evaluate (:mod:`.evaluate`),
batch scoring to a file (:mod:`.batch`), cross-validation (:mod:`.crossval`), comparison of
models (:mod:`.compare`), detect on a long recording (:mod:`.detect`) and the demo (:mod:`.demo`).

The common entry points are re-exported here, each loaded when first used (PEP 562): importing
one workflow module (``earshot score`` imports :mod:`.batch`) does not load the others.
"""

from __future__ import annotations

from earshot._util.lazy import lazy_exports

#: Re-exported name -> the module under earshot.pipeline that defines it.
_HOMES = {
    **dict.fromkeys(("evaluate", "evaluation_records", "score_files"), "evaluate"),
    **dict.fromkeys(("GROUP_BYS", "LONG_RECORDING_S", "Progress", "extract_store", "long_recording_windows"), "extract"),
    **dict.fromkeys(("TrainResult", "apply_labels", "record_metadata", "train"), "train"),
}

lazy_exports(__name__, _HOMES)


__all__ = [
    "GROUP_BYS",
    "LONG_RECORDING_S",
    "Progress",
    "TrainResult",
    "apply_labels",
    "evaluate",
    "evaluation_records",
    "extract_store",
    "long_recording_windows",
    "record_metadata",
    "score_files",
    "train",
]
