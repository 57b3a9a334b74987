"""Figures for models shared across recordings (matplotlib; every function returns the
Figure). pyplot is imported inside the functions, so importing this module picks no backend.
"""

from __future__ import annotations

import numpy as np

from .hmm import _colors, _fig

_STYLES = ("-", "--", ":", "-.")


def plot_shared_trajectories(means, recording_labels=None, trial_labels=None, *,
                             dims=(0, 1), average: bool = False, ax=None,
                             title: str = "Latent trajectories, all recordings"):
    """Posterior-mean latents of several recordings in their common frame (one panel).

    Args:
      means: list over recordings of lists of (T_k, d) trajectories (e.g.
        ``[post.means for post in SharedPoissonLDS.smooth(...)]``), all in the shared
        canonical frame.
      recording_labels: one name per recording (line style and legend).
      trial_labels: optional list over recordings of one label per trial (e.g. reach
        condition; colour). Without it each recording has its own colour.
      dims: the two latent dimensions shown.
      average: plot each (recording, trial label) group's mean trajectory (trials cut to
        the shortest in the group) instead of every trial.
    """
    recs = [[np.asarray(m, dtype=float) for m in r] for r in means]
    if not recs or any(not r for r in recs) or any(m.ndim != 2 for r in recs for m in r):
        raise ValueError("means must be a non-empty list (recordings) of non-empty lists of "
                         "(T_k, d) arrays")
    d = recs[0][0].shape[1]
    i, j = dims
    if not (0 <= i < d and 0 <= j < d):
        raise ValueError(f"dims must index latent dimensions 0..{d - 1}, got {dims}")
    R = len(recs)
    names = [f"recording {r + 1}" for r in range(R)] if recording_labels is None \
        else [str(x) for x in recording_labels]
    if len(names) != R:
        raise ValueError(f"recording_labels must have one entry per recording ({R})")
    if trial_labels is None:
        labs = [np.full(len(r), k) for k, r in enumerate(recs)]
    else:
        labs = [np.asarray(lab) for lab in trial_labels]
        if len(labs) != R or any(lab.shape != (len(r),) for lab, r in zip(labs, recs)):
            raise ValueError("trial_labels must be a list over recordings of one label per "
                             "trial")
    uniq = list(dict.fromkeys(np.concatenate(labs).tolist()))
    cols = _colors(len(uniq))
    fig, ax = _fig(ax, (5.5, 4.8))
    for r, (trials, lab) in enumerate(zip(recs, labs)):
        ls = _STYLES[r % len(_STYLES)]
        if average:
            groups = [(u, [t for t, lt in zip(trials, lab) if lt == u])
                      for u in dict.fromkeys(lab.tolist())]
            for u, ts in groups:
                n = min(t.shape[0] for t in ts)
                m = np.mean([t[:n] for t in ts], axis=0)
                c = cols[uniq.index(u)]
                ax.plot(m[:, i], m[:, j], ls, color=c, lw=1.8)
                ax.plot(m[0, i], m[0, j], "o", color=c, ms=4)
        else:
            for t, lt in zip(trials, lab):
                c = cols[uniq.index(lt)]
                ax.plot(t[:, i], t[:, j], ls, color=c, lw=0.7, alpha=0.5)
                ax.plot(t[0, i], t[0, j], "o", color=c, ms=2.5)
    for r, name in enumerate(names):
        ax.plot([], [], _STYLES[r % len(_STYLES)], color="k", label=name)
    if trial_labels is not None:
        for u, c in zip(uniq, cols):
            ax.plot([], [], color=c, lw=3, label=str(u))
    ax.legend(frameon=False, fontsize=8)
    ax.set_xlabel(f"shared latent {i + 1}")
    ax.set_ylabel(f"shared latent {j + 1}")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_shared_vs_separate(n_bins, gains, std_errors=None, *, ax=None,
                            title: str = "Held-out gain of the shared model"):
    """Held-out log-likelihood gain of the shared fit over separate per-recording fits
    (``gains``, nats or bits per spike) against the training length per recording
    (``n_bins``), with optional error bars; a dashed line at zero."""
    x = np.asarray(n_bins, dtype=float)
    g = np.asarray(gains, dtype=float)
    if x.shape != g.shape or x.ndim != 1:
        raise ValueError("n_bins and gains must be 1-D arrays of equal length")
    fig, ax = _fig(ax, (5, 3.5))
    err = None if std_errors is None else np.asarray(std_errors, dtype=float)
    ax.errorbar(x, g, yerr=err, fmt="o-", color="C0", capsize=3)
    ax.axhline(0.0, color="k", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("training bins per recording")
    ax.set_ylabel("held-out LL: shared - separate")
    ax.set_title(title)
    fig.tight_layout()
    return fig


__all__ = ["plot_shared_trajectories", "plot_shared_vs_separate"]
