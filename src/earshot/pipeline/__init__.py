"""Library workflows that join the layers for the command line and the service: extract
features (:mod:`.extract`), train (:mod:`.train`), score and evaluate (:mod:`.evaluate`),
batch scoring to a file (:mod:`.batch`), cross-validation (:mod:`.crossval`), comparison of
models (:mod:`.compare`), detect on a long recording (:mod:`.detect`) and the demo (:mod:`.demo`).

The common entry points are re-exported here.
"""

from __future__ import annotations

from earshot.pipeline.evaluate import evaluate, evaluation_records, score_files
from earshot.pipeline.extract import GROUP_BYS, LONG_RECORDING_S, Progress, extract_store, long_recording_windows
from earshot.pipeline.train import TrainResult, apply_labels, record_metadata, train

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
