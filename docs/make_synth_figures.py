"""Render the spectrogram pictures of docs/synth.md: docs/img/synth_<machine>.png.

One figure per machine type: a normal clip and each fault at high severity, as log-mel
spectrograms (same machine, same random stream, so the panels differ only by the fault), and
their average spectra on a log-frequency axis (where low-frequency faults show).

Run from the repository root::

    .venv/bin/python docs/make_synth_figures.py [--duration 5] [--snr 6]

Needs the dev extras (matplotlib, librosa).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import librosa
import librosa.display
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.signal import welch  # noqa: E402

from earshot.synth import FAULTS, render_clip  # noqa: E402

SR = 16000
N_FFT, HOP, N_MELS = 1024, 256, 128


def log_mel(y: np.ndarray) -> np.ndarray:
    S = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS,
                                       power=2.0)
    return librosa.power_to_db(S, ref=1.0, amin=1e-10)


def figure(machine: str, out: Path, *, duration_s: float, snr_db: float, severity: float,
           machine_id: int = 0, seed: int = 0) -> Path:
    panels = [(None, 0.0)] + [(f, severity) for f in FAULTS[machine]]
    clips, specs = [], []
    for fault, sev in panels:
        y = render_clip(machine, machine_id=machine_id, fault=fault, severity=sev,
                        duration_s=duration_s, sr=SR, snr_db=snr_db,
                        rng=np.random.default_rng(seed), seed=seed)
        clips.append(y)
        specs.append(log_mel(y))
    vmax = max(float(s.max()) for s in specs)
    vmin = vmax - 80.0
    n = len(panels)
    fig = plt.figure(figsize=(10, 2.5 * n + 3.2), constrained_layout=True)
    grid = fig.add_gridspec(n + 1, 1, height_ratios=[1.0] * n + [1.25])
    axes = [fig.add_subplot(grid[i]) for i in range(n)]
    for ax, (fault, sev), S in zip(axes, panels, specs):
        img = librosa.display.specshow(S, sr=SR, hop_length=HOP, x_axis="time", y_axis="mel",
                                       fmax=SR / 2, cmap="magma", vmin=vmin, vmax=vmax, ax=ax)
        title = "normal" if fault is None else f"{fault} (severity {sev:g})"
        ax.set_title(f"{machine} id_{machine_id:02d}: {title}", fontsize=10, loc="left")
        ax.set_ylabel("Hz")
        ax.set_xlabel("time (s)" if ax is axes[-1] else "")
        fig.colorbar(img, ax=ax, format="%+.0f dB", pad=0.01)
    # average spectra: where each fault adds or moves energy (log frequency axis)
    ax = fig.add_subplot(grid[n])
    for (fault, sev), y in zip(panels, clips):
        f, p = welch(y, fs=SR, nperseg=8192)
        ax.semilogx(f[1:], 10 * np.log10(p[1:] + 1e-20), lw=0.9 if fault else 1.4,
                    color="k" if fault is None else None, label=fault or "normal", alpha=0.85)
    ax.set_xlim(10, SR / 2)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("power (dB/Hz)")
    ax.set_title("average spectrum (Welch, 2 Hz resolution)", fontsize=10, loc="left")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, ncol=n, loc="lower left")
    fig.suptitle(f"{machine}: log-mel spectrograms and spectra, SNR {snr_db:g} dB", fontsize=11)
    path = out / f"synth_{machine}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "img"))
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--snr", type=float, default=6.0)
    ap.add_argument("--severity", type=float, default=1.0)
    ap.add_argument("--machines", nargs="*", default=list(FAULTS))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for machine in args.machines:
        print(figure(machine, out, duration_s=args.duration, snr_db=args.snr, severity=args.severity))


if __name__ == "__main__":
    main()
