"""Point-process Granger causality between neurons (Kim, Putrino, Ghosh & Brown 2011).

For each target neuron ``i`` the *full* GLM explains its spikes by its own spike history
and the spike histories of all other neurons (ensemble windows, plus optional
covariates); for each source ``j != i`` the *reduced* GLM leaves out ``j``'s history. The
log-likelihood ratio ``D_ij = 2 (l_full - l_reduced_j) = dev_reduced - dev_full`` is
asymptotically chi-square with ``E`` (number of ensemble windows) degrees of freedom when
``j`` does not Granger-cause ``i``. The ``N (N - 1)`` p-values are corrected for multiple
comparisons (Benjamini-Hochberg FDR by default, or Holm's family-wise control), and the
sign of a significant effect is the sign of the sum of ``j``'s coupling coefficients in the
full model (excitatory +1 / inhibitory -1), as in Kim et al. (2011).

All ``(N, N)`` matrices are indexed ``[target, source]`` (row: neuron being explained,
column: neuron whose history is tested), like ``GLMFit.coupling``; the diagonal is NaN /
False / 0.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

from ..._checks import as_float_array, check_bin_width, check_int
from .fit import GLMFit, _check_features, _others, design_matrix, fit_design, fit_glm
from .history import check_history, history_features

__all__ = ["GrangerResult", "granger_causality", "simulate_network"]

_CORRECTIONS = ("fdr_bh", "holm", "bonferroni", "none")


@dataclass(frozen=True)
class GrangerResult:
    """Point-process Granger causality; ``(N, N)`` arrays indexed ``[target, source]``.

    Attributes:
      deviance_difference: ``2 (l_full - l_reduced)`` (>= 0 up to solver tolerance).
      pvalues: chi-square(``df``) p-values (uncorrected).
      adjusted_pvalues: after ``correction``.
      significant: ``adjusted_pvalues < alpha``.
      sign: sign of the summed coupling coefficients in the full model (+1/-1; 0 on the
        diagonal).
      df: degrees of freedom of each test (number of ensemble windows).
      alpha, correction: level and method of the multiple-comparison control.
      full: the full :class:`GLMFit` (its ``coupling`` holds the coefficients).
    """

    deviance_difference: np.ndarray
    pvalues: np.ndarray
    adjusted_pvalues: np.ndarray
    significant: np.ndarray
    sign: np.ndarray
    df: int
    alpha: float
    correction: str
    full: GLMFit

    def with_correction(self, correction: str, alpha: float | None = None) -> GrangerResult:
        """The same tests under another multiple-comparison control (no refitting)."""
        alpha = self.alpha if alpha is None else alpha
        adj, sig = _control(self.pvalues, alpha, correction)
        return replace(self, adjusted_pvalues=adj, significant=sig, alpha=float(alpha),
                       correction=correction)

    @property
    def edges(self) -> list:
        """Significant ``(source, target, sign)`` triples."""
        tg, sc = np.nonzero(self.significant)
        return [(int(j), int(i), int(self.sign[i, j])) for i, j in zip(tg, sc)]


def _control(pvalues, alpha, correction):
    """Adjusted p-values and significance mask over the off-diagonal entries."""
    if correction not in _CORRECTIONS:
        raise ValueError(f"correction must be one of {_CORRECTIONS}, got {correction!r}")
    if isinstance(alpha, bool) or not (isinstance(alpha, (float, int)) and 0 < alpha < 1):
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")
    N = pvalues.shape[0]
    off = ~np.eye(N, dtype=bool)
    adj = np.full((N, N), np.nan)
    adj[off] = (pvalues[off] if correction == "none"
                else multipletests(pvalues[off], alpha=alpha, method=correction)[1])
    sig = np.zeros((N, N), dtype=bool)
    sig[off] = adj[off] < alpha
    return adj, sig


def granger_causality(counts, *, bin_width, history, ensemble=None, features=None,
                      link: str = "log", alpha: float = 0.05, correction: str = "fdr_bh",
                      solver: str = "newton") -> GrangerResult:
    """Point-process Granger causality between all ordered pairs of neurons.

    Args:
      counts: ``(T, N)`` spike counts (0/1 for ``link="logit"``), N >= 2.
      bin_width: seconds per bin (> 0).
      history: own-history window edges in bins, e.g. ``(1, 2, 5, 10)``.
      ensemble: other neurons' history window edges (default: the same as ``history``).
      features: optional ``(T, p)`` / ``(N, T, p)`` covariates kept in every model.
      link: ``"log"`` (Poisson) or ``"logit"`` (Bernoulli).
      alpha: level of the multiple-comparison control (0 < alpha < 1).
      correction: ``"fdr_bh"`` (Benjamini-Hochberg), ``"holm"``, ``"bonferroni"`` or
        ``"none"``, over the ``N (N - 1)`` tests.
      solver: GLM solver (see :func:`~spikessm.models.glm.fit.fit_glm`).

    Returns:
      :class:`GrangerResult`.
    """
    _control(np.full((2, 2), 0.5), alpha, correction)  # validate before fitting
    hist = check_history(history, "history")
    ens = check_history(hist if ensemble is None else ensemble, "ensemble")
    if not ens:
        raise ValueError("history (or ensemble) window edges are required, e.g. (1, 2, 5)")
    full = fit_glm(counts, features, bin_width=bin_width, link=link, history=hist or None,
                   ensemble=ens, solver=solver)
    y = np.asarray(counts, dtype=np.float64)
    T, N = y.shape
    X = _check_features(features, T, N)
    own = history_features(y, hist) if hist else np.zeros((T, N, 0))
    ensf = history_features(y, ens)
    offset = np.full(T, np.log(full.bin_width))
    E = len(ens) - 1
    dev = np.full((N, N), np.nan)
    for i in range(N):
        others = ensf[:, _others(i, N), :]
        for k, j in enumerate(_others(i, N)):
            Xr = design_matrix(X[i], own[:, i, :], others, drop_source=k)
            red = fit_design(y[:, i:i + 1], Xr, offset, link, solver)
            dev[i, j] = max(2.0 * (full.log_likelihood[i] - red["llf"][0]), 0.0)
    off = ~np.eye(N, dtype=bool)
    pv = np.full((N, N), np.nan)
    pv[off] = stats.chi2.sf(dev[off], E)
    adj, sig = _control(pv, alpha, correction)
    sign = np.sign(full.coupling.sum(axis=2)).astype(int)
    np.fill_diagonal(sign, 0)
    return GrangerResult(deviance_difference=dev, pvalues=pv, adjusted_pvalues=adj,
                         significant=sig, sign=sign, df=E, alpha=float(alpha),
                         correction=correction, full=full)


def simulate_network(n_bins: int, *, bin_width: float, baseline_rate, coupling, ensemble,
                     self_history=None, history=None, seed: int) -> np.ndarray:
    """Simulate a Bernoulli (logit-link) GLM network with spike-history coupling.

    ``logit P(y_{t,i} = 1) = log(Delta r_i) + sum_w H[i, w] h_{t,i,w}
    + sum_{j != i, w} K[i, j, w] e_{t,j,w}``, where ``h`` / ``e`` are history window sums
    (:func:`~spikessm.models.glm.history.history_features`).

    Args:
      n_bins: number of bins T.
      bin_width: seconds per bin.
      baseline_rate: ``(N,)`` baseline rates in Hz.
      coupling: ``(N, N, E)`` ``K[target, source, window]`` (diagonal ignored).
      ensemble: ``E + 1`` window edges of the coupling terms.
      self_history: optional ``(N, H)`` own-history weights with window edges ``history``.
      seed: random seed.

    Returns:
      ``(T, N)`` 0/1 spikes (float64).
    """
    bw = check_bin_width(bin_width)
    n_bins = check_int(n_bins, "n_bins", 1)
    seed = check_int(seed, "seed", 0)
    r = as_float_array(baseline_rate, "baseline_rate")
    if r.ndim != 1 or r.size < 1 or not np.all(np.isfinite(r)) or np.any(r <= 0):
        raise ValueError(f"baseline_rate must be an (N,) array of positive finite rates in Hz, "
                         f"got shape {r.shape}")
    K = as_float_array(coupling, "coupling")
    if not np.all(np.isfinite(K)):
        raise ValueError("coupling must be finite")
    ens = check_history(ensemble, "ensemble")
    if not ens:
        raise ValueError("ensemble window edges are required, e.g. (1, 3)")
    N = r.size
    if K.shape != (N, N, len(ens) - 1):
        raise ValueError(f"coupling must have shape (N, N, E) = ({N}, {N}, {len(ens) - 1}), "
                         f"got {K.shape}")
    K[np.arange(N), np.arange(N)] = 0.0
    hist = check_history(history, "history")
    Hw = np.zeros((N, 0)) if self_history is None else as_float_array(self_history,
                                                                       "self_history")
    if Hw.shape != (N, max(len(hist) - 1, 0)):
        raise ValueError(f"self_history must have shape (N, H) matching history, got {Hw.shape}")
    if not np.all(np.isfinite(Hw)):
        raise ValueError("self_history must be finite")
    rng = np.random.default_rng(seed)
    y = np.zeros((n_bins, N))
    with np.errstate(over="ignore", divide="ignore"):
        base = np.log(bw * r)
    if not np.all(np.isfinite(base)):
        raise ValueError("bin_width * baseline_rate must be a positive finite number")
    u = rng.uniform(size=(n_bins, N))

    def window_sums(t, edges):
        return np.stack([y[max(t - b + 1, 0):max(t - a + 1, 0)].sum(axis=0)
                         for a, b in zip(edges[:-1], edges[1:])], axis=-1)  # (N, W)

    for t in range(n_bins):
        eta = base + np.einsum("ijw,jw->i", K, window_sums(t, ens))
        if hist:
            eta = eta + np.sum(Hw * window_sums(t, hist), axis=1)
        with np.errstate(over="ignore"):
            y[t] = u[t] < 1.0 / (1.0 + np.exp(-eta))
    return y
