"""Figures for the Poisson LDS / hybrid model (matplotlib; every function returns the Figure).

pyplot is imported inside the functions, so importing this module picks no backend.
"""

from __future__ import annotations

import numpy as np

from .hmm import _colors, _fig


def plot_latent_trajectories(means, labels=None, *, dims=(0, 1), dt: float | None = None,
                             ax=None, title: str = "Latent trajectories"):
    """Posterior-mean latent trajectories (list of (T_k, d)) in the plane of ``dims``,
    coloured by ``labels`` (one per trial, e.g. reach condition); a dot marks each start."""
    trials = [np.asarray(m, dtype=float) for m in means]
    if not trials or any(t.ndim != 2 for t in trials):
        raise ValueError("means must be a non-empty list of (T_k, d) arrays")
    i, j = dims
    d = trials[0].shape[1]
    if not (0 <= i < d and 0 <= j < d):
        raise ValueError(f"dims must index latent dimensions 0..{d - 1}, got {dims}")
    labs = np.zeros(len(trials), int) if labels is None else np.asarray(labels)
    if labs.shape != (len(trials),):
        raise ValueError(f"labels must have one entry per trial ({len(trials)})")
    uniq = list(dict.fromkeys(labs.tolist()))
    cols = _colors(len(uniq))
    fig, ax = _fig(ax, (5, 4.5))
    for t, lab in zip(trials, labs):
        c = cols[uniq.index(lab)]
        ax.plot(t[:, i], t[:, j], color=c, lw=0.7, alpha=0.6)
        ax.plot(t[0, i], t[0, j], "o", color=c, ms=3)
    if labels is not None:
        for u, c in zip(uniq, cols):
            ax.plot([], [], color=c, label=str(u))
        ax.legend(frameon=False, fontsize=8)
    ax.set_xlabel(f"latent {i + 1}")
    ax.set_ylabel(f"latent {j + 1}")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_rates(observed_counts, rates, bin_width: float, *, neurons=(0, 1, 2), smooth: int = 5,
               true_rates=None, ax=None, title: str = "Fitted vs observed rates"):
    """Fitted rates (T, N) in Hz against the observed counts (T, N) (boxcar-smoothed over
    ``smooth`` bins, converted to Hz), for a few neurons; optional true rates."""
    y = np.asarray(observed_counts, dtype=float)
    r = np.asarray(rates, dtype=float)
    if y.shape != r.shape or y.ndim != 2:
        raise ValueError(f"observed_counts and rates must be (T, N) of equal shape, got "
                         f"{y.shape}, {r.shape}")
    T = y.shape[0]
    t = np.arange(T) * bin_width
    k = np.ones(max(int(smooth), 1)) / max(int(smooth), 1)
    fig, ax = _fig(ax, (9, 3.2))
    cols = _colors(len(neurons))
    for c, n in zip(cols, neurons):
        obs = np.convolve(np.nan_to_num(y[:, n]), k, mode="same") / bin_width
        ax.plot(t, obs, color=c, lw=0.6, alpha=0.5)
        ax.plot(t, r[:, n], color=c, lw=1.5, label=f"neuron {n}")
        if true_rates is not None:
            ax.plot(t, np.asarray(true_rates)[:, n], color=c, lw=1, ls="--")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("rate (Hz)")
    ax.legend(frameon=False, fontsize=8, ncol=len(neurons))
    ax.set_title(title + " (thin: smoothed counts" + (", dashed: truth)" if true_rates
                                                        is not None else ")"))
    fig.tight_layout()
    return fig


def plot_objective(log_likelihoods, *, ax=None,
                   title: str = "Laplace-approximate log-likelihood per EM iteration",
                   label: str | None = None):
    """The EM objective trace (n_iter,); call again with the same ``ax`` and a ``label``
    to overlay several fits (restarts)."""
    ll = np.asarray(log_likelihoods, dtype=float)
    fig, ax = _fig(ax, (5, 3.5))
    ax.plot(np.arange(1, ll.size + 1), ll, "o-", ms=3, label=label)
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("log p(y) (Laplace)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_state_dim_sweep(state_dims, scores, *, baselines: dict | None = None, ax=None,
                         ylabel: str = "held-out score", title: str = "Choosing the state "
                         "dimension"):
    """Held-out score per state dimension (restarts as dots, best as a line), with
    horizontal lines for baselines (name -> value)."""
    dims = np.asarray(state_dims)
    fig, ax = _fig(ax, (5, 3.5))
    best = []
    for dd, s in zip(dims, scores):
        s = np.atleast_1d(np.asarray(s, dtype=float))
        ax.plot(np.full(s.size, dd), s, ".", color="0.6")
        best.append(np.nanmax(s))
    ax.plot(dims, best, "o-", color="C0", label="best restart")
    for i, (name, v) in enumerate((baselines or {}).items()):
        ax.axhline(v, color=f"C{i + 1}", ls="--", lw=1, label=name)
    ax.set_xlabel("state dimension d")
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False, fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig
