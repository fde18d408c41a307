"""Options and arguments that several verbs declare alike, declared once.

Each alias is a type for a verb's parameter (``n_mels: NMels = 128``); the default stays at the
verb, beside the other parameters. typer and the standard library only (``earshot --help`` stays
fast).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = [
    "Channel", "DataArg", "Device", "EventGroup", "HopLength", "MergeGapS", "MinDurationS", "ModelDir", "NFft", "NMels",
    "OptionalModelDir", "Sensitivity", "ThresholdOverride", "WindowS",
]

_MODEL_DIR = typer.Argument(metavar="MODEL", help="Model directory written by `earshot train`.")

# ---------------------------------------------------------------------- what to read
#: MODEL: a model directory (score, detect, export).
ModelDir = Annotated[Path, _MODEL_DIR]
#: MODEL, optional (listen: ``--list-devices`` needs none).
OptionalModelDir = Annotated[Optional[Path], _MODEL_DIR]
#: DATA: a data set in any layout (train, explore).
DataArg = Annotated[Path, typer.Argument(metavar="DATA", help="Data folder (MIMII, DCASE, normal/abnormal folders), a manifest CSV, or a wav.")]

# ---------------------------------------------------------------------- features (train, cv)
NMels = Annotated[int, typer.Option(help="Mel bands.")]
NFft = Annotated[int, typer.Option(help="FFT length (samples).")]
HopLength = Annotated[int, typer.Option(help="Hop between frames (samples).")]
Channel = Annotated[Optional[int], typer.Option(help="Channel to use (0-based); default: mean of all channels.")]
#: Where torch models (dense-ae, lstm-ae, cnn) train (train, cv); the bundle is the same either way.
Device = Annotated[str, typer.Option(help="Where torch models train: auto (CUDA when torch sees a GPU, else the CPU) | cpu | cuda.")]

# ---------------------------------------------------------------------- windows and events (detect, listen)
WindowS = Annotated[Optional[float], typer.Option(help="Window length (s); each window is scored like a clip. Default: 1 s, or the shortest window the model can score if longer.")]
Sensitivity = Annotated[Optional[float], typer.Option(help="S > 0: divide the margin between the normal level and the model's threshold by S (2: more alarms, 0.5: fewer).")]
ThresholdOverride = Annotated[Optional[float], typer.Option(help="Use this threshold instead of the model's.")]
MinDurationS = Annotated[Optional[float], typer.Option(help="Shortest event (s); default: three times --window-s.")]
MergeGapS = Annotated[Optional[float], typer.Option(help="Merge events closer than this (s); default: --window-s.")]
EventGroup = Annotated[Optional[str], typer.Option(help="With a model set: the group's model to use.")]
