"""Model bundles: save a fitted detector as one self-describing directory, load and score it.

Loading and scoring need numpy, scipy, soundfile and onnxruntime only; :func:`save_bundle`
imports torch (to export the graph and the weights) when it is called. :func:`export_model`
writes ONNX files and contracts for the edge (the ``onnx`` package, not torch, when called).
"""

from earshot._util.lazy import lazy_exports
from earshot.bundle.format import FORMAT_VERSION
from earshot.bundle.modelset import ModelSet, group_dirname, load_model, write_index
from earshot.bundle.scorer import Bundle

#: Names loaded when first used (PEP 562), so that scoring (which loads and scores only) does not
#: import the saving and exporting modules: name -> its module under earshot.bundle.
_LAZY = {"export_model": "export", "load_detector": "save", "save_bundle": "save"}

lazy_exports(__name__, _LAZY)


__all__ = ["FORMAT_VERSION", "Bundle", "ModelSet", "load_model", "save_bundle", "load_detector", "group_dirname", "write_index",
           "export_model"]
