"""``earshot synth``: synthetic machine sounds with labelled faults (MIMII layout + manifest)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

DEFAULT_MACHINES = "fan,pump,valve,slider,bearing"


def _machines(text: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in text.split(",") if m.strip())


def register(app: typer.Typer, out, err) -> None:
    @app.command()
    def synth(
        out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to write (MIMII layout + manifest.csv), or the long wav with --long.")],
        machines: Annotated[str, typer.Option(help="Comma-separated machine types.")] = DEFAULT_MACHINES,
        ids: Annotated[int, typer.Option(help="Machine ids per type.")] = 2,
        normal: Annotated[int, typer.Option(help="Normal clips per id.")] = 100,
        abnormal: Annotated[int, typer.Option(help="Abnormal clips per id.")] = 30,
        snr_db: Annotated[float, typer.Option(help="Machine-to-background level (dB); MIMII used -6, 0, 6.")] = 0.0,
        duration_s: Annotated[float, typer.Option(help="Clip length (s).")] = 10.0,
        sr: Annotated[int, typer.Option(help="Sample rate (Hz).")] = 16000,
        seed: Annotated[int, typer.Option(help="Random seed: same seed, same bytes.")] = 0,
        domain_shift: Annotated[bool, typer.Option("--domain-shift", help="Add target-domain clips (other speed, load or background).")] = False,
        long: Annotated[Optional[float], typer.Option("--long", help="Write ONE long recording of this many seconds to OUT (a .wav path).")] = None,
        fault: Annotated[Optional[str], typer.Option(help="With --long: the fault type (default: the machine's first).")] = None,
        fault_at: Annotated[float, typer.Option(help="With --long: when the fault starts (s).")] = 60.0,
        fault_until: Annotated[Optional[float], typer.Option(help="With --long: when the fault stops (s); default: never.")] = None,
        severity: Annotated[float, typer.Option(help="With --long: fault severity in [0, 1].")] = 0.8,
        jobs: Annotated[int, typer.Option(help="Worker processes (-1: all cores); the bytes do not depend on it.")] = -1,
    ) -> None:
        """Synthetic machine sounds with labelled faults and known ground truth."""
        from earshot import synth as S  # deferred: the library loads when a verb runs (fast --help)

        if long is not None:
            kwargs = {} if fault is None else {"fault": fault}
            names = _machines(machines)
            truth = S.synthesize_long(out_dir, machine=names[0] if names else "fan", duration_s=long,
                                      fault_start_s=fault_at, fault_end_s=fault_until, severity=severity,
                                      snr_db=snr_db, sr=sr, seed=seed, **kwargs)
            out.print(f"wrote {out_dir} ({long:g} s, {truth['fault']} from {truth['fault_start_s']:g} s"
                      f"{'' if truth.get('fault_end_s') is None else ' to ' + format(truth['fault_end_s'], 'g') + ' s'}); "
                      f"ground truth in {out_dir}.json")
            return
        manifest = S.synthesize(out_dir, machines=_machines(machines), n_ids=ids, n_normal=normal,
                                n_abnormal=abnormal, snr_db=snr_db, duration_s=duration_s, sr=sr, seed=seed,
                                domain_shift=domain_shift, n_jobs=jobs)
        out.print(f"wrote {out_dir} (manifest: {manifest})")
