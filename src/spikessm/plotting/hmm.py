"""Figures for the Poisson HMM (matplotlib; every function returns the Figure).

pyplot is imported inside the functions, so importing this module does not pick a
matplotlib backend.
"""

from __future__ import annotations

import numpy as np


def _fig(ax, figsize):
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    else:
        fig = ax.figure
    return fig, ax


def _colors(K):
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10" if K <= 10 else "tab20")
    return [cmap(k % cmap.N) for k in range(K)]


def plot_raster_states(counts, states, dt: float, *, n_states: int | None = None,
                       ax=None, title: str = "Spikes and decoded state"):
    """Raster of one trial's counts (T, C) (a tick per bin with spikes, NaN = missing
    not drawn) with the decoded state path (T,) shaded behind. Returns the Figure."""
    y = np.asarray(counts, dtype=float)
    z = np.asarray(states).astype(int)
    if y.ndim != 2 or z.shape != (y.shape[0],):
        raise ValueError(f"counts must be (T, C) and states (T,), got {y.shape}, {z.shape}")
    K = int(n_states or z.max() + 1)
    T, C = y.shape
    fig, ax = _fig(ax, (9, 3))
    cols = _colors(K)
    change = np.flatnonzero(np.diff(z)) + 1
    starts = np.r_[0, change]
    ends = np.r_[change, T]
    for s, e in zip(starts, ends):
        ax.axvspan(s * dt, e * dt, color=cols[z[s]], alpha=0.25, lw=0)
    for c in range(C):
        t = np.flatnonzero(np.nan_to_num(y[:, c]) > 0)
        ax.vlines(t * dt + dt / 2, c + 0.6, c + 1.4, color="k", lw=0.6)
    ax.set_xlim(0, T * dt)
    ax.set_ylim(0.4, C + 0.6)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("neuron")
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=cols[k], alpha=0.4, label=f"state {k}") for k in range(K)],
              loc="upper right", fontsize=7, ncol=K, frameon=False)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_learning_curve(fit, *, ax=None, per_bin: float | None = None):
    """Log-likelihood per EM iteration (``fit``: an HMMFitResult or a 1-D array);
    divided by ``per_bin`` if given. Returns the Figure."""
    lls = np.asarray(getattr(fit, "log_likelihoods", fit), dtype=float)
    scale = 1.0 if per_bin is None else float(per_bin)
    fig, ax = _fig(ax, (5, 3.2))
    ax.plot(np.arange(len(lls)), lls / scale, "o-", ms=3)
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("log-likelihood" + ("" if per_bin is None else " per bin"))
    ax.set_title("Learning curve")
    fig.tight_layout()
    return fig


def plot_ll_ecll_epochs(fit, *, ax=None):
    """Per EM iteration i: the data log-likelihood LL(theta_i) and the ECLL bound at the
    M-step's output, Q(theta_{i+1} | theta_i) + LL(theta_i) - Q(theta_i | theta_i), which
    lies between LL(theta_i) and LL(theta_{i+1}) (minorise-maximise). Returns the Figure."""
    lls = np.asarray(fit.log_likelihoods)
    bound = lls + np.asarray(fit.expected_complete_lls) - np.asarray(
        fit.expected_complete_lls_at_current)
    i = np.arange(len(lls))
    fig, ax = _fig(ax, (5, 3.2))
    ax.plot(i, lls, "o-", ms=3, label="LL(θ_i)")
    ax.plot(i + 1, bound, "s--", ms=3, label="ECLL bound Q(θ_{i+1}|θ_i) + H(θ_i)")
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("log-likelihood")
    ax.legend(fontsize=8)
    ax.set_title("LL and ECLL per epoch")
    fig.tight_layout()
    return fig


def plot_ll_ecll_line(line, *, ax=None):
    """Data log-likelihood and the shifted ECLL along theta + s (theta' - theta) (a
    :class:`~spikessm.models.poisson_hmm.LineResult`): the ECLL curve lies below and
    touches at s = 0; the M-step maximises it at s = 1. Returns the Figure."""
    fig, ax = _fig(ax, (5, 3.4))
    ax.plot(line.s, line.log_likelihoods, "-", lw=2, label="LL(θ + s(θ'−θ))")
    ax.plot(line.s, line.bound, "--", lw=2, label="ECLL Q(·|θ) + const")
    ax.axvline(0, color="0.6", lw=0.8)
    ax.axvline(1, color="0.6", lw=0.8, ls=":")
    ax.plot([0], [line.log_likelihoods[0]], "ko", ms=4)
    ax.set_xlabel("s  (0 = θ, 1 = M-step θ')")
    ax.set_ylabel("log-likelihood")
    ax.legend(fontsize=8)
    ax.set_title("EM as minorise-maximise")
    fig.tight_layout()
    return fig


def plot_rates_comparison(params_fit, params_true, dt: float):
    """Learnt vs true firing rates (Hz) and off-diagonal transition rates (Hz, A / dt),
    states assumed aligned (see ``align_states``). Returns the Figure."""
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.5))
    rt, rf = np.asarray(params_true.rates), np.asarray(params_fit.rates)
    K = rt.shape[0]
    cols = _colors(K)
    for k in range(K):
        a1.plot(rt[k], rf[k], "o", color=cols[k], label=f"state {k}")
    m = max(rt.max(), rf.max()) * 1.05
    a1.plot([0, m], [0, m], "k:", lw=0.8)
    a1.set_xlabel("true rate (Hz)")
    a1.set_ylabel("learnt rate (Hz)")
    a1.legend(fontsize=7)
    a1.set_title("Firing rates")
    off = ~np.eye(K, dtype=bool)
    tt = params_true.transition_rates(dt)[off]
    tf = params_fit.transition_rates(dt)[off]
    a2.plot(tt, tf, "o")
    m = max(tt.max(), tf.max()) * 1.05
    a2.plot([0, m], [0, m], "k:", lw=0.8)
    a2.set_xlabel("true transition rate (Hz)")
    a2.set_ylabel("learnt transition rate (Hz)")
    a2.set_title("Transition rates")
    fig.tight_layout()
    return fig


def plot_n_states(selection, *, ax=None):
    """Held-out log-likelihood per observed bin against K (a ``NStatesSelection``), with
    one standard error of the paired difference to the best K; dotted line: the best K,
    dashed line: the K chosen by the one-standard-error rule. Returns the Figure."""
    fig, ax = _fig(ax, (4.5, 3.2))
    with np.errstate(divide="ignore", invalid="ignore"):
        se_per_bin = (selection.test_standard_errors * selection.test_per_bin
                      / selection.test_log_likelihoods)
    ax.errorbar(selection.n_states, selection.test_per_bin,
                yerr=np.nan_to_num(np.abs(se_per_bin)), fmt="o-",
                capsize=3)
    ax.axvline(selection.best_n_states, color="0.6", ls=":", label="best")
    ax.axvline(selection.parsimonious_n_states, color="C3", ls="--", label="chosen (1 s.e.)")
    ax.legend(fontsize=7)
    ax.set_xlabel("number of states K")
    ax.set_ylabel("held-out LL per bin")
    ax.set_title("Choosing K")
    fig.tight_layout()
    return fig
