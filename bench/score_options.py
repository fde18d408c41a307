"""AUC of the scoring options that bench/score.py times: float32, the stored dynamic-int8 graph
(the default where training stored it), and a window hop of 2 (``window_hop=2``: every second
window scored), on the same splits.

    OMP_NUM_THREADS=1 .venv/bin/python bench/score_options.py [--only mimii-fan] [--repeats 5]

Groups and splits are bench/real.py's (its real sets under ``--data`` whose name contains
``--only``, plus its small synthetic set unless ``--no-synth``). Per split a dense-ae bundle
is trained with ``earshot.pipeline.train`` on the training normals (the default features and
channel reading), then its test clips are scored three ways: the bundle's float32 graph
(``precision="float32"``); its default graph (``model.int8.onnx``, int8 weights of the
MatMul/Gemm nodes, where training stored it: the float32 graph otherwise, counted); and a
second bundle trained on the same clips with ``window_hop=2``, scored with its default graph
(the int8 graph where stored). Prints ROC AUC mean ± std per group, how many splits stored the
int8 graph and the largest relative clip-score difference int8 vs float32 on the test clips.
No assertions.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real import DEFAULT_DATA, real_groups, split, synth_groups  # noqa: E402

from earshot.bundle import load_model  # noqa: E402
from earshot.evaluation import roc_auc  # noqa: E402
from earshot.pipeline import train  # noqa: E402

WAYS = ("float32", "int8", "window_hop 2")


def scores_three_ways(model_dir: Path, hop2_dir: Path, files: list[Path]) -> tuple[dict[str, np.ndarray], bool]:
    f32 = next(iter(load_model(model_dir, precision="float32").bundles.values()))
    default = next(iter(load_model(model_dir).bundles.values()))
    hop2 = next(iter(load_model(hop2_dir).bundles.values()))
    X = [f32.extract(p) for p in files]
    return {
        "float32": f32.score_samples(X),
        "int8": default.score_samples(X),
        "window_hop 2": hop2.score_samples(X),
    }, default.graph != "model.onnx"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--only", default="mimii-fan", help="real sets whose name contains this")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-synth", action="store_true")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "earshot-bench-real")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    groups = [g for g in real_groups(args.data)[0] if args.only in g.name]
    if not args.no_synth:
        groups += synth_groups(args.cache)
    print(f"{'group':<28}" + "".join(f"{w:>22}" for w in WAYS))
    for g in groups:
        auc: dict[str, list[float]] = {w: [] for w in WAYS}
        stored, worst = 0, 0.0
        for seed in range(args.repeats):
            tr, te = split(g, seed)
            with tempfile.TemporaryDirectory(prefix="earshot-options-") as tmp:
                tmp = Path(tmp)
                (tmp / "data" / "normal").mkdir(parents=True)
                for k, i in enumerate(tr):
                    os.symlink(g.clips[i].path, tmp / "data" / "normal" / f"{k:05d}{g.clips[i].path.suffix}")
                train(tmp / "data", tmp / "model", model="dense-ae")
                train(tmp / "data", tmp / "hop2", model="dense-ae", model_params={"window_hop": 2})
                y = np.array([g.clips[i].label for i in te])
                scores, has_int8 = scores_three_ways(tmp / "model", tmp / "hop2", [g.clips[i].path for i in te])
                stored += has_int8
                worst = max(worst, float(np.max(np.abs(scores["int8"] - scores["float32"]) / np.abs(scores["float32"]))))
                for way, s in scores.items():
                    auc[way].append(roc_auc(y, s))
        print(f"{g.name:<28}" + "".join(f"{np.mean(v):>14.3f} ± {np.std(v):.3f}" for v in auc.values())
              + f"   int8 stored {stored}/{args.repeats}, max rel diff {worst:.1e}", flush=True)


if __name__ == "__main__":
    main()
