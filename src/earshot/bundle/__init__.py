"""Model bundles: save a fitted detector as one self-describing directory, load and score it.

Loading and scoring need numpy, scipy, soundfile and onnxruntime only; :func:`save_bundle`
imports torch (to export the graph and the weights) when it is called. :func:`export_model`
writes ONNX files and contracts for the edge (the ``onnx`` package, not torch, when called).
"""

from earshot.bundle.export import export_model
from earshot.bundle.format import FORMAT_VERSION
from earshot.bundle.modelset import ModelSet, group_dirname, load_model, write_index
from earshot.bundle.save import load_detector, save_bundle
from earshot.bundle.scorer import Bundle


__all__ = ["FORMAT_VERSION", "Bundle", "ModelSet", "load_model", "save_bundle", "load_detector", "group_dirname", "write_index",
           "export_model"]
