"""Figures for the state-space GLM across trials and behavioural learning curves.
One function per figure; each returns the matplotlib Figure (pyplot imported lazily)."""

from __future__ import annotations

import numpy as np


def _bin_of(result, t: float) -> int:
    T = result.rates.shape[1]
    b = int(np.floor(t / result.bin_width))
    if not 0 <= b < T:
        raise ValueError(f"t = {t} s is outside the trial [0, {T * result.bin_width:g}) s")
    return b


def plot_ssglm_drift(result, t: float, truth=None, *, ax=None):
    """Rate at within-trial time ``t`` (s) across trials: independent per-trial GLM
    estimates (dots), the SSGLM posterior median with its 95% band, and the truth
    (``truth`` (K, T) Hz) when known."""
    import matplotlib.pyplot as plt

    b = _bin_of(result, t)
    K = result.rates.shape[0]
    k = np.arange(1, K + 1)
    fig = ax.figure if ax is not None else plt.figure(figsize=(7, 3.5))
    ax = ax or fig.add_subplot(111)
    ax.plot(k, result.trial_glm.rates[:, b], "o", ms=3, color="0.55", label="per-trial GLM")
    ax.fill_between(k, result.rates_lower[:, b], result.rates_upper[:, b], color="C0",
                    alpha=0.25, lw=0, label="SSGLM 95% band")
    ax.plot(k, result.rates[:, b], color="C0", lw=2, label="SSGLM")
    ax.axhline(result.psth.rates[b], color="C2", ls=":", label="GLM-PSTH")
    if truth is not None:
        ax.plot(k, np.asarray(truth)[:, b], "k--", lw=1.5, label="truth")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"rate at t = {t:g} s (Hz)")
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_rate_surface(result, truth=None, *, vmax=None):
    """Rate surfaces over trial x within-trial time: the SSGLM posterior median, the
    per-trial GLM and (if given, (K, T) Hz) the truth, on one colour scale."""
    import matplotlib.pyplot as plt

    panels = [("SSGLM", result.rates), ("per-trial GLM", result.trial_glm.rates)]
    if truth is not None:
        panels.insert(0, ("truth", np.asarray(truth)))
    K, T = result.rates.shape
    vmax = vmax or float(np.percentile(np.concatenate([p[1].ravel() for p in panels]), 99.5))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 1, 3.4), sharey=True,
                             layout="constrained")
    for ax, (name, r) in zip(np.atleast_1d(axes), panels):
        im = ax.imshow(r, aspect="auto", origin="lower", vmin=0, vmax=vmax, cmap="viridis",
                       extent=(0, T * result.bin_width, 0.5, K + 0.5))
        ax.set_title(name)
        ax.set_xlabel("time in trial (s)")
    np.atleast_1d(axes)[0].set_ylabel("trial")
    fig.colorbar(im, ax=axes, label="rate (Hz)")
    return fig


def plot_rate_comparison(prob, *, level: float = 0.95, ax=None):
    """The matrix P(rate in trial m > rate in trial k) (rows m, columns k), with the
    pairs beyond ``level`` outlined."""
    import matplotlib.pyplot as plt

    P = np.array(prob, dtype=float)
    K = P.shape[0]
    np.fill_diagonal(P, np.nan)  # a trial against itself: not a comparison
    fig = ax.figure if ax is not None else plt.figure(figsize=(5, 4.3))
    ax = ax or fig.add_subplot(111)
    im = ax.imshow(P, origin="lower", cmap="RdBu_r", vmin=0, vmax=1,
                   extent=(0.5, K + 0.5, 0.5, K + 0.5))
    ax.contour(np.arange(1, K + 1), np.arange(1, K + 1), np.nan_to_num(P, nan=0.5),
               levels=[level], colors="k",
               linewidths=0.8)
    ax.set_xlabel("trial k")
    ax.set_ylabel("trial m")
    ax.set_title("P(rate$_m$ > rate$_k$)")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig


def plot_behavioural_learning_curve(result, correct=None, reaction_times=None):
    """Learning curve: probability correct with its 95% band, chance, the ideal-observer
    learning trial, the outcomes (``correct``: ticks at 1 / 0) and, when the fit has a
    reaction-time channel, the reaction times with the predicted median."""
    import matplotlib.pyplot as plt

    has_rt = result.rt_params is not None
    fig, axes = plt.subplots(2 if has_rt else 1, 1, figsize=(7, 5 if has_rt else 3.2),
                             sharex=True, squeeze=False)
    ax = axes[0, 0]
    K = result.p.shape[0]
    k = np.arange(1, K + 1)
    ax.fill_between(k, result.p_lower, result.p_upper, color="C0", alpha=0.25, lw=0,
                    label="95% band")
    ax.plot(k, result.p, color="C0", lw=2, label="P(correct)")
    ax.axhline(result.chance, color="0.4", ls=":", label="chance")
    if correct is not None:
        c = np.asarray(correct, dtype=float).ravel()
        seen = ~np.isnan(c)
        ax.plot(k[seen], np.where(c[seen] > 0, 1.04, -0.04), "|", color="k", ms=6)
    if result.learning_trial is not None:
        ax.axvline(result.learning_trial + 1, color="C3", label=(
            f"learning trial {result.learning_trial + 1}"))
    ax.set_ylim(-0.08, 1.08)
    ax.set_ylabel("probability correct")
    ax.legend(fontsize=8, frameon=False, loc="center left")
    if has_rt:
        ax2 = axes[1, 0]
        if reaction_times is not None:
            ax2.plot(k, np.asarray(reaction_times, dtype=float), "o", ms=3, color="0.5",
                     label="reaction time")
        ax2.fill_between(k, result.rt_lower, result.rt_upper, color="C1", alpha=0.25, lw=0)
        ax2.plot(k, result.rt, color="C1", lw=2, label="predicted median")
        ax2.set_ylabel("reaction time")
        ax2.legend(fontsize=8, frameon=False)
    axes[-1, 0].set_xlabel("trial")
    fig.tight_layout()
    return fig


__all__ = ["plot_behavioural_learning_curve", "plot_rate_comparison", "plot_rate_surface",
           "plot_ssglm_drift"]
