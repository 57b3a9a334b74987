"""Figures for decoding: decoded vs true trajectory, error over time, place fields."""

from __future__ import annotations

import numpy as np


def plot_decoded_trajectory(times, truth, decoded: dict, *, intervals=None,
                            labels=("x (cm)", "y (cm)")):
    """Each coordinate over time: the truth (black), every decoder's estimate, and an
    optional band ``intervals = (lower, upper)`` (each (T, dim)) around the first decoder.

    times (T,) seconds; truth (T, dim); decoded: name -> (T, dim). Returns the Figure.
    """
    import matplotlib.pyplot as plt

    truth = np.asarray(truth)
    dim = truth.shape[1]
    fig, axes = plt.subplots(dim, 1, figsize=(10, 2.6 * dim), sharex=True, squeeze=False)
    for k, ax in enumerate(axes[:, 0]):
        if intervals is not None:
            ax.fill_between(times, intervals[0][:, k], intervals[1][:, k], color="C0",
                            alpha=0.2, lw=0, label=f"{next(iter(decoded))} 95% interval")
        ax.plot(times, truth[:, k], color="k", lw=1.5, label="true")
        for j, (name, est) in enumerate(decoded.items()):
            ax.plot(times, np.asarray(est)[:, k], color=f"C{j}", lw=1, label=name)
        ax.set_ylabel(labels[k] if k < len(labels) else f"x{k}")
    axes[0, 0].legend(loc="upper right", fontsize=8, ncol=2)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def plot_decoding_error(times, errors: dict, *, window_s=10.0, unit="cm"):
    """Decoding error over time (running median over ``window_s`` seconds) per decoder.

    times (T,) seconds; errors: name -> (T,) distances. Returns the Figure."""
    import matplotlib.pyplot as plt

    times = np.asarray(times)
    dt = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    w = max(int(round(window_s / dt)), 1)
    fig, ax = plt.subplots(figsize=(10, 3.2))
    for j, (name, e) in enumerate(errors.items()):
        e = np.asarray(e)
        n = len(e) // w
        med = np.median(e[:n * w].reshape(n, w), axis=1)
        ax.plot(times[:n * w].reshape(n, w).mean(1), med, color=f"C{j}",
                label=f"{name} (median {np.median(e):.1f} {unit})")
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"error ({unit}), {window_s:g}-s running median")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_rate_maps(gx, gy, rates, *, labels=None, ncols=6):
    """Firing-rate maps: rates (K, len(gy), len(gx)) in Hz (NaN where not shown); colour
    scale from 0 to each map's 99th percentile. Returns the Figure."""
    import matplotlib.pyplot as plt

    rates = np.asarray(rates)
    K = rates.shape[0]
    nrows = int(np.ceil(K / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.1 * ncols, 2.1 * nrows), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if k >= K:
            continue
        im = ax.pcolormesh(gx, gy, rates[k], shading="auto", cmap="viridis")
        ax.set_aspect("equal")
        peak = np.nanpercentile(rates[k], 99)
        ax.set_title((labels[k] + ", " if labels is not None else "") + f"0-{peak:.1f} Hz",
                     fontsize=8)
        im.set_clim(0, peak)
    fig.tight_layout()
    return fig


__all__ = ["plot_decoded_trajectory", "plot_decoding_error", "plot_rate_maps"]
