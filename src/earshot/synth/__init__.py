"""Synthetic machine sounds with known faults: data with ground truth, no download needed.

Physically motivated sound models of five machine types (fan, pump, valve, slide rail,
motor bearing), each machine id with its own parameters, factory background at a chosen SNR,
and faults with a severity in [0, 1]. Used by ``earshot demo``, the tests and the
benchmarks. See ``docs/synth.md``.

- :func:`synthesize` writes a data set in the MIMII layout with a ``manifest.csv``;
- :func:`synthesize_long` writes one long recording whose fault starts at a known time;
- :func:`render_clip` renders one clip as an array;
- :data:`MACHINES` maps machine types to sound models, :data:`FAULTS` to their fault types.

Imports numpy, scipy and soundfile only.
"""

from __future__ import annotations

from earshot.synth.clip import DOMAINS, render_clip
from earshot.synth.faults import FAULT_TYPES
from earshot.synth.long import render_long, synthesize_long
from earshot.synth.machines import FAULTS, MACHINES
from earshot.synth.writer import MANIFEST_COLUMNS, synthesize

__all__ = [
    "DOMAINS",
    "FAULTS",
    "FAULT_TYPES",
    "MACHINES",
    "MANIFEST_COLUMNS",
    "render_clip",
    "render_long",
    "synthesize",
    "synthesize_long",
]
