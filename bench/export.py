"""Edge export: the exported waveform graph against earshot's own scoring, in the same run.

    .venv/bin/python bench/export.py [--clips 200] [--seconds 10] [--model dense-ae]

Trains a bundle on synthetic clips (``bench/score.py``'s hum), exports it with
``earshot.bundle.export_model`` (``--waveform``: the log-mel front end inside the ONNX graph),
then scores the same decoded 16 kHz clips, on ONE thread each:

1. the exported graph (onnxruntime only: what an edge device runs), one clip per call and in
   batches of 8;
2. the same graph with the front end's fallback DFT form (``waveform_model(bundle,
   dft="conv")``: one dense DFT Conv instead of the factorised DFT ``earshot export`` writes
   where ``n_fft`` and ``hop_length`` allow it), 1 and 8 clips per call;
3. earshot's path (``log_mel`` with numpy/scipy + the bundle's ONNX graph), one clip per call;

and prints clips/s of each, the ratio, and the largest difference of the clip scores. No
assertions: figures only.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from score import SR, _write_clips  # noqa: E402  (the same synthetic clips as bench/score.py)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--model", default="dense-ae")
    args = ap.parse_args(argv)

    import onnxruntime as ort
    import soundfile as sf

    from earshot.bundle import export_model, load_model
    from earshot.bundle.export import waveform_model
    from earshot.features.mel import log_mel
    from earshot.pipeline import train

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _write_clips(tmp / "train" / "normal", 40, seconds=args.seconds, seed=1)
        paths = _write_clips(tmp / "score", args.clips, seconds=args.seconds, seed=2)
        params = {"epochs": 2} if args.model in ("dense-ae", "lstm-ae") else {}
        train(tmp / "train", tmp / "model", model=args.model, model_params=params)
        t0 = time.perf_counter()
        result = export_model(tmp / "model", tmp / "edge")
        check = next(iter(result.groups.values()))["verification"]
        print(f"export ({args.model}, with its check): {time.perf_counter() - t0:.2f} s; check: log-mel within "
              f"{check['logmel_max_abs_diff_db']:.1e} dB, scores {check['score_max_abs_diff']:.1e}")
        bundle = next(iter(load_model(tmp / "model").bundles.values()))
        bundle.use_session(bundle.new_session(threads=1))
        onnx_file = next((tmp / "edge").glob("*.onnx"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        edge = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        conv = ort.InferenceSession(waveform_model(bundle, dft="conv").SerializeToString(), options,
                                    providers=["CPUExecutionProvider"])
        form = re.search(r"log-mel \((.*?)\) ->", edge.get_modelmeta().description)
        print(f"exported front end: {form.group(1) if form else '?'}")
        name = edge.get_inputs()[0].name
        clips = [sf.read(p, dtype="float32")[0] for p in paths]

        def run_edge(batch: int, session=edge) -> np.ndarray:
            out = []
            for i in range(0, len(clips), batch):
                x = np.stack(clips[i : i + batch])
                out.append(session.run(["score"], {name: x})[0])
            return np.concatenate(out)

        def run_earshot() -> np.ndarray:
            return np.array([bundle.score_samples([log_mel(y, bundle.features)])[0] for y in clips])

        run_edge(1)
        run_edge(1, conv)
        run_earshot()  # warm-up
        figures = {}
        for label, fn in (("exported graph, 1 clip per call", lambda: run_edge(1)),
                          ("exported graph, 8 clips per call", lambda: run_edge(8)),
                          ("dense-Conv DFT (fallback), 1 clip per call", lambda: run_edge(1, conv)),
                          ("dense-Conv DFT (fallback), 8 clips per call", lambda: run_edge(8, conv)),
                          ("earshot log_mel + bundle ONNX (reference)", run_earshot)):
            t = time.perf_counter()
            scores = fn()
            dt = time.perf_counter() - t
            figures[label] = (len(clips) / dt, scores)
            print(f"{label:44s}: {len(clips) / dt:8.1f} clips/s  ({args.seconds:g} s clips, one thread)")
        ref = figures["earshot log_mel + bundle ONNX (reference)"]
        edge1 = figures["exported graph, 1 clip per call"]
        print(f"ratio exported / earshot (1 clip per call)    : {edge1[0] / ref[0]:8.2f} x")
        print(f"ratio exported / dense Conv (1 clip per call) : "
              f"{edge1[0] / figures['dense-Conv DFT (fallback), 1 clip per call'][0]:8.2f} x")
        print(f"max |score difference|                        : {np.max(np.abs(edge1[1] - ref[1])):.2e} "
              f"(threshold {bundle.threshold_:.4g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
